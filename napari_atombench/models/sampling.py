"""Running a locator at the sampling its weights were trained at, on bright columns.

:class:`SamplingAwareLocator` rescales an image to the trained sampling — from
the pixel size when it is known, else from the lattice
(:func:`napari_atombench.core.peaks.estimate_separation`) — mirrors dark columns
(:func:`apply_contrast`), runs the inner locator and maps positions and map back
to the input frame.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..core.geometry import resample  # the one resampler (antialiased when shrinking)
from ..core.metrics import filter_border
from ._pipeline import check_rescale, positions_to_frame
from .base import LocateResult


def estimate_separation_px(image: np.ndarray) -> float | None:
    """Nearest column separation (:func:`~napari_atombench.core.peaks.estimate_separation`),
    or None when the image shows no lattice."""
    from ..core.peaks import estimate_separation

    try:
        return float(estimate_separation(image))
    except ValueError:
        return None


class SamplingAwareLocator:
    """Run a locator at the sampling its weights were trained at, on bright columns.

    Parameters
    ----------
    inner : AtomLocator
        Works on images at the trained sampling with bright columns.
    trained_pixel_size_A : float or None
        Å per pixel of the training images; None: no sampling rule (zoom 1, only
        ``rescale``).
    trained_separation_px : float or None
        Typical nearest-column separation in the training images (pixels),
        used when the pixel size is unknown.
    max_side_px : int
        Refuse to upsample an image beyond this side (memory).
    edge_px : float
        Drop positions closer than this to the first/last pixel centre of the
        input image (its own pixels); -0.5 keeps everything inside the image.
    rescale : float
        Extra resampling factor on top of the sampling rule (as the published
        families' ``rescale``: > 1 enlarges the image the network sees).
    contrast : {"auto", "bright", "dark"}
        Column polarity: "dark" (annular bright field) images are mirrored in
        their range before the model; "auto" decides per image (:func:`apply_contrast`:
        the inner model's vote when it has a ``decisiveness`` method, else or on a tie
        :func:`napari_atombench.core.contrast.estimate_polarity`) and records the
        decision in the result's metadata (``contrast_used``, ``contrast_from``,
        ``contrast_decisiveness``, ``contrast_skewness``, ``contrast_confident``).
        ``locate(..., contrast=...)`` overrides it per call.
    """

    def __init__(self, inner, trained_pixel_size_A: float | None, trained_separation_px: float | None, *,
                 max_side_px: int = 6000, edge_px: float = -0.5, rescale: float = 1.0, contrast: str = "auto"):
        from ..core.contrast import check_contrast

        self.inner = inner
        self.name = inner.name
        self.trained_pixel_size_A = None if trained_pixel_size_A is None else float(trained_pixel_size_A)
        self.trained_separation_px = None if trained_separation_px is None else float(trained_separation_px)
        self.max_side_px = int(max_side_px)
        self.edge_px = float(edge_px)
        self.rescale = check_rescale(rescale, self.name)
        self.contrast = check_contrast(contrast)

    def scale_for(self, image: np.ndarray, pixel_size_A: float | None, *,
                  separation_px: float | None = None) -> tuple[float, str]:
        """Zoom factor (output px per input px, ``rescale`` included) and how it was found.

        The pixel size wins when it is given; otherwise the image's own column
        separation (``separation_px``, estimated when None) is scaled to the
        trained one.
        """
        zoom, how = self._sampling_zoom(image, pixel_size_A, separation_px)
        return zoom * self.rescale, how

    def _sampling_zoom(self, image: np.ndarray, pixel_size_A: float | None,
                       separation_px: float | None) -> tuple[float, str]:
        if self.trained_pixel_size_A is None:
            return 1.0, "off"
        if pixel_size_A is not None and pixel_size_A > 0:
            return float(pixel_size_A) / self.trained_pixel_size_A, "pixel_size"
        sep = estimate_separation_px(image) if separation_px is None else separation_px
        if sep is None or not np.isfinite(sep) or sep <= 0:
            return 1.0, "none"
        return self.trained_separation_px / sep, "estimate_separation"

    def _rescaled(self, image: np.ndarray, pixel_size_A, contrast: str | None = None):
        from ..core.contrast import check_contrast
        from ..core.io import as_image_2d

        image = as_image_2d(image, name="image")
        contrast = self.contrast if contrast is None else check_contrast(contrast)
        sep = estimate_separation_px(image)
        zoom, how = self.scale_for(image, pixel_size_A, separation_px=sep)
        meta = {"lattice_separation_px": sep}
        meta.update(_sampling_disagreement(sep, zoom, how, self.trained_separation_px))
        # the polarity band-pass needs the lattice scale: the image's own, else the trained one mapped back
        trained_sep = self.trained_separation_px / zoom if self.trained_separation_px else None
        bright, contrast_meta = apply_contrast(image, contrast, sep or trained_sep, vote=self._polarity_vote(zoom))
        meta.update(contrast_meta)
        shape = _zoomed_shape(image.shape, zoom)
        if max(shape) > self.max_side_px:
            raise ValueError(
                f"rescaling a {image.shape} image by {zoom:.2f} to the trained sampling would make it "
                f"{shape}: too large (check the pixel size)"
            )
        return image, resample(bright, shape), zoom, how, meta

    def _polarity_vote(self, zoom: float):
        """The inner model's :func:`apply_contrast` vote on the central crop, at its own sampling (None
        when the inner locator does not vote)."""
        if not hasattr(self.inner, "decisiveness"):
            return None
        from ..core.peaks import central_crop

        def vote(bright: np.ndarray) -> float:
            crop = central_crop(bright, POLARITY_VOTE_SIDE_PX / zoom, min_side_px=1)
            return self.inner.decisiveness(resample(crop, _zoomed_shape(crop.shape, zoom)))

        return vote

    def predict_map(self, image, *, pixel_size_A=None, contrast: str | None = None, progress=None,
                    cancelled=None) -> np.ndarray:
        image, scaled, _, _, _ = self._rescaled(image, pixel_size_A, contrast)
        prob = self.inner.predict_map(scaled, progress=progress, cancelled=cancelled)
        return resample(np.asarray(prob, dtype=np.float32), image.shape)

    def locate(self, image, pixel_size_A=None, *, contrast: str | None = None, progress=None,
               cancelled=None) -> LocateResult:
        """Find columns; ``contrast`` (None: the locator's own) as in the class docstring."""
        image, scaled, zoom, how, sampling_meta = self._rescaled(image, pixel_size_A, contrast)
        result = self.inner.locate(scaled, None, progress=progress, cancelled=cancelled)
        positions = positions_to_frame(result.positions_rc, scaled.shape, image.shape)
        positions = positions[filter_border(positions, image.shape, self.edge_px)]
        prob = None
        if result.probability_map is not None and np.ndim(result.probability_map) == 2:
            prob = resample(np.asarray(result.probability_map, dtype=np.float32), image.shape)
        meta = dict(result.metadata)
        meta.update(
            sampling_zoom=zoom,
            sampling_from=how,
            trained_pixel_size_A=self.trained_pixel_size_A,
            pixel_size_A=pixel_size_A,
            # a wrapped family applies its own rescale inside: record the product
            rescale=self.rescale * float(meta.get("rescale", 1.0)),
            edge_px=self.edge_px,
            n_positions=int(len(positions)),
            **sampling_meta,
        )
        return LocateResult(positions_rc=positions, probability_map=prob, metadata=meta)


def _zoomed_shape(shape: tuple[int, ...], zoom: float) -> tuple[int, ...]:
    """The shape an image of ``shape`` has at the model's sampling (at least 16 px a side)."""
    return tuple(max(16, int(round(s * zoom))) for s in shape)


#: side (px, at the model's sampling) of the central crop a model votes on the polarity with
POLARITY_VOTE_SIDE_PX = 256
#: a model's vote counts when the more decisive polarity reaches this decisiveness (below it
#: the model sees few columns either way: sparse atoms, a crop of vacuum)
MIN_VOTE_DECISIVENESS = 0.1
#: a vote within this fraction is a near-tie: it overrules a confident skewness (a confident
#: skewness against the model is the honeycomb case where the skewness reads holes as
#: columns) but not an unconfident one (then neither can tell: bright, with a warning)
POLARITY_TIE_MARGIN = 0.02
#: heatmap level from which a pixel counts as "undecided" (below the model's threshold)
UNDECIDED_MAP_LEVEL = 0.2


def map_decisiveness(prob: np.ndarray, threshold: float) -> float:
    """Pixels of a column heatmap at or above ``threshold`` per pixel between
    :data:`UNDECIDED_MAP_LEVEL` and it: high when the model sees sharp columns, low when
    it half-sees structure everywhere (as on the wrong polarity)."""
    prob = np.asarray(prob)
    decided = int(np.count_nonzero(prob >= threshold))
    undecided = int(np.count_nonzero((prob >= UNDECIDED_MAP_LEVEL) & (prob < threshold)))
    return decided / max(undecided, 1)


def apply_contrast(image: np.ndarray, contrast: str, separation_px: float | None, vote=None) -> tuple[np.ndarray, dict]:
    """``image`` with bright columns, and metadata saying what was decided.

    ``contrast`` "bright" or "dark" is applied as given. "auto" is decided by the
    model when one is given as ``vote`` (a function of a bright-column image returning
    its :func:`map_decisiveness`): the polarity whose image the model finds more
    decisive, when that reaches :data:`MIN_VOTE_DECISIVENESS` (a near-tie,
    :data:`POLARITY_TIE_MARGIN`, only against a confident skewness). Otherwise -- no
    model, a tie, or a model that sees too little either way -- by
    :func:`napari_atombench.core.contrast.estimate_polarity` at ``separation_px``
    (bright, with a warning, when the image does not tell). The
    skewness is ambiguous on honeycomb lattices whose bonds are barely resolved
    (graphene and hBN at low dose; WS2 in ABF), where the holes are the compact
    features; the model, trained on both, is not.
    """
    from ..core.contrast import check_contrast, estimate_polarity, to_bright

    meta: dict[str, Any] = {"contrast": check_contrast(contrast)}
    if contrast == "auto":
        if not separation_px:
            raise ValueError("contrast='auto' needs the column separation (none could be estimated): "
                             "pass contrast='bright' or 'dark'")
        polarity = estimate_polarity(image, separation_px)
        meta.update(polarity.as_metadata(), contrast_from="skewness")
        contrast = polarity.contrast
        if vote is not None:
            scores = {c: float(vote(to_bright(image, c))) for c in ("bright", "dark")}
            meta["contrast_decisiveness"] = {c: round(v, 4) for c, v in scores.items()}
            best, other = sorted(scores, key=scores.get, reverse=True)
            clear = scores[best] > (1.0 + POLARITY_TIE_MARGIN) * scores[other]
            if scores[best] >= MIN_VOTE_DECISIVENESS and scores[best] > scores[other] and (clear or polarity.confident):
                contrast = best
                meta.update(contrast_used=best, contrast_confident=True, contrast_from="model")
        if not meta["contrast_confident"]:
            warnings.warn(f"contrast='auto' could not tell bright from dark columns (skewness "
                          f"{polarity.skewness:+.2f}); assuming bright columns, pass contrast='dark' for ABF/BF",
                          stacklevel=3)
    else:
        meta["contrast_used"] = contrast
    return to_bright(image, contrast), meta


#: pixel size and lattice disagree when the image's column separation, at the
#: trained sampling, is further than this factor from the trained separation
SAMPLING_DISAGREEMENT_FACTOR = 2.0


def _sampling_disagreement(sep_px: float | None, zoom: float, how: str, trained_separation_px: float) -> dict:
    """Warn (and say so in the metadata) when the pixel size puts the lattice at
    more than :data:`SAMPLING_DISAGREEMENT_FACTOR` times the trained separation."""
    if how != "pixel_size" or not sep_px:
        return {}
    ratio = sep_px * zoom / trained_separation_px
    if 1 / SAMPLING_DISAGREEMENT_FACTOR <= ratio <= SAMPLING_DISAGREEMENT_FACTOR:
        return {"sampling_lattice_ratio": round(ratio, 3)}
    warnings.warn(
        f"pixel size and lattice disagree: the image's columns are {sep_px:.1f} px apart, which at the given "
        f"pixel size is {ratio:.2f}x the spacing the model was trained on (check the pixel size; "
        f"sparse or dumbbell images can also cause this)", stacklevel=4)
    return {"sampling_lattice_ratio": round(ratio, 3), "sampling_warning": "pixel size and lattice disagree"}
