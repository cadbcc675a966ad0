"""metrics layer of transferlimits (see the module docstrings)."""
