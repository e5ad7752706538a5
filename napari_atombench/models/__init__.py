"""Atom-locating models (PyTorch). Imports core, never widgets.

Build any registered model with :func:`napari_atombench.models.registry.get_locator`.
"""

from . import catalogue as _catalogue  # noqa: F401  (fills the registry)
from .base import AtomLocator, Cancelled, LocateResult

__all__ = ["AtomLocator", "Cancelled", "LocateResult"]
