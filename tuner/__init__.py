"""lorag tuner: training recipes that turn a dataset into an adapter (or model) folder plus lorag.json.

Run as ``python -m tuner train RECIPE.yaml``; it shares only files with the rest of lorag.
"""
