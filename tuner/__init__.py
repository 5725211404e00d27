"""lorag tuner: training recipes that turn a dataset into a PEFT adapter folder plus lorag.json.

Run as ``python -m tuner sft RECIPE.yaml``; it shares only files with the rest of lorag.
"""
