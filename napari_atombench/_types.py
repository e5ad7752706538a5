"""Small types shared by ``core`` and ``models`` (this module imports nothing of the package).

``core`` must not import ``models`` and ``models`` builds on ``core``, so the
few names both need for long-running work live here.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

#: ``progress(done, total)``: long work calls it after each step.
ProgressCallback = Callable[[int, int], None]

#: ``cancelled() -> bool``: long work checks it between steps and stops when it says so.
CancelledCallback = Callable[[], bool]

#: (N, 2) float64 array of (row, col) pixel coordinates.
Positions = np.ndarray


class Cancelled(Exception):
    """Raised inside long work when the caller asked to stop."""
