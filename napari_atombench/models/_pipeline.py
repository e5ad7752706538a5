"""Pieces shared by the AtomNet and AtomSegNet pipelines.

- the published 8-bit conversion and PIL rescale (spec L1/L2 = Z1/Z2);
- device choice (``auto``: CUDA, then MPS, then CPU) and CPU thread/bf16 settings;
- :func:`reuse_freed_memory`: keeps glibc from unmapping the large activation buffers
  between layers, the main CPU cost of a forward pass at 1024² and above;
- :func:`tiled_forward`: overlapping tiles with keep-centre crops, bounded memory,
  progress per tile and cancellation;
- :class:`LocatorBase`: what both family locators share (network placement,
  provenance, the optional Gaussian refinement).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
import platform
import threading
import time
import warnings
from contextlib import nullcontext
from typing import Any, Callable

import numpy as np

from ..core.geometry import positions_to_frame, resample  # noqa: F401  (positions_to_frame: re-exported)
from ..core.io import as_image_2d
from .base import Cancelled, LocateResult, ProgressCallback
from .registry import COMMON_OPTIONS

FIDELITIES = ("default", "original")


# ------------------------------------------------------------------ preprocessing


def to_uint8_original(image: np.ndarray) -> np.ndarray:
    """8-bit conversion of the published wrappers (spec L1/Z1, quirk Q4).

    ``v = (img - min) / (max - min) * 255`` evaluated in the image's own dtype, then
    truncated toward zero: the original's int8 wrap-around read back as an unsigned
    byte is exactly ``uint8(trunc(v))``.
    """
    image = np.asarray(image)
    lo, hi = image.min(), image.max()
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise ValueError("image contains NaN or infinite pixels")
    if hi == lo:
        raise ValueError("image is constant: nothing to locate")
    v = (image - lo) / (hi - lo) * 255
    return np.trunc(v).astype(np.uint8)


def resize_uint8_original(img8: np.ndarray, factor: float) -> np.ndarray:
    """The wrappers' ``change_size`` rescale (spec L2): PIL to (int(W·f), int(H·f)),
    bicubic when enlarging, bilinear when shrinking; identity for f = 1."""
    if factor == 1:
        return img8
    if not factor > 0:
        raise ValueError(f"rescale factor must be > 0, not {factor}")
    from PIL import Image

    h, w = img8.shape
    size = (int(w * factor), int(h * factor))
    if min(size) < 1:
        raise ValueError(f"rescale factor {factor} makes the {h}x{w} image empty")
    resample = Image.BICUBIC if factor > 1 else Image.BILINEAR
    return np.asarray(Image.fromarray(img8, mode="L").resize(size, resample))


def resize_float(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float map to ``shape`` (rows, cols), pixel-centre aligned, no antialiasing
    (the reference pipelines interpolate); see :func:`napari_atombench.core.geometry.resample`."""
    return resample(image, shape, antialias=False)


def check_image(image: Any, min_side: int = 8) -> np.ndarray:
    """Validated 2-D finite image (float32); raises ValueError with a clear message."""
    image = as_image_2d(image, name="image", nan_policy="raise")
    if min(image.shape) < min_side:
        raise ValueError(f"image of {image.shape[0]}x{image.shape[1]} px is too small (need >= {min_side} px)")
    return image


def check_rescale(value: Any, model: str) -> float:
    """``rescale`` as a float; ValueError naming the model unless finite and > 0."""
    try:
        factor = float(value)
    except (TypeError, ValueError):
        factor = float("nan")
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"option rescale for model {model!r} must be a finite number > 0, not {value!r}")
    return factor


def refine_if_asked(image: np.ndarray, positions_rc: np.ndarray, meta: dict, refine: bool) -> np.ndarray:
    """Gaussian refinement (:func:`~napari_atombench.core.refine.refine_gaussian`) when asked;
    records ``refined`` and how many columns did not converge in ``meta``."""
    meta["refined"] = False
    if not refine or len(positions_rc) == 0:
        return positions_rc
    from ..core.refine import refine_gaussian

    result = refine_gaussian(image, positions_rc)
    meta["refined"] = True
    meta["refine_not_converged"] = int(np.count_nonzero(np.asarray(result.status) != "converged"))
    return np.asarray(result.positions_rc, dtype=np.float64).reshape(-1, 2)


# ------------------------------------------------------------------ device / speed


def resolve_device(device: str | None = "auto"):
    """``auto`` -> CUDA if available, else MPS, else CPU; other values are checked."""
    import torch

    name = (device or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available (use --device auto or cpu)")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' requested but MPS is not available (use --device auto or cpu)")
    return dev


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: what glibc's dynamic thresholds settle at in a process that frees large arrays
_SETTLED_MMAP_B, _SETTLED_TRIM_B = 32 << 20, 64 << 20
_reuse_lock = threading.Lock()
_reuse_depth = 0


@functools.lru_cache(maxsize=1)
def _glibc():
    """The C library when it is glibc (looked up once: ``libc_ver`` reads the executable)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


@contextlib.contextmanager
def reuse_freed_memory():
    """Serve large CPU tensors from reusable heap memory while the block runs.

    glibc hands out every block above 32 MiB with a fresh ``mmap`` and unmaps it on
    free, so each layer of a network at 1024² touches its output pages for the first
    time: page faults cost as much as the convolutions (measured: resatomsegnet_s2 at
    1024² 2.5 s -> 1.3 s with reuse). Inside the block large blocks come from the heap
    and freed memory is kept for the next layer; on exit the thresholds go back to
    the values glibc's dynamic thresholds settle at, so the heap shrinks again.
    Re-entrant and thread-safe; a no-op off glibc (macOS, Windows, musl). Also a
    decorator: ``@reuse_freed_memory()``.
    """
    global _reuse_depth
    libc = _glibc()
    if libc is None:
        yield
        return
    with _reuse_lock:
        _reuse_depth += 1
        if _reuse_depth == 1:
            libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)
            libc.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1)
    try:
        yield
    finally:
        with _reuse_lock:
            _reuse_depth -= 1
            if _reuse_depth == 0:
                # no malloc_trim: the next free() above the trim threshold returns the
                # memory anyway, and a forced trim makes the next call fault it back in
                libc.mallopt(_M_MMAP_THRESHOLD, _SETTLED_MMAP_B)
                libc.mallopt(_M_TRIM_THRESHOLD, _SETTLED_TRIM_B)


def autocast_context(device, bf16: bool):
    """bf16 autocast on CPU/CUDA when asked, else a no-op."""
    import torch

    if not bf16:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


# ------------------------------------------------------------------ tiling


def plan_tiles(length: int, tile: int, margin: int, stride: int) -> tuple[int, list[int]]:
    """Tile side and start offsets (multiples of ``stride``) along one axis of ``length``.

    Uses the fewest tiles of at most ``tile`` px whose neighbours overlap by about
    ``2 * margin``, then shrinks the tiles to the smallest side (multiple of
    ``stride``) that still covers ``length``, so little work is wasted on overlap.
    Each tile later keeps its centre, >= ~``margin`` px from its own edges.
    """
    if length <= tile:
        return length, [0]
    if tile - 2 * margin < 2 * stride:
        raise ValueError(f"tile size {tile} too small for an overlap margin of {margin} px")
    n = math.ceil((length - 2 * margin) / (tile - 2 * margin))
    side = min(tile, math.ceil((length + 2 * margin * (n - 1)) / n / stride) * stride)
    starts = [int(s) // stride * stride for s in np.linspace(0, length - side, n)]
    starts[-1] = length - side
    return side, sorted(set(starts))


def _keep_bounds(starts: list[int], tile: int, length: int) -> list[tuple[int, int]]:
    """Kept [lo, hi) of each tile: up to the middle of each overlap."""
    bounds = []
    for i, s in enumerate(starts):
        lo = 0 if i == 0 else (starts[i - 1] + tile + s) // 2
        hi = length if i == len(starts) - 1 else (s + tile + starts[i + 1]) // 2
        bounds.append((lo, hi))
    return bounds


def tiled_forward(
    forward: Callable[..., np.ndarray],
    x: np.ndarray,
    tile: int,
    margin: int,
    stride: int,
    *,
    progress: ProgressCallback | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> np.ndarray:
    """Run ``forward`` ((h, w) float32 -> (C, h, w) float32) over overlapping tiles of ``x``.

    ``forward`` is called as ``forward(tile, window=(row0, col0, H, W))`` so networks
    whose output depends on the image size (UNet's align_corners upsampling) can
    compute as for the whole image.

    ``x`` (H, W) must have sides that are multiples of ``stride`` (or be smaller than
    ``tile``). Returns (C, H, W). Only one tile's activations live at a time.
    """
    h, w = x.shape
    th, rows = plan_tiles(h, tile, margin, stride)
    tw, cols = plan_tiles(w, tile, margin, stride)
    rb, cb = _keep_bounds(rows, th, h), _keep_bounds(cols, tw, w)
    total = len(rows) * len(cols)
    out = None
    done = 0
    for r0, (rlo, rhi) in zip(rows, rb):
        for c0, (clo, chi) in zip(cols, cb):
            if cancelled is not None and cancelled():
                raise Cancelled("cancelled")
            y = forward(x[r0 : r0 + th, c0 : c0 + tw], window=(r0, c0, h, w))
            if out is None:
                out = np.empty((y.shape[0], h, w), dtype=np.float32)
            out[:, rlo:rhi, clo:chi] = y[:, rlo - r0 : rhi - r0, clo - c0 : chi - c0]
            done += 1
            if progress is not None:
                progress(done, total)
    return out


# ------------------------------------------------------------------ locator base


class LocatorBase:
    """State and helpers shared by the family locators (see ``atomnet``/``atomsegnet``)."""

    #: option names a family accepts (besides the common ones)
    family_options: tuple[str, ...] = ()
    common_options = (*COMMON_OPTIONS, "channels_last", "threads")

    def __init__(self, spec, net, provenance: dict, *, device="auto", fidelity="default", **options):
        import torch

        if fidelity not in FIDELITIES:
            raise ValueError(f"fidelity must be one of {FIDELITIES}, not {fidelity!r}")
        unknown = set(options) - set(self.common_options) - set(self.family_options)
        if unknown:
            accepted = ", ".join((*self.common_options, *self.family_options))
            raise ValueError(f"unknown option(s) for model {spec.name!r}: {', '.join(sorted(unknown))} "
                             f"(it takes {accepted})")
        if fidelity == "original" and options.get("refine"):
            raise ValueError(f"option refine does not apply to model {spec.name!r} with fidelity 'original' "
                             "(it reproduces the published positions)")
        self.spec = spec
        self.name = spec.name
        self.fidelity = fidelity
        self.device = resolve_device(device)
        self.provenance = dict(provenance)
        self.rescale = check_rescale(options.get("rescale", 1.0), spec.name)
        self.refine = bool(options.get("refine", False))
        self.bf16 = bool(options.get("bf16", False))
        if self.bf16 and spec.architecture == "nestedunet":
            warnings.warn(
                "bf16 with the NestedUNet's train-mode BatchNorm moves many positions "
                "(about half on a 512² test image); use fp32 for this model",
                stacklevel=3,
            )
        # channels_last speeds up the convolutions; it changes the float summation order,
        # which train-mode BatchNorm (NestedUNet) amplifies beyond 1e-5: off there
        self.channels_last = bool(options.get("channels_last", spec.architecture != "nestedunet"))
        threads = options.get("threads")
        if threads:
            torch.set_num_threads(int(threads))
        self.options = options
        self.net = net.to(self.device)
        if self.channels_last and fidelity == "default":
            self.net = self.net.to(memory_format=torch.channels_last)
        self.last_timings: dict[str, float] = {}

    # -- network call
    def _run_net(self, x: np.ndarray, window: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """(h, w) float32 -> (C, h, w) float32 network output; ``window`` places a tile."""
        import torch

        if hasattr(self.net, "frame"):
            self.net.frame = window

        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None].to(self.device)
        if self.fidelity == "default" and self.channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        mode = torch.no_grad() if self.fidelity == "original" else torch.inference_mode()
        with mode, autocast_context(self.device, self.bf16 and self.fidelity == "default"):
            y = self.net(t)
        return y[0].float().cpu().numpy()

    def _metadata(self, **extra) -> dict:
        meta = {
            "model": self.name,
            "family": self.spec.family,
            "architecture": self.spec.architecture,
            "fidelity": self.fidelity,
            "device": str(self.device),
            "rescale": self.rescale,
            "bf16": self.bf16,
            **self.provenance,
        }
        meta.update(extra)
        return meta

    @staticmethod
    def _timed(meta: dict, key: str, t0: float) -> float:
        now = time.perf_counter()
        meta.setdefault("timings_s", {})[key] = round(now - t0, 4)
        return now

    def predict_map(self, image, *, progress=None, cancelled=None) -> np.ndarray:
        return self._predict(check_image(image), progress, cancelled)[0]

    def locate(self, image, pixel_size_A=None, *, progress=None, cancelled=None) -> LocateResult:
        image = check_image(image)
        prob, positions_rc, meta = self._locate(image, progress, cancelled)
        positions_rc = refine_if_asked(image, positions_rc, meta, self.refine)
        meta["pixel_size_A"] = pixel_size_A
        meta["n_positions"] = int(len(positions_rc))
        return LocateResult(positions_rc=positions_rc, probability_map=prob, metadata=meta)
