"""lorag gateway: the OpenAI-compatible API and the ``lorag`` command line."""
