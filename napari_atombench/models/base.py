"""The one interface every atom-locating model implements.

Scoring, the benchmark, the CLI and the widgets talk only to :class:`AtomLocator`,
so a published network, one of our own, or a future one plug in the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from .._types import Cancelled, ProgressCallback

__all__ = ["AtomLocator", "Cancelled", "LocateResult", "ProgressCallback"]


@dataclass
class LocateResult:
    """What a locator found in one image.

    Attributes
    ----------
    positions_rc : ndarray of float64, shape (N, 2)
        Column centres (row, col) in pixels of the **input image's own frame**
        (whatever padding or rescaling the model did internally).
    probability_map : ndarray of float32, shape (H, W) or None
        The model's per-pixel map in the input frame, when it has one.
    metadata : dict
        Provenance: model name, weights source and hash, fidelity, device,
        rescale factor, timings.
    """

    positions_rc: np.ndarray
    probability_map: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class AtomLocator(Protocol):
    """A model that finds atom columns.

    ``name`` is the registry name (e.g. ``"atomnet-cubic"``).
    """

    name: str

    def predict_map(
        self,
        image: np.ndarray,
        *,
        progress: ProgressCallback | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> np.ndarray:
        """Per-pixel map (probability or score, float32, the image's shape)."""
        ...

    def locate(
        self,
        image: np.ndarray,
        pixel_size_A: float | None = None,
        *,
        progress: ProgressCallback | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> LocateResult:
        """Find columns; ``pixel_size_A`` lets a model rescale to its trained sampling."""
        ...
