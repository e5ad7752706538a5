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

Position files live in :mod:`.positions_io`, atomic writes in :mod:`.atomic`
and the in-memory checks in :mod:`._validate`; their public names are
re-exported here so that ``from napari_atombench.core.io import ...`` keeps
working. This module imports neither Qt nor napari.
"""

from __future__ import annotations

import logging
import math
import os
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ._validate import _checked_image_2d, _looks_like_rgb, as_image_2d, as_positions, rgb_to_luminance
from ._validate import as_positions as _as_positions  # noqa: F401  (old private name, for code not yet moved)
from .atomic import ATOMIC_TMP_SUFFIX, STALE_TMP_AGE_S, atomic_write_bytes, atomic_write_text
from .positions_io import POSITION_SUFFIXES, LabelTable, has_position_header, read_positions, write_positions
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
    "ATOMIC_TMP_SUFFIX",
    "STALE_TMP_AGE_S",
    "as_positions",
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


# over 80 lines only by its numpydoc docstring (the code is under 80)
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


