"""Files and fine-tuning jobs: OpenAI's files and fine-tuning API over the tuner, run as subprocesses."""
