"""lorag gateway: the application over ``serve`` and ``rag``, in rooms (docs/architecture.md).

``api/`` the OpenAI-compatible HTTP API; ``cli/`` the ``lorag`` command line; ``compare/`` A/B
runs, scoring and reports; ``knowledge/`` knowledge bases as a service; ``data/`` training data
from question sets and documents; ``console/`` the web UI. ``settings``, ``errors`` and
``model_names`` are shared by every room.
"""
