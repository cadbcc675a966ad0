"""Re-export of :mod:`transferlimits.tasks.registry` under its former path (kept for existing imports)."""

from transferlimits.tasks.registry import *  # noqa: F401,F403
from transferlimits.tasks.registry import __all__  # noqa: F401
