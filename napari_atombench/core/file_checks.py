"""Checks that keep hostile files from crashing, hanging or exhausting memory.

Everything here runs before a file library allocates or parses much: the
project's error type for unreadable input (:class:`FileFormatError`), the size
limits and how they are set, the conversion of library exceptions, header
checks for the formats whose readers trust declared sizes (MRC, TIA ``.ser``,
EMD) and the one bounded CSV reader (:func:`read_csv_rows`).

Limits (documented defaults, raised by environment variable or argument):

* ``ATOMBENCH_MAX_IMAGE_BYTES`` (default 2**30, 1 GiB) per image, counted as the
  larger of the stored and the float32 size, checked against the shape and
  dtype a header declares before anything is read;
* ``ATOMBENCH_MAX_CSV_BYTES`` (default 256 MiB) per CSV file, which must be a
  regular file (a link to ``/dev/zero`` is refused), fields at most
  :func:`csv.field_size_limit` characters.

This module imports neither Qt nor napari.
"""

from __future__ import annotations

import csv
import io
import math
import os
import stat
import struct
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = [
    "DEFAULT_MAX_CSV_BYTES",
    "DEFAULT_MAX_IMAGE_BYTES",
    "FileFormatError",
    "LIBRARY_ERRORS",
    "MAX_CSV_BYTES_ENV",
    "MAX_IMAGE_BYTES_ENV",
    "READ_ERRORS",
    "check_pixel_size_A",
    "file_errors",
    "max_csv_bytes",
    "max_image_bytes",
    "read_csv_rows",
]

MAX_IMAGE_BYTES_ENV = "ATOMBENCH_MAX_IMAGE_BYTES"
#: Largest image a reader allocates (bytes, the larger of stored and float32 size).
DEFAULT_MAX_IMAGE_BYTES = 2**30
MAX_CSV_BYTES_ENV = "ATOMBENCH_MAX_CSV_BYTES"
#: Largest CSV file :func:`read_csv_rows` reads.
DEFAULT_MAX_CSV_BYTES = 256 * 2**20
# Pixel sizes a label or case table may state (Å): HR-STEM spans ~0.01-2 Å/px;
# outside this range the number is a typo or a unit mix-up, not a calibration.
_TABLE_PIXEL_SIZE_A = (1e-3, 100.0)


class FileFormatError(ValueError):
    """A file that cannot be read as what its suffix says.

    The message starts with the file's name and says what is wrong in words.
    A ``ValueError`` so that callers written before it still catch it.
    """


#: Exceptions that mean "bad bytes" wherever they are raised: short reads
#: (``OSError``, ``EOFError``, ``struct.error``) and impossible values
#: (``ValueError``, incl. tifffile's ``TiffFileError``, ``UnicodeDecodeError``
#: and our own checks, whose messages name the file). Everything else is
#: converted only when raised inside a library (see :func:`file_errors`).
LIBRARY_ERRORS = (OSError, EOFError, struct.error, ValueError)
#: Everything a reader raises for bad input: catch these to report a bad file.
READ_ERRORS = (FileFormatError, FileNotFoundError)


def _limit_from_env(name: str, default: int, given: int | None) -> int:
    if given is None:
        text = os.environ.get(name, "").strip()
        if not text:
            return default
        try:
            given = int(float(text))
        except ValueError:
            raise ValueError(f"${name} = {text!r} is not a number of bytes") from None
    if not given > 0:
        raise ValueError(f"the byte limit ({name}) must be positive, not {given}")
    return int(given)


def max_image_bytes(max_bytes: int | None = None) -> int:
    """The image size limit in bytes: ``max_bytes``, else ``$ATOMBENCH_MAX_IMAGE_BYTES``, else 1 GiB."""
    return _limit_from_env(MAX_IMAGE_BYTES_ENV, DEFAULT_MAX_IMAGE_BYTES, max_bytes)


def max_csv_bytes(max_bytes: int | None = None) -> int:
    """The CSV size limit in bytes: ``max_bytes``, else ``$ATOMBENCH_MAX_CSV_BYTES``, else 256 MiB."""
    return _limit_from_env(MAX_CSV_BYTES_ENV, DEFAULT_MAX_CSV_BYTES, max_bytes)


def _human_bytes(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def _check_declared_size(path: Path, what: str, shape, dtype, limit: int, available: int | None = None) -> None:
    """Refuse a declared array before it is allocated: too big, negative, or larger than the file."""
    shape = tuple(int(s) for s in shape)
    dtype = np.dtype(dtype)
    if any(s < 0 for s in shape):
        raise FileFormatError(f"{path.name}: {what} declares a negative size {shape}")
    count = math.prod(shape)
    stored = count * dtype.itemsize
    needed = max(stored, count * 4)  # every image becomes float32
    if needed > limit:
        raise FileFormatError(
            f"{path.name}: {what} declares {' x '.join(map(str, shape))} {dtype} pixels "
            f"({_human_bytes(needed)}), over the {_human_bytes(limit)} limit ({MAX_IMAGE_BYTES_ENV})"
        )
    if available is not None and stored > available:
        raise FileFormatError(
            f"{path.name}: {what} declares {' x '.join(map(str, shape))} {dtype} pixels "
            f"({_human_bytes(stored)}) but only {_human_bytes(max(available, 0))} follow: "
            "the file is truncated or its header is corrupt"
        )


def _regular_file(path: Path, what: str) -> int:
    """The size of ``path``, which must be a regular file (not a folder, device or pipe)."""
    if not path.exists():
        raise FileNotFoundError(f"no such {what}: {path}")
    st = path.stat()  # follows links: a link to /dev/zero is a character device
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file (a device, pipe or socket)"
        raise FileFormatError(f"{path.name}: cannot read it as a {what}: it is {kind}")
    return st.st_size


def check_pixel_size_A(value: float, where: str) -> float:
    """Return ``value`` if it is a plausible pixel size (1e-3 to 100 Å), else raise.

    Parameters
    ----------
    value : float
    where : str
        What to name in the error ("cases.csv line 3").

    Raises
    ------
    FileFormatError
        For 0, negative, infinite, NaN or absurd values.
    """
    low, high = _TABLE_PIXEL_SIZE_A
    if not (math.isfinite(value) and low <= value <= high):
        raise FileFormatError(
            f"{where}: pixel size {value!r} Å is not plausible; it must be a positive "
            f"finite number from {low:g} to {high:g} Å"
        )
    return float(value)


_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])  # napari_atombench/


def _raised_in_library(exc: BaseException) -> bool:
    """Whether the innermost frame of ``exc`` is outside napari_atombench (a library's code)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is None or not tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR)


@contextmanager
def file_errors(path: str | os.PathLike, what: str):
    """Report what a file library raises for bad bytes as a :class:`FileFormatError`.

    Converted: :data:`LIBRARY_ERRORS` from anywhere (a ``ValueError`` whose
    message already names the file keeps it), and any other ``Exception`` whose
    innermost frame is in a library, as libraries meet corrupt bytes with
    their own types and bugs: h5py ``KeyError``/``RuntimeError`` (link
    iteration, object open), RosettaSciIO's DM parser ``DM3TagTypeError``,
    ``DM3TagIDError``, ``UnboundLocalError``, tifffile ``ZeroDivisionError``,
    ``TypeError`` (corrupt IFDs), NumPy ``tokenize.TokenError`` (corrupt
    ``.npy`` header), ``OverflowError``, ``IndexError``. Anything else raised
    by our own code (``TypeError``, ``AttributeError``, ``KeyError``,
    ``ZeroDivisionError``, ``RecursionError``...) is a bug and propagates
    unchanged, as does ``MemoryError``.

    Parameters
    ----------
    path : str or path-like
    what : str
        The format, for the message (".tif", "benchmark HDF5").
    """
    name = Path(path).name
    try:
        yield
    except (FileFormatError, FileNotFoundError, MemoryError):
        raise
    except Exception as exc:
        if not (isinstance(exc, LIBRARY_ERRORS) or _raised_in_library(exc)):
            raise
        if isinstance(exc, ValueError) and name in str(exc):
            raise FileFormatError(str(exc)) from exc
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else "no detail given"
        raise FileFormatError(
            f"{name}: could not be read as {what}, the file is corrupt or not of this type "
            f"({type(exc).__name__}: {detail[:300]})"
        ) from exc


def read_csv_rows(path: str | os.PathLike, what: str = "CSV file", max_bytes: int | None = None) -> list[tuple[int, list[str]]]:
    """The non-blank rows of a CSV file with their line numbers, read within limits.

    Parameters
    ----------
    path : str or path-like
        A regular file (a link to a device such as ``/dev/zero`` is refused).
    what : str
        What to call the file in errors ("positions file").
    max_bytes : int, optional
        Largest file read; default ``$ATOMBENCH_MAX_CSV_BYTES``, else 256 MiB.
        Fields longer than :func:`csv.field_size_limit` are refused too.

    Returns
    -------
    list of (int, list of str)
        1-based line number (the record's last line) and fields.

    Raises
    ------
    FileNotFoundError
    FileFormatError
        Not a regular file, too large, not UTF-8 text, NUL bytes, or a
        malformed line (named).
    """
    path = Path(path)
    size = _regular_file(path, what)
    limit = max_csv_bytes(max_bytes)
    too_big = f"{path.name}: {{}}, over the {_human_bytes(limit)} limit for a {what} ({MAX_CSV_BYTES_ENV})"
    if size > limit:
        raise FileFormatError(too_big.format(_human_bytes(size)))
    chunks, total = [], 0
    with open(path, "rb") as handle:  # in chunks: read(limit) would allocate the whole limit
        while chunk := handle.read(1 << 20):
            total += len(chunk)
            if total > limit:  # the file grew since stat
                raise FileFormatError(too_big.format("more"))
            chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise FileFormatError(f"{path.name}, line {line}: not UTF-8 text (byte {raw[exc.start]:#04x}); "
                              f"save the {what} as UTF-8 CSV") from None
    if "\0" in text:
        line = text[: text.index("\0")].count("\n") + 1
        raise FileFormatError(f"{path.name}, line {line}: holds a NUL byte, so it is not a text CSV file")
    reader = csv.reader(io.StringIO(text))
    rows = []
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append((reader.line_num, row))
    except csv.Error as exc:
        raise FileFormatError(f"{path.name}, line {reader.line_num}: malformed CSV ({exc})") from None
    return rows


# ------------------------------------------------------------ format headers

_MRC_MODES = {0: np.uint8, 1: np.int16, 2: np.float32, 4: np.complex64, 6: np.uint16, 12: np.float16}
_TIA_TYPES = {1: "<u1", 2: "<u2", 3: "<u4", 4: "<i1", 5: "<i2", 6: "<i4", 7: "<f4", 8: "<f8", 9: "<c8", 10: "<c16"}


def _check_mrc_header(path: Path, size: int, limit: int) -> None:
    """Check the MRC2014 header (1024 bytes, little-endian as RosettaSciIO reads it).

    A flipped bit in NX/NY/NZ or NEXT (extended header length) otherwise makes
    RosettaSciIO map, and dask plan chunks for, terabytes: the reader hangs.
    """
    if size < 1024:
        raise FileFormatError(f"{path.name}: {size} bytes, shorter than the 1024-byte MRC header")
    with open(path, "rb") as handle:
        head = handle.read(1024)
    nx, ny, nz, mode = struct.unpack_from("<4I", head, 0)
    (extended,) = struct.unpack_from("<I", head, 92)
    if mode not in _MRC_MODES:
        raise FileFormatError(
            f"{path.name}: MRC mode {mode} is not a pixel type (known modes: {sorted(_MRC_MODES)})"
        )
    if extended > size:
        raise FileFormatError(
            f"{path.name}: the MRC header declares a {extended}-byte extended header in a {size}-byte file"
        )
    _check_declared_size(path, "its MRC header", (nz, ny, nx), _MRC_MODES[mode], limit,
                         available=size - 1024 - extended)


def _read_exact(handle, fmt: str, path: Path, what: str, fmt_name: str = "TIA ") -> tuple:
    raw = handle.read(struct.calcsize(fmt))
    if len(raw) != struct.calcsize(fmt):
        raise FileFormatError(f"{path.name}: the file ends inside its {fmt_name}{what}")
    return struct.unpack(fmt, raw)


def _check_ser_header(path: Path, size: int, limit: int) -> None:
    """Check a TIA ``.ser`` header: RosettaSciIO allocates every declared element up front."""
    with open(path, "rb") as handle:
        _, _, version, data_type_id, _, total, valid = _read_exact(handle, "<HHHIIII", path, "header")
        wide = version > 528  # 0x0210 and later store 8-byte offsets
        offsets_at, n_dims = _read_exact(handle, "<QI" if wide else "<II", path, "header")
        if n_dims > 8:
            raise FileFormatError(f"{path.name}: the TIA header declares {n_dims} dimensions (at most 8 are possible)")
        dims = []
        for _ in range(n_dims):
            dim_size, _, _, _, text_length = _read_exact(handle, "<IddII", path, "dimension table")
            handle.seek(text_length, 1)
            (unit_length,) = _read_exact(handle, "<I", path, "dimension table")
            handle.seek(unit_length, 1)
            dims.append(dim_size)
        if handle.tell() > size or offsets_at > size:
            raise FileFormatError(f"{path.name}: the TIA header points past the end of the {size}-byte file")
        if valid > total:
            raise FileFormatError(f"{path.name}: the TIA header declares {valid} valid of {total} elements")
        handle.seek(offsets_at)
        (data_at,) = _read_exact(handle, "<Q" if wide else "<I", path, "offset table")
        spectrum = data_type_id == 0x4120
        handle.seek(data_at + (20 if spectrum else 40))
        (type_code,) = _read_exact(handle, "<H", path, "data element")
        shape = _read_exact(handle, "<I" if spectrum else "<II", path, "data element")[::-1]
    if type_code not in _TIA_TYPES:
        raise FileFormatError(f"{path.name}: TIA data type {type_code} is not a pixel type")
    dtype = _TIA_TYPES[type_code]
    _check_declared_size(path, "its TIA header", (valid, *shape), dtype, limit, available=size - data_at)
    _check_declared_size(path, "its TIA dimension table", (*dims, *shape), dtype, limit)


def _check_emd_datasets(path: Path, limit: int) -> None:
    """Check every dataset an EMD (HDF5) file declares: RosettaSciIO plans dask chunks for
    all of them, which takes seconds for a corrupt 2**31-element shape."""
    import h5py

    def check(name, item):
        if isinstance(item, h5py.Dataset) and item.dtype.kind in "biufc":
            _check_declared_size(path, f"its dataset /{name}", item.shape, item.dtype, limit)

    with file_errors(path, ".emd"), h5py.File(path, "r") as handle:
        handle.visititems(check)
