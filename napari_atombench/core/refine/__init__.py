"""Sub-pixel refinement of many atom columns at once.

* :func:`refine_center_of_mass` - iterated, background-subtracted centre of
  mass in a disk around each column.
* :func:`refine_gaussian` - 2D Gaussian (isotropic, or elliptical with
  rotation) plus a flat background per column, fitted by a batched
  Levenberg-Marquardt over all windows at once, then refitted with the
  other columns' Gaussians subtracted (so neighbours' tails do not lift the
  background of a weak column or widen a dumbbell). With ``overlapping=True``,
  columns whose windows overlap are grouped (closest pairs first, at most
  ``max_group_size`` per group) and each group is fitted as a sum of
  Gaussians over one shared background, so a close pair (dumbbell) is not
  pulled together by its partner's tail.
* :func:`cramer_rao_bound_px` - the best possible position precision of an
  isolated column with Poisson noise, for judging the fits.

The hot path has no Python loop per column: windows are cut with fancy
indexing into ``(N, w, w)`` stacks and the ``N`` small normal-equation systems
are solved as one ``(N, k, k)`` batch. Work runs in chunks; between chunks
``progress(done, total)`` is called and ``cancelled()`` checked.

Every column gets a status:

``"converged"``
    the fit converged with a sane result;
``"fell back"``
    the Gaussian fit failed (NaN, singular, centre left its window, sigma or
    amplitude absurd, or it converged onto the same peak as another column:
    an unresolved close pair fitted independently) and the centre-of-mass
    result is used instead;
``"rejected"``
    the input is unusable (not finite, outside the image) or even the
    centre of mass failed; the input position is returned unchanged.

``reason`` says why for the last two. The package imports neither Qt nor
napari: ``_result`` (statuses, :class:`RefineResult`, input checks), ``com``,
``_lm`` (the batched Levenberg-Marquardt), ``guess`` (starting values),
``gaussian``, ``joint`` (close pairs) and ``precision`` (Cramér-Rao bound).
"""

from __future__ import annotations

from ._result import (
    STATUS_CONVERGED,
    STATUS_FELL_BACK,
    STATUS_REJECTED,
    RefineResult,
    default_window_px,
)
from .com import refine_center_of_mass
from .gaussian import refine_gaussian
from .precision import cramer_rao_bound_px

__all__ = [
    "STATUS_CONVERGED",
    "STATUS_FELL_BACK",
    "STATUS_REJECTED",
    "RefineResult",
    "cramer_rao_bound_px",
    "default_window_px",
    "refine_center_of_mass",
    "refine_gaussian",
    "refine_positions",
    "REFINE_METHODS",
]

#: Method names accepted by :func:`refine_positions` (CLI and widget).
REFINE_METHODS = ("gaussian", "joint", "com")


def refine_positions(image, positions_rc, method: str = "gaussian", **options) -> RefineResult:
    """Refine with a method named as on the command line.

    Parameters
    ----------
    image, positions_rc
        As for :func:`refine_gaussian`.
    method : {"gaussian", "joint", "com"}
        Gaussian fit; Gaussian fit with overlapping columns fitted jointly;
        centre of mass.
    **options
        Passed on (``dark``, ``progress``, ``cancelled``, ``window_px`` or
        ``radius_px``...).

    Returns
    -------
    RefineResult
    """
    if method == "com":
        return refine_center_of_mass(image, positions_rc, **options)
    if method in ("gaussian", "joint"):
        return refine_gaussian(image, positions_rc, overlapping=(method == "joint"), **options)
    raise ValueError(f"unknown refinement method {method!r}; use one of {', '.join(REFINE_METHODS)}")


