"""lorag serving: base-model preparation, engines and the adapter registry."""
