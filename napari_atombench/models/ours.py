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

This module holds the ``atombench`` family's locator and factory; the network is
in :mod:`napari_atombench.models.nets.atombench_unet`, the sampling wrapper in
:mod:`napari_atombench.models.sampling`, heatmap input/output in
:mod:`napari_atombench.models.heatmap` (their names stay importable from here).

They are registered in :mod:`napari_atombench.models.catalogue` and built by
the one factory, :func:`napari_atombench.models.registry.get_locator` (which
calls :func:`atombench_locator` for the ``atombench`` family).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ._pipeline import (  # noqa: F401 - positions_to_frame: part of this module's interface
    autocast_context,
    check_rescale,
    positions_to_frame,
    refine_if_asked,
    resolve_device,
    reuse_freed_memory,
    tiled_forward,
)
from .base import LocateResult
from .heatmap import heatmap_peaks, standardize
from .nets.atombench_unet import build_atombench_unet  # noqa: F401 - the architecture's home name
from .registry import ModelSpec, checkpoint_card, load_network, trained_sampling
from .sampling import SamplingAwareLocator, apply_contrast, estimate_separation_px, resample  # noqa: F401


def __getattr__(name: str):  # lazy: importing this module must not import torch
    if name == "AtomBenchUNet":
        from .nets.atombench_unet import _net_classes

        return _net_classes()
    raise AttributeError(name)


# ------------------------------------------------------------------ our network's locator


def input_planes(images, in_channels: int, light_columns):
    """The network's input from standardised images (B, 1, H, W): for a two-channel (v3)
    network the constant light-columns plane is appended (``light_columns`` a bool, or a
    (B,) tensor of 0/1 per image); a one-channel network gets the images as they are."""
    import torch

    if in_channels == 1:
        return images
    flag = torch.as_tensor(light_columns, dtype=images.dtype, device=images.device).reshape(-1, 1, 1, 1)
    return torch.cat([images, flag.expand_as(images)], dim=1)


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

    ``light_columns``: which columns count, for weights with the v3 light-columns input
    (docs/models-ours.md, label policy): False (default) the heavy-column convention of
    HAADF images and the published benchmark, True also light columns between heavy ones
    (O in iDPC or ABF images). Weights without that input take only False.
    """

    def __init__(self, name: str, net, provenance: dict, *, device: str = "auto", threshold: float = 0.3,
                 min_distance_px: int = 2, tile_size: int = 1536, overlap_px: int = 64,
                 normalize_window_px: int | None = None, contrast: str = "bright", fast: bool = True,
                 bf16: bool | str = False, refine: bool = False, light_columns: bool = False):
        import torch

        from ..core.contrast import check_contrast
        from ._fast import fold_batchnorm, resolve_bf16

        self.name = name
        self.in_channels = int(getattr(net, "in_channels", 1))
        if not isinstance(light_columns, (bool, np.bool_)):
            raise ValueError(f"light_columns for model {name!r} must be True or False, not {light_columns!r}")
        if light_columns and self.in_channels == 1:
            raise ValueError(f"model {name!r}: these weights have no light-columns input (trained before v3), "
                             "so light_columns=True cannot be applied; use v3 weights or leave it False")
        self.light_columns = bool(light_columns)
        self.device = resolve_device(device)
        self.fast = bool(fast)
        net = net.to(self.device).eval()
        # the network as built (BatchNorm kept): what fine-tuning starts from and saves
        self.source_net = net
        if self.fast:
            net = fold_batchnorm(net)
            if hasattr(net, "split_skip_convs"):  # our U-Net: no full-resolution concatenation
                net = net.split_skip_convs()
            net = net.to(memory_format=torch.channels_last)
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
        sep = estimate_separation_px(image) if contrast == "auto" else None
        return apply_contrast(image, contrast, sep, vote=self.decisiveness)

    def decisiveness(self, bright: np.ndarray) -> float:
        """:func:`~napari_atombench.models.sampling.map_decisiveness` of this model's heatmap on the
        central crop of ``bright`` (an image with bright columns, at this model's sampling): the
        model's vote in ``contrast="auto"``."""
        from ..core.peaks import central_crop
        from .sampling import POLARITY_VOTE_SIDE_PX, map_decisiveness

        crop = central_crop(np.asarray(bright, dtype=np.float32), POLARITY_VOTE_SIDE_PX, min_side_px=1)
        return map_decisiveness(self._heatmap(crop), self.threshold)

    def _forward(self, x: np.ndarray, window=None) -> np.ndarray:
        """(h, w) -> (1, h, w) heatmap; h and w multiples of the network's downsampling."""
        torch = self._torch
        with torch.inference_mode(), autocast_context(self.device, self.bf16):
            t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None].to(self.device)
            t = input_planes(t, self.in_channels, self.light_columns)
            if self.fast:
                t = t.contiguous(memory_format=torch.channels_last)
            return torch.sigmoid(self.net(t).float())[0].cpu().numpy()

    def predict_map(self, image, *, contrast: str | None = None, progress=None, cancelled=None) -> np.ndarray:
        """Heatmap of column centres; ``contrast`` None: the locator's own."""
        return self._heatmap(self._bright(image, contrast)[0], progress=progress, cancelled=cancelled)

    @reuse_freed_memory()
    def _heatmap(self, bright: np.ndarray, *, progress=None, cancelled=None) -> np.ndarray:
        """Heatmap of an image already checked and with bright columns."""
        x = standardize(bright, self.normalize_window_px)
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
        prob = self._heatmap(image, progress=progress, cancelled=cancelled)
        positions = heatmap_peaks(prob, self.threshold, self.min_distance_px)
        meta = {
            "model": self.name,
            "family": "atombench",
            "device": str(self.device),
            "threshold": self.threshold,
            "fast": self.fast,
            "bf16": self.bf16,
            **contrast_meta,
            **({"light_columns": self.light_columns} if self.in_channels == 2 else {}),
            **self.provenance,
        }
        positions = refine_if_asked(image, positions, meta, self.refine)
        meta["timings_s"] = {"total": round(time.perf_counter() - t0, 4)}
        return LocateResult(positions_rc=positions, probability_map=prob, metadata=meta)


# ------------------------------------------------------------------------ factory

#: options of :class:`AtomBenchLocator` (plus ``edge_px`` and ``rescale``, applied by the wrapper)
ATOMBENCH_OPTIONS = ("threshold", "min_distance_px", "tile_size", "overlap_px", "normalize_window_px", "bf16",
                     "refine", "fast", "contrast", "light_columns")


def card_options(record: dict[str, Any]) -> dict[str, Any]:
    """Pipeline options a weights card fixes: the standardisation window the weights were
    trained with, the detection threshold selected for them and (adapted weights) the
    contrast rule and the light-columns convention they were adapted under."""
    options: dict[str, Any] = {"normalize_window_px": record.get("config", {}).get("normalize_window_px")}
    if "threshold" in record:
        options["threshold"] = float(record["threshold"])
    if "contrast" in record:  # adapted weights: the polarity rule they were trained under
        options["contrast"] = record["contrast"]
    if "light_columns" in record:  # adapted v3 weights: the column convention they were adapted to
        options["light_columns"] = bool(record["light_columns"])
    return options


def _infer_unet_kwargs(state: dict, spec: ModelSpec, path) -> dict:
    """Builder arguments of an :class:`AtomBenchUNet` checkpoint without a card."""
    if "enc.0.0.weight" not in state:
        found = ", ".join(list(state)[:4]) or "none"
        raise ValueError(f"weights file {path} does not fit model {spec.name!r} (architecture "
                         f"{spec.architecture}): no key enc.0.0.weight (first keys: {found}); pass weights "
                         "trained for this architecture")
    return unet_kwargs(state)


def unet_kwargs(state: dict) -> dict:
    """Builder arguments of an :class:`AtomBenchUNet` read off its state_dict."""
    first = state["enc.0.0.weight"]
    depth = len({k.split(".")[1] for k in state if k.startswith("enc.")}) - 1
    return {"base_channels": int(first.shape[0]), "depth": depth, "in_channels": int(first.shape[1])}


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
