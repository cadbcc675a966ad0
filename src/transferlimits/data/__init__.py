"""data layer of transferlimits (see the module docstrings)."""
