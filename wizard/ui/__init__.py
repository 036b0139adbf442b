"""The desktop wizard: thin Qt views over the engine's jobs (the only package that imports Qt)."""
