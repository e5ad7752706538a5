"""Atom-locating models (PyTorch). Imports core, never widgets."""

from .base import AtomLocator, Cancelled, LocateResult

__all__ = ["AtomLocator", "Cancelled", "LocateResult"]
