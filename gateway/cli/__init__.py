"""The ``lorag`` command line: thin typer commands over the same services the API uses."""
