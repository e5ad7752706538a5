"""Our own models: the ``atombench`` network and weights we trained ourselves.

Registered names (weights shipped in ``napari_atombench/models/weights/``, so
they work offline):

- ``atombench`` — :class:`AtomBenchUNet`, a compact U-Net predicting a
  Gaussian heatmap of column centres at a fixed trained sampling; the default
  model everywhere.
- ``atomnet-sim`` — AtomNet ``resatomsegnet_s2`` trained on our simulator
  (binary-disk targets), run by AtomNet's pipeline.
- ``atomsegnet-sim`` — AtomSegNet ``unet`` trained on our simulator
  (Gaussian-mask targets), run by AtomSegNet's pipeline.

Every one of them records the sampling it was trained at
(``trained_pixel_size_A`` and the typical nearest-column separation in
pixels). :class:`SamplingAwareLocator` rescales an image to that sampling —
from the pixel size when it is known, else from
:func:`napari_atombench.core.peaks.estimate_separation` — runs the model and
maps positions and map back to the input frame.

They are registered in :mod:`napari_atombench.models.catalogue` and built by
the one factory, :func:`napari_atombench.models.registry.get_locator` (which
calls :func:`atombench_locator` for the ``atombench`` family).
"""

from __future__ import annotations

import functools
import time
import warnings
from typing import Any

import numpy as np

from ..core.geometry import resample
from ..core.metrics import filter_border
from ..core.peaks import one_per_plateau
from ._pipeline import (
    autocast_context,
    check_rescale,
    positions_to_frame,
    refine_if_asked,
    resolve_device,
    reuse_freed_memory,
    tiled_forward,
)
from .base import LocateResult
from .registry import ModelSpec, checkpoint_card, load_network, trained_sampling


# ---------------------------------------------------------------------------- network


def build_atombench_unet(base_channels: int = 16, depth: int = 3):
    """Our compact U-Net (see :class:`AtomBenchUNet`)."""
    return _net_classes()(base_channels=base_channels, depth=depth)


@functools.lru_cache(maxsize=1)
def _net_classes():
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Block(nn.Sequential):
        def __init__(self, cin: int, cout: int):
            super().__init__(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            )

    class AtomBenchUNet(nn.Module):
        """Compact U-Net: ``depth`` poolings, channels ``base * 2**level``, BN + ReLU,
        bilinear upsampling and skip concatenation; one output channel of logits
        (``forward`` returns them; apply a sigmoid for the heatmap).

        Input side lengths must be multiples of ``2**depth``.
        """

        def __init__(self, base_channels: int = 16, depth: int = 3):
            super().__init__()
            self.depth = int(depth)
            self.downsampling = 2**self.depth
            chans = [base_channels * 2**k for k in range(self.depth + 1)]
            self.enc = nn.ModuleList([Block(1, chans[0])] + [Block(chans[k - 1], chans[k]) for k in range(1, self.depth + 1)])
            self.dec = nn.ModuleList([Block(chans[k + 1] + chans[k], chans[k]) for k in range(self.depth)])
            self.head = nn.Conv2d(chans[0], 1, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            skips = []
            for k, block in enumerate(self.enc):
                x = block(x if k == 0 else F.max_pool2d(x, 2))
                skips.append(x)
            x = skips.pop()
            for k in reversed(range(self.depth)):
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
                x = self.dec[k](torch.cat([skips[k], x], dim=1))
            return self.head(x)

        def logits(self, x: torch.Tensor) -> torch.Tensor:
            return self.forward(x)

    return AtomBenchUNet


def __getattr__(name: str):  # lazy: importing this module must not import torch
    if name == "AtomBenchUNet":
        return _net_classes()
    raise AttributeError(name)


# --------------------------------------------------------------------- image rescaling


def _estimate_separation_px(image: np.ndarray) -> float | None:
    """Nearest column separation from issue #4's ``core.peaks`` (None if unavailable)."""
    try:
        from ..core.peaks import estimate_separation
    except ImportError:  # pragma: no cover - present after the merge
        return None
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
        their range before the model; "auto" decides per image with
        :func:`napari_atombench.core.contrast.estimate_polarity` and records the
        decision in the result's metadata (``contrast_used``, ``contrast_skewness``,
        ``contrast_confident``). ``locate(..., contrast=...)`` overrides it per call.
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
        sep = _estimate_separation_px(image) if separation_px is None else separation_px
        if sep is None or not np.isfinite(sep) or sep <= 0:
            return 1.0, "none"
        return self.trained_separation_px / sep, "estimate_separation"

    def _rescaled(self, image: np.ndarray, pixel_size_A, contrast: str | None = None):
        from ..core.contrast import check_contrast
        from ..core.io import as_image_2d

        image = as_image_2d(image, name="image")
        contrast = self.contrast if contrast is None else check_contrast(contrast)
        sep = _estimate_separation_px(image)
        zoom, how = self.scale_for(image, pixel_size_A, separation_px=sep)
        meta = {"lattice_separation_px": sep}
        meta.update(_sampling_disagreement(sep, zoom, how, self.trained_separation_px))
        # the polarity band-pass needs the lattice scale: the image's own, else the trained one mapped back
        trained_sep = self.trained_separation_px / zoom if self.trained_separation_px else None
        bright, contrast_meta = apply_contrast(image, contrast, sep or trained_sep)
        meta.update(contrast_meta)
        shape = tuple(max(16, int(round(s * zoom))) for s in image.shape)
        if max(shape) > self.max_side_px:
            raise ValueError(
                f"rescaling a {image.shape} image by {zoom:.2f} to the trained sampling would make it "
                f"{shape}: too large (check the pixel size)"
            )
        return image, resample(bright, shape), zoom, how, meta

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


def apply_contrast(image: np.ndarray, contrast: str, separation_px: float | None) -> tuple[np.ndarray, dict]:
    """``image`` with bright columns, and metadata saying what was decided.

    ``contrast`` "bright" or "dark" is applied as given; "auto" is decided by
    :func:`napari_atombench.core.contrast.estimate_polarity` at ``separation_px``
    (bright, with a warning, when the image does not tell).
    """
    from ..core.contrast import check_contrast, estimate_polarity, to_bright

    meta: dict[str, Any] = {"contrast": check_contrast(contrast)}
    if contrast == "auto":
        if not separation_px:
            raise ValueError("contrast='auto' needs the column separation (none could be estimated): "
                             "pass contrast='bright' or 'dark'")
        polarity = estimate_polarity(image, separation_px)
        meta.update(polarity.as_metadata())
        if not polarity.confident:
            warnings.warn(f"contrast='auto' could not tell bright from dark columns (skewness "
                          f"{polarity.skewness:+.2f}); assuming bright columns, pass contrast='dark' for ABF/BF",
                          stacklevel=3)
        contrast = polarity.contrast
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


# ------------------------------------------------------------------ our network's locator


def heatmap_peaks(prob: np.ndarray, threshold: float = 0.3, min_distance_px: int = 2) -> np.ndarray:
    """Local maxima of a heatmap above ``threshold`` (not on the outermost pixels),
    refined by a probability-weighted centroid in a (2·min_distance_px + 1)² window.
    Returns (N, 2) (row, col)."""
    from scipy.ndimage import maximum_filter

    prob = np.asarray(prob, dtype=np.float32)
    size = 2 * int(min_distance_px) + 1
    peaks = (prob == maximum_filter(prob, size=size, mode="constant", cval=-np.inf)) & (prob > threshold)
    # a maximum on the outermost pixels is a column cut by the border (its centre
    # is outside, or within half a pixel of the edge): not a located column
    peaks[[0, -1], :] = False
    peaks[:, [0, -1]] = False
    r, c = one_per_plateau(peaks)  # two pixels that tie exactly are one column
    if len(r) == 0:
        return np.zeros((0, 2))
    h = int(min_distance_px)
    padded = np.pad(prob, h, mode="constant")
    offs = np.arange(-h, h + 1)
    win = padded[(r + h)[:, None, None] + offs[None, :, None], (c + h)[:, None, None] + offs[None, None, :]]
    win = np.clip(win - 0.5 * threshold, 0, None)
    total = np.maximum(win.sum(axis=(1, 2)), 1e-12)
    dr = (win.sum(axis=2) * offs).sum(1) / total
    dc = (win.sum(axis=1) * offs).sum(1) / total
    return np.column_stack([r + dr, c + dc]).astype(np.float64)


def standardize(image: np.ndarray, window_px: int | None = None) -> np.ndarray:
    """Zero mean, unit standard deviation: over the whole image (``window_px`` None)
    or in a sliding ``window_px`` square, as training standardised each crop of that
    size (so a thickness gradient across a large image does not shift the input)."""
    image = np.asarray(image, dtype=np.float32)
    if window_px is None or window_px >= max(image.shape):
        return (image - image.mean()) / max(float(image.std()), 1e-6)
    from scipy.ndimage import uniform_filter

    x = image.astype(np.float64)
    mean = uniform_filter(x, int(window_px), mode="reflect")
    var = np.clip(uniform_filter(x * x, int(window_px), mode="reflect") - mean**2, 0, None)
    floor = 1e-6 + 1e-3 * float(x.std())  # flat areas (vacuum) must not blow up
    return ((x - mean) / np.maximum(np.sqrt(var), floor)).astype(np.float32)


class AtomBenchLocator:
    """Inference of :class:`AtomBenchUNet` at its trained sampling (wrap it in
    :class:`SamplingAwareLocator` for other samplings): standardisation (whole image,
    or in a sliding window the size of the training crops), reflect padding to a
    multiple of the network's downsampling, overlapping tiles for large images,
    sigmoid heatmap, local maxima + weighted centroids; optionally the Gaussian
    refinement the published families use (``refine``).

    Speed: ``fast`` folds BatchNorm into the convolutions and runs channels_last (fp32,
    the same map up to float summation order); ``bf16`` True/False/"auto" (a timed
    probe decides, once per process); ``tile_size`` 1536 covers a 1024² image (or a
    1208² rescaled one) in one pass, larger images are tiled to bound memory.
    """

    def __init__(self, name: str, net, provenance: dict, *, device: str = "auto", threshold: float = 0.3,
                 min_distance_px: int = 2, tile_size: int = 1536, overlap_px: int = 64,
                 normalize_window_px: int | None = None, contrast: str = "bright", fast: bool = True,
                 bf16: bool | str = False, refine: bool = False):
        import torch

        from ..core.contrast import check_contrast
        from ._fast import fold_batchnorm, resolve_bf16

        self.name = name
        self.device = resolve_device(device)
        self.fast = bool(fast)
        net = net.to(self.device).eval()
        # the network as built (BatchNorm kept): what fine-tuning starts from and saves
        self.source_net = net
        if self.fast:
            net = fold_batchnorm(net).to(memory_format=torch.channels_last)
        self.net = net
        self.bf16 = resolve_bf16(bf16, self.device)
        self.provenance = dict(provenance)
        if not np.isfinite(threshold):
            raise ValueError(f"threshold for model {name!r} must be a finite number, not {threshold!r}")
        self.threshold = float(threshold)
        self.refine = bool(refine)
        self.min_distance_px = int(min_distance_px)
        self.tile_size = int(tile_size)
        self.overlap_px = int(overlap_px)
        self.normalize_window_px = int(normalize_window_px) if normalize_window_px else None
        # "bright" by default: SamplingAwareLocator decides the polarity before rescaling
        self.contrast = check_contrast(contrast)
        self._torch = torch

    def _bright(self, image, contrast: str | None) -> tuple[np.ndarray, dict]:
        from ..core.contrast import check_contrast
        from ..core.io import as_image_2d

        image = as_image_2d(image, name="image")
        contrast = self.contrast if contrast is None else check_contrast(contrast)
        sep = _estimate_separation_px(image) if contrast == "auto" else None
        return apply_contrast(image, contrast, sep)

    def _forward(self, x: np.ndarray, window=None) -> np.ndarray:
        """(h, w) -> (1, h, w) heatmap; h and w multiples of the network's downsampling."""
        torch = self._torch
        with torch.inference_mode(), autocast_context(self.device, self.bf16):
            t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None].to(self.device)
            if self.fast:
                t = t.contiguous(memory_format=torch.channels_last)
            return torch.sigmoid(self.net(t).float())[0].cpu().numpy()

    @reuse_freed_memory()
    def predict_map(self, image, *, contrast: str | None = None, progress=None, cancelled=None) -> np.ndarray:
        """Heatmap of column centres; ``contrast`` None: the locator's own."""
        x = standardize(self._bright(image, contrast)[0], self.normalize_window_px)
        h, w = x.shape
        d = self.net.downsampling
        ph, pw = (-h) % d, (-w) % d
        mode = "reflect" if min(h, w) > max(ph, pw) else "edge"
        xp = np.pad(x, ((0, ph), (0, pw)), mode=mode)
        # tiles start on the pooling grid (stride d), so overlapping tiles agree with
        # one whole-image pass once the margin covers the receptive field
        y = tiled_forward(self._forward, xp, self.tile_size, self.overlap_px, d, progress=progress, cancelled=cancelled)
        return y[0, :h, :w]

    def locate(self, image, pixel_size_A=None, *, contrast: str | None = None, progress=None,
               cancelled=None) -> LocateResult:
        t0 = time.perf_counter()
        image, contrast_meta = self._bright(image, contrast)
        prob = self.predict_map(image, contrast="bright", progress=progress, cancelled=cancelled)
        positions = heatmap_peaks(prob, self.threshold, self.min_distance_px)
        meta = {
            "model": self.name,
            "family": "atombench",
            "device": str(self.device),
            "threshold": self.threshold,
            "fast": self.fast,
            "bf16": self.bf16,
            **contrast_meta,
            **self.provenance,
        }
        positions = refine_if_asked(image, positions, meta, self.refine)
        meta["timings_s"] = {"total": round(time.perf_counter() - t0, 4)}
        return LocateResult(positions_rc=positions, probability_map=prob, metadata=meta)


# ------------------------------------------------------------------------ factory

#: options of :class:`AtomBenchLocator` (plus ``edge_px`` and ``rescale``, applied by the wrapper)
ATOMBENCH_OPTIONS = ("threshold", "min_distance_px", "tile_size", "overlap_px", "normalize_window_px", "bf16",
                     "refine", "fast", "contrast")


def card_options(record: dict[str, Any]) -> dict[str, Any]:
    """Pipeline options a weights card fixes: the standardisation window the weights were
    trained with, the detection threshold selected for them and (adapted weights) the
    contrast rule they were adapted under."""
    options: dict[str, Any] = {"normalize_window_px": record.get("config", {}).get("normalize_window_px")}
    if "threshold" in record:
        options["threshold"] = float(record["threshold"])
    if "contrast" in record:  # adapted weights: the polarity rule they were trained under
        options["contrast"] = record["contrast"]
    return options


def _infer_unet_kwargs(state: dict, spec: ModelSpec, path) -> dict:
    """Builder arguments of an :class:`AtomBenchUNet` checkpoint without a card."""
    if "enc.0.0.weight" not in state:
        found = ", ".join(list(state)[:4]) or "none"
        raise ValueError(f"weights file {path} does not fit model {spec.name!r} (architecture "
                         f"{spec.architecture}): no key enc.0.0.weight (first keys: {found}); pass weights "
                         "trained for this architecture")
    base = int(state["enc.0.0.weight"].shape[0])
    depth = len({k.split(".")[1] for k in state if k.startswith("enc.")}) - 1
    return {"base_channels": base, "depth": depth}


def atombench_locator(spec: ModelSpec, weights=None, *, device: str = "auto", fidelity: str = "default",
                      download: bool = True, sampling_aware: bool = True, **options):
    """The ``atombench`` family's locator (called by ``registry.get_locator``).

    Options are those of :class:`AtomBenchLocator` plus ``edge_px`` and ``rescale``
    (applied in the input image's pixels by :class:`SamplingAwareLocator`); any
    other option raises ``ValueError`` naming it.
    """
    if fidelity != "default":
        raise ValueError(f"model {spec.name!r} has only the 'default' fidelity, not {fidelity!r} "
                         "(there is no published original to reproduce)")
    unknown = sorted(set(options) - set(ATOMBENCH_OPTIONS) - {"edge_px", "rescale"})
    if unknown:
        raise ValueError(f"unknown option(s) for model {spec.name!r}: {', '.join(unknown)} "
                         f"(it takes {', '.join(ATOMBENCH_OPTIONS + ('edge_px', 'rescale'))})")
    record = checkpoint_card(weights) if weights is not None else {}

    def arch_kwargs(state: dict) -> dict:
        return record.get("arch_kwargs") or _infer_unet_kwargs(state, spec, weights)

    net, provenance = load_network(spec, weights, download=download, arch_kwargs=arch_kwargs)
    defaults = dict(spec.options)
    if weights is not None:  # the checkpoint's own card, not the shipped weights'
        defaults = {**{k: v for k, v in defaults.items() if k not in ("threshold", "normalize_window_px")},
                    **card_options(record)}
    merged = {**defaults, **options}
    edge_px = float(merged.pop("edge_px", -0.5))
    rescale = merged.pop("rescale", 1.0)
    # the polarity is decided on the input image, before resampling (by the wrapper)
    contrast = merged.pop("contrast", None)
    inner = AtomBenchLocator(spec.name, net, provenance, device=device, **merged)
    if not sampling_aware:
        # no sampling rule; the wrapper still applies an explicit rescale, edge rule or polarity
        if check_rescale(rescale, spec.name) == 1.0 and "edge_px" not in options and contrast is None:
            return inner
        return SamplingAwareLocator(inner, None, None, rescale=rescale, edge_px=float(options.get("edge_px", -0.5)),
                                    contrast=contrast or "bright")
    pixel_size_A, separation_px = trained_sampling(spec, weights)
    return SamplingAwareLocator(inner, pixel_size_A, separation_px, edge_px=edge_px, rescale=rescale,
                                contrast=contrast or "auto")
