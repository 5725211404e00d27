"""OpenAI's graders API (``/v1/fine_tuning/alpha/graders/run`` and ``/validate``) on the ``graders`` package."""
