"""Atom-position files (labels and predictions): ``x_px, y_px`` CSV <-> (row, col) arrays.

Files use explicit ``x_px, y_px`` columns (x = column, y = row); the
conversion between the two orders happens here and nowhere else.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ._validate import as_positions
from .atomic import atomic_write_text
from .file_checks import FileFormatError, _regular_file, check_pixel_size_A, read_csv_rows

__all__ = ["POSITION_SUFFIXES", "LabelTable", "has_position_header", "read_positions", "write_positions"]

#: File suffixes :func:`read_positions` understands.
POSITION_SUFFIXES = (".csv",)

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
    positions = as_positions(positions_rc)
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
