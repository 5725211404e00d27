"""The OpenAI-compatible HTTP API: app factory, routes, wire models, errors, auth, metrics."""
