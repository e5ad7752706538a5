"""Bundled sample images with labels: the folder dataset ``sample_data/`` at the repository root.

The files live once, in the top-level ``sample_data/`` folder (``cases.csv``
+ images + labels CSVs, a folder dataset that ``atombench benchmark`` reads
as is). A wheel installs that folder as ``napari_atombench/sample_data/files``
(a ``package-dir`` mapping in ``pyproject.toml``); a source checkout or an
editable install reads it in place. ``cases.csv`` is the catalogue: its
``case`` column names the samples, ``display_name`` titles them in napari.
"""

from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["CATALOGUE", "SAMPLE_DIR", "sample_dataset", "sample_paths"]


def _find_sample_dir() -> Path:
    installed = Path(__file__).parent / "files"  # wheel / non-editable install
    source = Path(__file__).resolve().parents[2] / "sample_data"  # checkout / editable install
    for folder in (installed, source):
        if (folder / "cases.csv").is_file():
            return folder
    raise FileNotFoundError(f"the bundled sample data is missing: no cases.csv in {installed} or {source}")


SAMPLE_DIR = _find_sample_dir()


def _catalogue() -> dict[str, tuple[str, str, str]]:
    with open(SAMPLE_DIR / "cases.csv", newline="", encoding="utf-8") as handle:
        return {row["case"]: (row["image"], row["labels"], row["display_name"] or row["case"])
                for row in csv.DictReader(handle)}


#: name -> (image file, labels file, display name), from ``cases.csv``
CATALOGUE = _catalogue()


def sample_paths(name: str) -> tuple[Path, Path]:
    """Paths of the image and labels of a bundled sample."""
    if name not in CATALOGUE:
        raise KeyError(f"unknown sample {name!r}; available: {', '.join(CATALOGUE)}")
    image, labels, _ = CATALOGUE[name]
    return SAMPLE_DIR / image, SAMPLE_DIR / labels


def sample_dataset():
    """The bundled samples as a :class:`~napari_atombench.core.dataset.Dataset`."""
    from ..core.dataset import read_folder_dataset

    return read_folder_dataset(SAMPLE_DIR)
