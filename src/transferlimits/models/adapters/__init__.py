"""The study's foundation-model adapters; importing this package registers ProFound and ProViCNet.

A new model is one more module like :mod:`.profound` that ends with one ``register_model(...)`` call.
"""

from __future__ import annotations

from transferlimits.models.adapters.base import ModelAdapter, ViewSettings
from transferlimits.models.adapters.profound import PROFOUND, ProFoundAdapter
from transferlimits.models.adapters.provicnet import PROVICNET, ProViCNetAdapter

__all__ = ["ModelAdapter", "ViewSettings", "PROFOUND", "PROVICNET", "ProFoundAdapter", "ProViCNetAdapter"]
