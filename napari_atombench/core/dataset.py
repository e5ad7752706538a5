"""Benchmark datasets: folder datasets, the published ``wei_atom.h5`` set, simulated series.

A :class:`Dataset` is a list of :class:`Case` records plus a case table
(:meth:`Dataset.table`). A case only *describes* where its image and labels
are; :func:`load_case` reads them. Cases are small and picklable, so a batch
run can ship them to worker processes or to a ``dask.distributed`` cluster.

Three sources:

* **Folder dataset** (:func:`read_folder_dataset`, :func:`write_folder_dataset`):
  a directory with ``cases.csv``. Required columns ``case, image, labels,
  pixel_size_A`` (paths relative to the folder; an empty pixel size means
  unknown); optional ``material, zone_axis, modality, kind, source, licence``;
  any other column is kept in :attr:`Case.extra`. This is how users benchmark
  their own collections.
* **The published benchmark set** (Wei, Blaiszik, Morgan & Voyles;
  Materials Data Facility / Foundry, DOI 10.18126/e73h-3w6n, CC-BY 4.0): one
  HDF5 file ``wei_atom.h5`` with ``/imgs``, ``/raw``, ``/coords`` (N×2, column
  0 = x, column 1 = y) and ``/metadata``. The key names inside are not
  documented, so :func:`read_wei_atom` is tolerant: :func:`describe_h5` lists
  what a file holds, the reader accepts images and coordinates stored as one
  dataset per image or as one stacked array, metadata as attributes, per-image
  datasets, per-column arrays or a compound table, and fails with a message
  naming the key and what it expected when something does not fit.
  :func:`fetch_wei_atom` finds or downloads the file.
* **Simulated series** (:func:`series_dataset`): in-memory cases made by the
  simulator, one per knob value.

Case kinds: ``experimental``, ``generality`` (the 34 experimental images of
other materials in the published set), ``simulated``. For ``wei_atom.h5`` the
kind comes from the metadata ``Type`` (anything containing "sim" is
simulated); an experimental image whose material is neither SrTiO3 nor WS2 is
a ``generality`` case.

:class:`Case` and :class:`Dataset` live in :mod:`.cases`, the ``wei_atom.h5``
reader in :mod:`.wei_atom`; their public names are re-exported here. This module imports neither Qt nor napari.
"""

from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from .file_checks import FileFormatError, check_pixel_size_A, file_errors, read_csv_rows
from .cases import _REQUIRED, _TEXT_FIELDS, CASE_COLUMNS, Case, CaseData, Dataset
from .h5_inventory import describe_h5
from .wei_atom import (
    DATA_DIR_ENV,
    WEI_ATOM_DOI,
    WEI_ATOM_FILENAME,
    WEI_ATOM_URL,
    WEI_GENERALITY_COUNT,
    WEI_GENERALITY_KEYS,
    _read_wei_case,
    fetch_wei_atom,
    generality_note,
    read_wei_atom,
)
from ._validate import as_image_2d, as_positions
from .io import atomic_write_text, read_image, read_positions, write_positions

__all__ = [
    "CASE_COLUMNS",
    "DATA_DIR_ENV",
    "WEI_ATOM_DOI",
    "WEI_ATOM_FILENAME",
    "WEI_ATOM_URL",
    "Case",
    "CaseData",
    "Dataset",
    "WEI_GENERALITY_COUNT",
    "WEI_GENERALITY_KEYS",
    "dataset_info",
    "describe_h5",
    "generality_note",
    "fetch_wei_atom",
    "load_case",
    "open_dataset",
    "read_folder_dataset",
    "read_wei_atom",
    "series_dataset",
    "write_folder_dataset",
]

logger = logging.getLogger(__name__)

def load_case(case: Case) -> CaseData:
    """Read a case's image (validated 2D float32) and labels ((N, 2) row, col)."""
    raw = None
    if case.image is not None:
        image = as_image_2d(case.image, name=case.case)
        truth = as_positions(case.truth_rc if case.truth_rc is not None else np.zeros((0, 2)), "truth_rc")
        raw = case.raw
    elif case.h5_path is not None:
        with file_errors(case.h5_path, "benchmark HDF5"):
            image, truth, raw = _read_wei_case(case.h5_path, case.h5_key)
            truth = as_positions(truth, f"{Path(case.h5_path).name}: coordinates of image {case.h5_key}")
    elif case.image_path is not None:
        image, _, _ = read_image(case.image_path)
        truth = read_positions(case.labels_path).positions_rc if case.labels_path else np.zeros((0, 2))
    else:
        raise ValueError(f"case {case.case!r} has no image source")
    return CaseData(image, truth, raw, case.pixel_size_A)


# ------------------------------------------------------------------ folder datasets


def _optional_float(value) -> float | None:
    """An extra column's value as a number, ``None`` when empty or NaN; ``ValueError`` when text."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _case_table(table_path: Path) -> list[tuple[int, dict[str, str]]]:
    """``cases.csv`` as (line number, row) pairs; every row has exactly the header's fields."""
    rows = read_csv_rows(table_path, "case table")
    if not rows:
        raise FileFormatError(f"{table_path}: the file is empty; expected a header with {', '.join(_REQUIRED)}")
    header_line, header = rows[0]
    header = [cell.strip() for cell in header]
    missing = [c for c in _REQUIRED if c not in header]
    if missing:
        raise FileFormatError(f"{table_path} lacks the required column(s) {', '.join(missing)} (header on line {header_line})")
    records = []
    for line_no, row in rows[1:]:
        if len(row) != len(header):
            raise FileFormatError(
                f"{table_path}, line {line_no}: {len(row)} field(s) where the header has {len(header)}"
            )
        records.append((line_no, {name: cell.strip() for name, cell in zip(header, row)}))
    return records


def _case_pixel_size_A(table_path: Path, line_no: int, cell: str) -> float | None:
    if not cell:
        return None
    try:
        value = float(cell)
    except ValueError:
        raise FileFormatError(f"{table_path}, line {line_no}: pixel_size_A {cell[:40]!r} is not a number") from None
    return check_pixel_size_A(value, f"{table_path}, line {line_no}")


def read_folder_dataset(folder: str | os.PathLike) -> Dataset:
    """Read a folder dataset described by ``<folder>/cases.csv``.

    Raises
    ------
    FileNotFoundError
        No ``cases.csv``, or files it names are missing (all listed).
    FileFormatError
        Required columns missing, a row with too many or too few fields,
        duplicate case names, pixel sizes that are not numbers from 1e-3 to
        100 Å (each named by its line).
    """
    folder = Path(folder)
    table_path = folder / "cases.csv"
    if not table_path.is_file():
        raise FileNotFoundError(f"{folder} is not a folder dataset: it has no cases.csv")
    records = _case_table(table_path)
    names = [row["case"] for _, row in records]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise FileFormatError(f"{table_path}: duplicate case names {', '.join(duplicated)}")
    cases, absent = [], []
    for line_no, row in records:
        pixel_size_A = _case_pixel_size_A(table_path, line_no, row["pixel_size_A"])
        image_path = folder / row["image"]
        labels_path = folder / row["labels"] if row["labels"] else None
        absent += [str(p) for p in (image_path, labels_path) if p is not None and not p.is_file()]
        extra = {}
        for column, value in row.items():
            if column in CASE_COLUMNS:
                continue
            try:
                extra[column] = _optional_float(value)
            except ValueError:
                extra[column] = value
        cases.append(
            Case(
                case=row["case"],
                pixel_size_A=pixel_size_A,
                extra=extra,
                image_path=str(image_path),
                labels_path=None if labels_path is None else str(labels_path),
                **{name: row.get(name, "") for name in _TEXT_FIELDS},
            )
        )
    if absent:
        raise FileNotFoundError(f"{table_path} names missing file(s): {', '.join(absent)}")
    return Dataset(folder.name, cases, str(folder))


def write_folder_dataset(folder: str | os.PathLike, cases: Iterable[Case]) -> Dataset:
    """Write cases as a folder dataset (``.npy`` images, labels CSVs, ``cases.csv``).

    Returns the dataset read back from the folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for case in cases:
        data = load_case(case)
        if not re.fullmatch(r"[\w.-]+", case.case):
            raise ValueError(f"case name {case.case!r} is not usable as a file name")
        image_name, labels_name = f"{case.case}.npy", f"{case.case}_labels.csv"
        np.save(folder / image_name, data.image.astype(np.float32))
        write_positions(folder / labels_name, data.truth_rc, pixel_size_A=case.pixel_size_A)
        row = {"case": case.case, "image": image_name, "labels": labels_name, "pixel_size_A": case.pixel_size_A}
        row.update({name: getattr(case, name) for name in _TEXT_FIELDS})
        row.update({k: v for k, v in case.extra.items() if np.isscalar(v) or v is None})
        rows.append(row)
    table = pd.DataFrame(rows)
    atomic_write_text(folder / "cases.csv", table.to_csv(index=False, lineterminator="\n"))
    return read_folder_dataset(folder)


# ------------------------------------------------------------------ simulated series and dispatch


def series_dataset(series) -> Dataset:
    """In-memory cases of a :class:`~napari_atombench.core.benchmark.DegradationSeries`."""
    cases = []
    for i, (value, (image, truth_rc, pixel_size_A)) in enumerate(zip(series.values, series.images)):
        cases.append(
            Case(
                case=f"{series.name}_{i:02d}",
                pixel_size_A=pixel_size_A,
                kind="simulated",
                material=series.material,
                source="napari_atombench simulator",
                extra={"series": series.name, "knob": series.knob, "value": float(value)},
                image=np.asarray(image, dtype=np.float32),
                truth_rc=np.asarray(truth_rc, dtype=float).reshape(-1, 2),
            )
        )
    return Dataset(series.name, cases)


def open_dataset(source: str | os.PathLike, *, path: str | os.PathLike | None = None, download: bool = True) -> Dataset:
    """A folder dataset, an HDF5 file, or ``"wei_atom"`` (found with :func:`fetch_wei_atom`)."""
    text = str(source)
    if text in ("wei_atom", WEI_ATOM_FILENAME) and not Path(text).exists():
        return read_wei_atom(fetch_wei_atom(path, download=download))
    source = Path(source)
    if source.is_dir():
        return read_folder_dataset(source)
    if source.suffix.lower() in (".h5", ".hdf5"):
        with file_errors(source, "benchmark HDF5"):
            return read_wei_atom(source)
    if not source.exists():
        raise FileNotFoundError(f"no dataset at {source} (expected a folder with cases.csv, an .h5 file or 'wei_atom')")
    raise ValueError(f"{source} is neither a folder dataset nor an HDF5 file")


def dataset_info(path: str | os.PathLike) -> tuple[str, bool]:
    """The inventory ``atombench dataset info`` prints, and whether the file reads as a dataset.

    The file listing (HDF5), then case count, kinds, materials, pixel sizes and
    how metadata rows were matched; a file that does not read as a dataset gets
    its listing and the reason.
    """
    path = Path(path)
    if path.is_dir():
        dataset = read_folder_dataset(path)
        lines = [f"{path}: folder dataset, {len(dataset)} cases"]
    else:
        with file_errors(path, "benchmark HDF5"):
            lines = [describe_h5(path)]
        try:
            with file_errors(path, "benchmark HDF5"):
                dataset = read_wei_atom(path)
        except (ValueError, OSError) as exc:
            return "\n".join(lines + [f"NOT READABLE as a benchmark dataset: {exc}"]), False
    table = dataset.table()
    lines.append(f"cases: {len(dataset)}")
    for column in ("kind", "material"):
        counts = table[column].replace("", "(none)").value_counts()
        lines.append(f"{column}s: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    known = table["pixel_size_A"].notna()
    if known.any():
        lines.append(f"pixel sizes: {known.sum()} known, {table.loc[known, 'pixel_size_A'].min():.4g}–"
                     f"{table.loc[known, 'pixel_size_A'].max():.4g} Å")
    else:
        lines.append("pixel sizes: none known")
    if "metadata_match" in table:
        lines.append(f"metadata rows matched by: {', '.join(table['metadata_match'].unique())}")
        lines.append(generality_note(dataset))
    return "\n".join(lines), True