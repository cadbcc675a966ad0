"""Former path of :mod:`transferlimits.config.ranges` (kept for existing imports, e.g. ``runner/params.py``)."""

from transferlimits.config.ranges import FIELD_RANGES, Range, check_ranges

__all__ = ["Range", "FIELD_RANGES", "check_ranges"]
