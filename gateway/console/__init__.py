"""The web console: static HTML, CSS and JavaScript in ``static/``, served at ``/`` by the gateway."""
