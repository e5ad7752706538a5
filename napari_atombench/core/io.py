"""Image and atom-position file I/O.

Images come in as ``float32`` arrays with their pixel size in Å; positions are
``(N, 2)`` float arrays in (row, col) pixels, exactly as napari Points store them.
Files use explicit ``x_px, y_px`` columns (x = column, y = row): the conversion
between the two orders happens here and nowhere else.

Decisions documented here because every caller relies on them:

* **Non-finite pixels.** :func:`as_image_2d` raises by default
  (``nan_policy="raise"``) and names how many pixels and where the first one is.
  With ``nan_policy="replace"`` they are replaced by the median of the finite
  pixels, a :class:`UserWarning` is issued and the count is returned, so that a
  viewer can still show a partly masked image. Science code always calls it
  with ``"raise"``.
* **RGB(A).** Converted to luminance (Rec. 709 weights, alpha dropped) with a
  warning: microscopes record single-channel data, so colour means an export.
* **Unreadable files.** Every reader raises :class:`FileFormatError` (a
  ``ValueError``) whose message starts with the file's name and says what is
  wrong. Only what the file libraries raise for bad bytes is converted
  (:func:`file_errors`); a bug in our code propagates.
* **Size limits.** Declared sizes are checked against a limit before anything
  is allocated: 1 GiB per image (``ATOMBENCH_MAX_IMAGE_BYTES`` or
  ``max_bytes=``), 256 MiB per CSV file (``ATOMBENCH_MAX_CSV_BYTES``), which
  must be a regular file. Details in :mod:`napari_atombench.core.file_checks`.
* **Stacks.** Never flattened silently. :func:`read_image` refuses them unless
  ``allow_stack=True`` (the napari reader opens them as a stack layer), and
  :func:`as_image_2d` raises a ``ValueError`` that says what to do.

This module imports neither Qt nor napari.
"""

from __future__ import annotations

import csv
import errno
import io
import logging
import math
import os
import struct
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .file_checks import (
    DEFAULT_MAX_CSV_BYTES,
    DEFAULT_MAX_IMAGE_BYTES,
    LIBRARY_ERRORS,
    MAX_CSV_BYTES_ENV,
    MAX_IMAGE_BYTES_ENV,
    READ_ERRORS,
    FileFormatError,
    _check_declared_size,
    _check_emd_datasets,
    _check_mrc_header,
    _check_ser_header,
    _read_exact,
    _regular_file,
    check_pixel_size_A,
    file_errors,
    max_csv_bytes,
    max_image_bytes,
    read_csv_rows,
)

__all__ = [
    "DEFAULT_MAX_CSV_BYTES",
    "DEFAULT_MAX_IMAGE_BYTES",
    "FileFormatError",
    "IMAGE_SUFFIXES",
    "LIBRARY_ERRORS",
    "MAX_CSV_BYTES_ENV",
    "MAX_IMAGE_BYTES_ENV",
    "POSITION_SUFFIXES",
    "READ_ERRORS",
    "LabelTable",
    "as_image_2d",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_pixel_size_A",
    "file_errors",
    "has_position_header",
    "length_unit_to_A",
    "max_csv_bytes",
    "max_image_bytes",
    "read_csv_rows",
    "read_image",
    "read_positions",
    "resolve_pixel_size",
    "rgb_to_luminance",
    "write_positions",
]

logger = logging.getLogger(__name__)

#: File suffixes :func:`read_image` understands (lower case).
IMAGE_SUFFIXES = (".tif", ".tiff", ".npy", ".dm3", ".dm4", ".emd", ".ser", ".mrc")
#: File suffixes :func:`read_positions` understands.
POSITION_SUFFIXES = (".csv",)

_RSCIIO_READERS = {
    ".dm3": "rsciio.digitalmicrograph",
    ".dm4": "rsciio.digitalmicrograph",
    ".emd": "rsciio.emd",
    ".ser": "rsciio.tia",
    ".mrc": "rsciio.mrc",
}

# One length unit -> Å. Keys are compared after lower-casing and stripping.
_ANGSTROM_PER_UNIT = {
    "m": 1e10,
    "cm": 1e8,
    "mm": 1e7,
    "um": 1e4,
    "µm": 1e4,
    "μm": 1e4,
    "micron": 1e4,
    "microns": 1e4,
    "micrometer": 1e4,
    "micrometre": 1e4,
    "nm": 10.0,
    "nanometer": 10.0,
    "nanometre": 10.0,
    "a": 1.0,
    "å": 1.0,
    "Å": 1.0,  # U+212B ANGSTROM SIGN
    "ang": 1.0,
    "angstrom": 1.0,
    "angstroms": 1.0,
    "pm": 0.01,
    "picometer": 0.01,
    "picometre": 0.01,
}

# Calibrations outside this range are not HR-STEM pixel sizes; the usual case is
# a TIFF that carries a default 72 dpi "resolution" that no microscope wrote.
_PLAUSIBLE_PIXEL_SIZE_A = (1e-3, 1e4)

_REC709_WEIGHTS = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)

# ----------------------------------------------------------------------------
# Units and array checks
# ----------------------------------------------------------------------------


def length_unit_to_A(unit: str | None) -> float | None:
    """Return how many Å one ``unit`` is, or ``None`` if it is not a length.

    Parameters
    ----------
    unit : str or None
        A unit name as written by microscope software: ``"nm"``, ``"pm"``,
        ``"Å"``, ``"µm"``, ``"micron"``... Reciprocal units (``"1/nm"``) and
        empty strings are not lengths.

    Returns
    -------
    float or None
        Å per unit.
    """
    if unit is None:
        return None
    key = str(unit).strip()
    if not key:
        return None
    if key in _ANGSTROM_PER_UNIT:
        return _ANGSTROM_PER_UNIT[key]
    return _ANGSTROM_PER_UNIT.get(key.lower())


def rgb_to_luminance(rgb: np.ndarray) -> np.ndarray:
    """Convert an ``(H, W, 3)`` or ``(H, W, 4)`` array to luminance.

    Uses Rec. 709 weights; an alpha channel is dropped.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3 or 4)

    Returns
    -------
    ndarray of float32, shape (H, W)
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3) or (H, W, 4) RGB(A) array, got shape {rgb.shape}")
    return rgb[..., :3].astype(np.float32) @ _REC709_WEIGHTS


def _looks_like_rgb(array: np.ndarray) -> bool:
    return array.ndim == 3 and array.shape[-1] in (3, 4) and min(array.shape[:2]) > 4


def as_image_2d(
    image: Any,
    *,
    name: str = "image",
    nan_policy: str = "raise",
) -> np.ndarray:
    """Validate an image for atom-column analysis and return it as 2D float32.

    Parameters
    ----------
    image : array_like
        A 2D image; an ``(H, W, 3|4)`` RGB(A) array is converted to luminance
        with a warning.
    name : str
        What to call the image in error messages.
    nan_policy : {"raise", "replace"}
        What to do with NaN or infinite pixels: raise a ``ValueError``, or
        replace them by the median of the finite pixels (with a warning).

    Returns
    -------
    ndarray of float32, shape (H, W)

    Raises
    ------
    ValueError
        For stacks, empty images, complex data, images without a finite pixel
        and, with ``nan_policy="raise"``, any non-finite pixel.
    """
    return _checked_image_2d(image, name, nan_policy)[0]


def _checked_image_2d(image: Any, name: str, nan_policy: str) -> tuple[np.ndarray, dict]:
    """:func:`as_image_2d`, also returning what it changed (for file metadata)."""
    if nan_policy not in ("raise", "replace"):
        raise ValueError(f"nan_policy must be 'raise' or 'replace', not {nan_policy!r}")
    changes: dict[str, Any] = {}
    array = np.asarray(image)
    if np.iscomplexobj(array):
        raise ValueError(
            f"{name} holds complex numbers (shape {array.shape}); take its modulus or "
            "real part first"
        )
    if array.dtype == bool:
        array = array.astype(np.float32)
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name} is not numeric (dtype {array.dtype})")
    if _looks_like_rgb(array):
        warnings.warn(
            f"{name} is RGB(A) with shape {array.shape}; converted to luminance "
            "(Rec. 709 weights). Export single-channel data from the microscope "
            "software for quantitative work.",
            UserWarning,
            stacklevel=3,
        )
        array = rgb_to_luminance(array)
        changes["rgb_converted"] = True
    if array.ndim != 2:
        if array.ndim == 3:
            hint = (
                f"it looks like a stack of {array.shape[0]} frames: pick one frame "
                "(image[0]) or average aligned frames (image.mean(axis=0)) first"
            )
        else:
            hint = "atom-column analysis needs a single 2D image"
        raise ValueError(f"{name} has shape {array.shape}, not 2D: {hint}")
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape})")
    array = array.astype(np.float32, copy=False)
    finite = np.isfinite(array)
    if not finite.all():
        n_bad = int(array.size - np.count_nonzero(finite))
        if n_bad == array.size:
            raise ValueError(f"{name} has no finite pixel: all {array.size} are NaN or Inf")
        first = np.unravel_index(int(np.argmin(finite)), array.shape)
        where = f"first at row {first[0]}, col {first[1]}"
        if nan_policy == "raise":
            raise ValueError(
                f"{name} has {n_bad} NaN/Inf pixel(s) ({where}); mask or fill them "
                "before analysis (read_image(..., nan_policy='replace') fills them "
                "with the median)"
            )
        fill = float(np.median(array[finite]))
        array = np.where(finite, array, np.float32(fill))
        message = f"{name}: replaced {n_bad} NaN/Inf pixel(s) ({where}) by the median {fill:.6g}"
        logger.warning(message)
        warnings.warn(message, UserWarning, stacklevel=3)
        changes["n_nonfinite_replaced"] = n_bad
    return np.ascontiguousarray(array), changes


def _plausible_pixel_size(pixel_size_A: float | None, source: str, metadata: dict) -> float | None:
    if pixel_size_A is None or not math.isfinite(pixel_size_A) or pixel_size_A <= 0:
        return None
    low, high = _PLAUSIBLE_PIXEL_SIZE_A
    if not low <= pixel_size_A <= high:
        metadata.setdefault("notes", []).append(
            f"ignored a {source} calibration of {pixel_size_A:.4g} Å/px: not a plausible "
            "HR-STEM pixel size; set the pixel size by hand"
        )
        return None
    metadata["pixel_size_source"] = source
    return float(pixel_size_A)


#: pixel sizes from two sources that differ by more than this fraction are reported
PIXEL_SIZE_DISAGREEMENT = 0.01


def resolve_pixel_size(*sources: tuple[str, float | None]) -> tuple[float | None, str]:
    """The one pixel-size rule: the first known value among ``sources`` wins.

    Callers list their sources in the project's order of precedence: the
    user's explicit value (``--pixel-size-A``, a dock's field), then the image
    file, then the labels CSV, then a predictions CSV. Unknown values (None,
    0, negative, NaN) are skipped. A known value that differs from the winner
    by more than :data:`PIXEL_SIZE_DISAGREEMENT` is reported with a
    ``UserWarning`` naming both sources, never silently ignored.

    Parameters
    ----------
    *sources : (name, value) pairs
        ``name`` says where ``value`` (Å/px, or None) came from.

    Returns
    -------
    pixel_size_A : float or None
        None when no source knows it.
    source : str
        The winning source's name ("" when none).
    """
    known = [(name, float(value)) for name, value in sources
             if value is not None and math.isfinite(float(value)) and float(value) > 0]
    if not known:
        return None, ""
    (winner, value), others = known[0], known[1:]
    for name, other in others:
        if abs(other - value) > PIXEL_SIZE_DISAGREEMENT * value:
            warnings.warn(f"pixel size: {winner} says {value:.5g} Å/px but {name} says {other:.5g} Å/px; "
                          f"using {winner}'s", UserWarning, stacklevel=2)
    return value, winner


# ----------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------


def read_image(
    path: str | os.PathLike,
    *,
    allow_stack: bool = False,
    nan_policy: str = "raise",
    max_bytes: int | None = None,
) -> tuple[np.ndarray, float | None, dict]:
    """Read a microscope image and its pixel size.

    Parameters
    ----------
    path : str or path-like
        A ``.tif/.tiff`` (pixel size from ImageJ, OME or resolution tags),
        ``.npy``, or a ``.dm3/.dm4/.emd/.ser/.mrc`` file (read through
        RosettaSciIO; pixel size from its calibrated axes).
    allow_stack : bool
        Return a 3D stack as it is instead of raising.
    nan_policy : {"raise", "replace"}
        See :func:`as_image_2d`.
    max_bytes : int, optional
        Refuse images whose header declares more bytes than this (counted as
        the larger of the stored and the float32 size), before reading them.
        Default ``$ATOMBENCH_MAX_IMAGE_BYTES``, else 1 GiB.

    Returns
    -------
    image : ndarray of float32
        ``(H, W)``, or ``(N, H, W)`` for a stack when ``allow_stack``.
    pixel_size_A : float or None
        Å per pixel, ``None`` when the file has no length calibration.
    metadata : dict
        ``source_path``, ``format``, ``original_shape``, ``original_dtype``,
        ``pixel_size_source`` and, when relevant, ``notes``, ``signals`` (all
        signals of a multi-signal file) and ``n_nonfinite_replaced``.

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    FileFormatError
        For unsupported suffixes, unreadable or oversized files, files without
        an image, and the array problems listed in :func:`as_image_2d`.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such image file: {path}")
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise FileFormatError(
            f"{path.name}: unsupported image type {suffix!r}; atombench reads "
            + ", ".join(IMAGE_SUFFIXES)
        )
    limit = max_image_bytes(max_bytes)
    size = _regular_file(path, f"{suffix} image")
    metadata: dict[str, Any] = {"source_path": str(path)}
    if suffix in (".tif", ".tiff"):
        data, pixel_size_A = _read_tiff(path, metadata, limit)
    elif suffix == ".npy":
        metadata["format"] = "npy"
        data, pixel_size_A = _read_npy(path, size, limit), None
    else:
        data, pixel_size_A = _read_with_rsciio(path, suffix, metadata, limit, size)

    metadata["original_shape"] = tuple(int(s) for s in data.shape)
    metadata["original_dtype"] = str(data.dtype)
    if data.size == 0:
        raise FileFormatError(f"{path.name}: the image is empty (shape {data.shape})")
    is_stack = data.ndim == 3 and not _looks_like_rgb(data)
    try:
        if is_stack and allow_stack:
            checked = [_checked_image_2d(frame, f"{path.name} frame {i}", nan_policy)
                       for i, frame in enumerate(data)]
            image = np.stack([frame for frame, _ in checked])
            replaced = sum(changes.get("n_nonfinite_replaced", 0) for _, changes in checked)
            if replaced:
                metadata["n_nonfinite_replaced"] = replaced
        else:
            image, changes = _checked_image_2d(data, path.name, nan_policy)
            metadata.update(changes)
    except ValueError as exc:  # the array checks name the file first
        raise FileFormatError(str(exc)) from None
    pixel_size_A = _plausible_pixel_size(pixel_size_A, metadata.get("pixel_size_source", suffix), metadata)
    return image, pixel_size_A, metadata


_NPY_MAX_HEADER_BYTES = 10_000  # np.load's own max_header_size


def _read_npy(path: Path, size: int, limit: int) -> np.ndarray:
    """``np.load`` after checking the header: no pickles, a declared size within the limit and the file."""
    with open(path, "rb") as handle, file_errors(path, ".npy"):
        version = np.lib.format.read_magic(handle)
        if version not in ((1, 0), (2, 0)):
            raise FileFormatError(f"{path.name}: .npy format version {version} is not one atombench reads (1.0, 2.0)")
        # NumPy reads the declared header length before checking it: a corrupt
        # length field would allocate up to 4 GiB
        length_format = "<H" if version == (1, 0) else "<I"
        (header_length,) = _read_exact(handle, length_format, path, ".npy header", "")
        if header_length > _NPY_MAX_HEADER_BYTES:
            raise FileFormatError(
                f"{path.name}: the .npy header declares {header_length} header bytes "
                f"(at most {_NPY_MAX_HEADER_BYTES}); the file is corrupt"
            )
        handle.seek(-struct.calcsize(length_format), 1)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(handle)
        header_bytes = handle.tell()
    if dtype.hasobject:
        raise FileFormatError(
            f"{path.name}: the .npy file holds Python objects (dtype {dtype}); atombench "
            "never loads pickles: save the image as a numeric array"
        )
    _check_declared_size(path, "its .npy header", shape, dtype, limit, available=size - header_bytes)
    with file_errors(path, ".npy"):
        return np.asarray(np.load(path, allow_pickle=False))


def _read_tiff(path: Path, metadata: dict, limit: int) -> tuple[np.ndarray, float | None]:
    import tifffile

    with file_errors(path, ".tif"):
        tif = tifffile.TiffFile(path)
    with tif, file_errors(path, ".tif"):
        if not tif.series:
            raise FileFormatError(f"{path.name}: the TIFF holds no image (no readable page)")
        series = tif.series[0]
        if series.dtype is None:
            raise FileFormatError(f"{path.name}: the TIFF's sample format is not a pixel type atombench reads")
        _check_declared_size(path, "its TIFF header", series.shape, series.dtype, limit)
        data = np.asarray(series.asarray())
        metadata["format"] = "tiff"
        pixel_size_A = _tiff_pixel_size_A(tif, metadata)
    return data, pixel_size_A


def _tiff_pixel_size_A(tif, metadata: dict) -> float | None:
    page = tif.pages[0]
    pixel_size_A = None
    if tif.is_ome and tif.ome_metadata:
        pixel_size_A = _ome_pixel_size_A(tif.ome_metadata)
        if pixel_size_A is not None:
            metadata["pixel_size_source"] = "OME PhysicalSizeX"
    x_res = page.tags.get("XResolution")
    res_unit = page.tags.get("ResolutionUnit")
    pixels_per_unit = None
    value = x_res.value if x_res is not None else None
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        num, den = value
        pixels_per_unit = num / den if den else None
    if pixel_size_A is None and pixels_per_unit and tif.is_imagej:
        unit = (tif.imagej_metadata or {}).get("unit")
        per_unit = length_unit_to_A(unit)
        if per_unit is not None:
            pixel_size_A = per_unit / pixels_per_unit
            metadata["pixel_size_source"] = f"ImageJ resolution ({unit})"
    if pixel_size_A is None and pixels_per_unit and res_unit is not None and isinstance(res_unit.value, int):
        per_unit = {2: 2.54e8, 3: 1e8}.get(int(res_unit.value))  # inch, centimetre in Å
        if per_unit is not None:
            pixel_size_A = per_unit / pixels_per_unit
            metadata["pixel_size_source"] = "TIFF resolution tags"
    return pixel_size_A


def _ome_pixel_size_A(ome_xml: str) -> float | None:
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(ome_xml)
    except ET.ParseError:
        return None
    for element in root.iter():
        if element.tag.endswith("Pixels") and "PhysicalSizeX" in element.attrib:
            unit = element.attrib.get("PhysicalSizeXUnit", "µm")
            per_unit = length_unit_to_A(unit)
            if per_unit is None:
                return None
            try:
                return float(element.attrib["PhysicalSizeX"]) * per_unit
            except ValueError:
                return None
    return None


def _read_with_rsciio(path: Path, suffix: str, metadata: dict, limit: int, size: int) -> tuple[np.ndarray, float | None]:
    import importlib

    if suffix == ".mrc":
        _check_mrc_header(path, size, limit)
    elif suffix == ".ser":
        _check_ser_header(path, size, limit)
    elif suffix == ".emd":
        _check_emd_datasets(path, limit)
    module = importlib.import_module(_RSCIIO_READERS[suffix])
    with file_errors(path, suffix):
        # lazy: shapes and dtypes are known before any pixel is read
        signals = module.file_reader(str(path), lazy=True)
    if not signals:
        raise FileFormatError(f"{path.name}: the file holds no data")
    metadata["format"] = suffix.lstrip(".")
    summaries = []
    chosen = None
    for signal in signals:
        data = signal["data"]
        title = (signal.get("metadata", {}) or {}).get("General", {}).get("title", "")
        summaries.append({"title": title, "shape": tuple(int(s) for s in data.shape)})
        if chosen is None and data.ndim in (2, 3) and np.dtype(data.dtype).kind != "c":
            chosen = signal
    metadata["signals"] = summaries
    if chosen is None:
        raise FileFormatError(
            f"{path.name}: no 2D image among its signals "
            + ", ".join(f"{s['title'] or '?'} {s['shape']}" for s in summaries)
        )
    metadata["signal_title"] = (chosen.get("metadata", {}) or {}).get("General", {}).get("title", "")
    _check_declared_size(path, f"its signal {metadata['signal_title']!r}", chosen["data"].shape,
                         chosen["data"].dtype, limit)
    with file_errors(path, suffix):
        data = np.asarray(chosen["data"])
    return data, _rsciio_pixel_size_A(chosen, suffix, metadata)


def _rsciio_pixel_size_A(chosen: dict, suffix: str, metadata: dict) -> float | None:
    axes = [ax for ax in chosen.get("axes", []) if ax.get("size", 2) > 1 or len(chosen["axes"]) == 2]
    pixel_size_A = None
    if len(axes) >= 2:
        x_axis, y_axis = axes[-1], axes[-2]
        x_per_unit = length_unit_to_A(x_axis.get("units"))
        y_per_unit = length_unit_to_A(y_axis.get("units"))
        if x_per_unit is not None:
            pixel_size_A = float(x_axis.get("scale", 1.0)) * x_per_unit
            metadata["pixel_size_source"] = f"{suffix} axes ({x_axis.get('units')})"
            if y_per_unit is not None:
                y_size = float(y_axis.get("scale", 1.0)) * y_per_unit
                if not math.isclose(y_size, pixel_size_A, rel_tol=0.01):
                    metadata.setdefault("notes", []).append(
                        f"non-square pixels: x {pixel_size_A:.5g} Å, y {y_size:.5g} Å; using x"
                    )
        elif x_axis.get("units"):
            metadata.setdefault("notes", []).append(
                f"axis unit {x_axis.get('units')!r} is not a length; no pixel size"
            )
    return pixel_size_A


# ----------------------------------------------------------------------------
# Atomic writes
# ----------------------------------------------------------------------------


#: Temporary files of :func:`atomic_write_bytes` are ``.<name>.<pid>.<random>`` + this suffix.
ATOMIC_TMP_SUFFIX = ".atombench-tmp"
#: A temporary file this old is stale even if its pid runs again (pids are reused).
STALE_TMP_AGE_S = 24 * 3600


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never half.

    The bytes go to a temporary file ``.<name>.<pid>.<random>.atombench-tmp`` in
    the same folder, are flushed to disk, and the temporary file is renamed over
    the target (atomic on POSIX and Windows). On any failure the temporary file
    is removed and the old file is left untouched. A writer killed before it
    could clean up leaves its temporary file behind; the next write of the same
    target removes those whose process no longer runs.

    A symbolic link is followed: the file it points to is replaced and the link
    kept (renaming over the link itself would turn it into a regular file and
    leave its target stale).

    Parameters
    ----------
    path : str or path-like
    data : bytes

    Returns
    -------
    pathlib.Path
        The path written (as given, i.e. the link when ``path`` is one).

    Raises
    ------
    IsADirectoryError
        ``path`` is a folder.
    NotADirectoryError
        A parent of ``path`` is a file.
    """
    given = Path(path)
    target = Path(os.path.realpath(given))  # through symlinks, also dangling ones
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(given))
    _make_parent_folder(target.parent, given)
    _remove_stale_temporaries(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=ATOMIC_TMP_SUFFIX,
                                    dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600; keep the old file's mode, or the umask default
        try:
            mode = target.stat().st_mode & 0o777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, target)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    return given


def _make_parent_folder(folder: Path, given: Path) -> None:
    """Create ``folder`` (and its parents), naming a parent that is a file in the error."""
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, f"cannot write here: {parent} is a file, not a folder",
                                         str(given))
            break
    folder.mkdir(parents=True, exist_ok=True)


def _remove_stale_temporaries(target: Path) -> None:
    """Remove temporary files of earlier writes of ``target`` whose writer process is gone."""
    prefix = f".{target.name}."
    try:
        names = [n for n in os.listdir(target.parent) if n.startswith(prefix) and n.endswith(ATOMIC_TMP_SUFFIX)]
    except OSError:
        return
    for name in names:
        pid_text = name[len(prefix):].split(".", 1)[0]
        try:
            age_s = time.time() - os.stat(target.parent / name).st_mtime
            running = pid_text.isdigit() and (int(pid_text) == os.getpid() or _process_alive(int(pid_text)))
            if running and age_s < STALE_TMP_AGE_S:
                continue  # a write in progress (another thread or process); it cleans up itself
            os.unlink(target.parent / name)
        except OSError:
            pass


def _process_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill would terminate it there; rely on the age rule
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but is not ours, or we cannot tell: keep its file
    return True


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Text version of :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode(encoding))


# ----------------------------------------------------------------------------
# Positions (labels and predictions)
# ----------------------------------------------------------------------------


@dataclass
class LabelTable:
    """Atom-column positions read from a file.

    Attributes
    ----------
    positions_rc : ndarray of float64, shape (N, 2)
        (row, col) in pixels.
    features : pandas.DataFrame
        One row per position with every extra column of the file (species,
        fit amplitude, status...). ``x_A, y_A`` are not repeated here.
    pixel_size_A : float or None
        Recovered from ``x_A / x_px`` when the file carries both.
    source_path : str or None
    """

    positions_rc: np.ndarray
    features: pd.DataFrame = field(default_factory=pd.DataFrame)
    pixel_size_A: float | None = None
    source_path: str | None = None

    def __len__(self) -> int:
        return len(self.positions_rc)


# Accepted (x column, y column) headers, most explicit first. napari's own
# Points CSV export writes axis-0 (row) and axis-1 (col).
_POSITION_HEADERS = (("x_px", "y_px"), ("x", "y"), ("axis-1", "axis-0"))


def _as_positions(positions_rc: Any, what: str = "positions_rc") -> np.ndarray:
    array = np.asarray(positions_rc, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 2), dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"{what} must have shape (N, 2) as (row, col); got {array.shape}")
    if not np.isfinite(array).all():
        bad = int(np.flatnonzero(~np.isfinite(array).all(axis=1))[0])
        raise ValueError(f"{what} row {bad} is not finite: {array[bad].tolist()}")
    return array


def write_positions(
    path: str | os.PathLike,
    positions_rc: Any,
    pixel_size_A: float | None = None,
    features: pd.DataFrame | Mapping[str, Any] | None = None,
) -> Path:
    """Write positions to a CSV file, atomically.

    Columns: ``x_px, y_px`` (x = column, y = row, pixel centres at integers),
    then ``x_A, y_A`` when ``pixel_size_A`` is given, then one column per
    feature.

    Parameters
    ----------
    path : str or path-like
    positions_rc : array_like, shape (N, 2)
        (row, col) in pixels.
    pixel_size_A : float, optional
    features : DataFrame or mapping of name -> sequence, optional
        Per-point values, N of each.

    Returns
    -------
    pathlib.Path
    """
    positions = _as_positions(positions_rc)
    table = pd.DataFrame({"x_px": positions[:, 1], "y_px": positions[:, 0]})
    if pixel_size_A is not None:
        if not (math.isfinite(pixel_size_A) and pixel_size_A > 0):
            raise ValueError(f"pixel_size_A must be a positive number, not {pixel_size_A!r}")
        table["x_A"] = positions[:, 1] * pixel_size_A
        table["y_A"] = positions[:, 0] * pixel_size_A
    if features is not None:
        extra = pd.DataFrame(features).reset_index(drop=True)
        if len(extra.columns) and len(extra) != len(positions):
            raise ValueError(f"features have {len(extra)} rows for {len(positions)} positions")
        for column in extra.columns:
            if str(column) in table.columns:
                continue
            table[str(column)] = extra[column].to_numpy()
    buffer = io.StringIO()
    table.to_csv(buffer, index=False, float_format="%.6f", lineterminator="\n")
    return atomic_write_text(path, buffer.getvalue())


def _position_columns(header: list[str]) -> tuple[int, int] | None:
    """(x index, y index) of the first accepted pair of position columns in ``header``."""
    lowered = [h.strip().lower() for h in header]
    for x_name, y_name in _POSITION_HEADERS:
        if x_name in lowered and y_name in lowered:
            return lowered.index(x_name), lowered.index(y_name)
    return None


def has_position_header(path: str | os.PathLike) -> bool:
    """Whether the first non-blank line of ``path`` is a header :func:`read_positions` accepts.

    Reads at most 64 KiB; never raises for a bad file (``False``).
    """
    path = Path(path)
    try:
        _regular_file(path, "positions file")
        with open(path, "rb") as handle:
            head = handle.read(65536).decode("utf-8-sig", errors="replace")
        for row in csv.reader(io.StringIO(head)):
            if any(cell.strip() for cell in row):
                return _position_columns(row) is not None
    except (OSError, csv.Error, FileFormatError):
        return False
    return False


def read_positions(path: str | os.PathLike, max_bytes: int | None = None) -> LabelTable:
    """Read positions from a CSV file.

    Accepted headers, checked in this order: ``x_px, y_px`` (ours), ``x, y``
    (pixels, x = column) and napari's own ``axis-0, axis-1`` (row, col). Every
    other column becomes a feature; numeric columns are parsed as numbers.

    Parameters
    ----------
    path : str or path-like
    max_bytes : int, optional
        See :func:`read_csv_rows`.

    Returns
    -------
    LabelTable

    Raises
    ------
    FileNotFoundError
    FileFormatError
        For an empty, oversized or non-text file, missing position columns, a
        line with the wrong number of fields, a position that is not a finite
        number, or an ``x_A`` column that gives an implausible pixel size; the
        message names the file and the line.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such positions file: {path}")
    numbered = read_csv_rows(path, "positions file", max_bytes)
    if not numbered:
        raise FileFormatError(f"{path.name}: the file is empty; expected a header with x_px,y_px")
    header_line, header = numbered[0]
    header = [cell.strip() for cell in header]
    lowered = [h.lower() for h in header]
    columns = _position_columns(header)
    if columns is None:
        raise FileFormatError(
            f"{path.name}, line {header_line}: no position columns; expected 'x_px,y_px' "
            f"(or 'x,y' / napari's 'axis-0,axis-1'), found {header[:20]}"
        )
    x_index, y_index = columns
    skip = {x_index, y_index}
    skip |= {lowered.index(n) for n in ("x_a", "y_a", "index") if n in lowered}
    feature_columns = [(i, header[i]) for i in range(len(header)) if i not in skip]
    positions = []
    feature_values: dict[str, list[str]] = {name: [] for _, name in feature_columns}
    for line_no, row in numbered[1:]:
        if len(row) != len(header):
            raise FileFormatError(
                f"{path.name}, line {line_no}: {len(row)} field(s) where the header has {len(header)}"
            )
        positions.append([_finite_cell(path, line_no, header[i], row[i]) for i in (y_index, x_index)])
        for index, name in feature_columns:
            feature_values[name].append(row[index].strip())
    positions_rc = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    features = pd.DataFrame({name: _parse_column(values) for name, values in feature_values.items()})
    pixel_size_A = None
    if "x_a" in lowered and lowered[x_index] == "x_px" and len(positions_rc):
        xa_index = lowered.index("x_a")
        x_A = np.array([_finite_cell(path, n, header[xa_index], r[xa_index]) if r[xa_index].strip() else np.nan
                        for n, r in numbered[1:]])
        x_px = positions_rc[:, 1]
        usable = (np.abs(x_px) > 1.0) & np.isfinite(x_A)
        if usable.any():
            ratio = float(np.median(x_A[usable] / x_px[usable]))
            pixel_size_A = check_pixel_size_A(ratio, f"{path.name}: x_A / x_px")
    return LabelTable(positions_rc, features, pixel_size_A, str(path))


def _finite_cell(path: Path, line_no: int, name: str, cell: str) -> float:
    cell = cell.strip()
    try:
        value = float(cell)
    except ValueError:
        raise FileFormatError(f"{path.name}, line {line_no}: {name} = {cell[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise FileFormatError(f"{path.name}, line {line_no}: {name} = {cell[:40]!r} is not finite")
    return value


def _parse_column(values: list[str]) -> Any:
    numeric = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
    if len(values) and numeric.notna().sum() == sum(1 for v in values if v != ""):
        return numeric.to_numpy()
    return np.asarray(values, dtype=object)
