"""The published benchmark set ``wei_atom.h5`` (Wei, Blaiszik, Morgan & Voyles; DOI 10.18126/e73h-3w6n).

One HDF5 file with ``/imgs``, ``/raw``, ``/coords`` (N×2, column 0 = x,
column 1 = y) and ``/metadata``. The key names inside are not documented, so
:func:`read_wei_atom` is tolerant (see :mod:`napari_atombench.core.dataset`).
:func:`fetch_wei_atom` finds or downloads the file. This module imports
neither Qt nor napari.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._validate import as_image_2d
from .cases import Case, Dataset
from .file_checks import FileFormatError, _check_declared_size, check_pixel_size_A, max_image_bytes
from .h5_inventory import _decode, align_metadata, describe_h5, is_pandas_store, read_pandas_metadata

__all__ = [
    "DATA_DIR_ENV",
    "WEI_ATOM_DOI",
    "WEI_ATOM_FILENAME",
    "WEI_ATOM_URL",
    "WEI_GENERALITY_COUNT",
    "WEI_GENERALITY_KEYS",
    "describe_h5",
    "fetch_wei_atom",
    "generality_note",
    "read_wei_atom",
]

logger = logging.getLogger("napari_atombench.core.dataset")

WEI_ATOM_FILENAME = "wei_atom.h5"
WEI_ATOM_DOI = "10.18126/e73h-3w6n"
#: Inferred from the Foundry source id; not verified (this project was built offline).
WEI_ATOM_URL = (
    "https://data.materialsdatafacility.org/foundry/foundry_wei_atom_locating_benchmark_v1.1/wei_atom.h5"
)
#: The number of "generality" images in the paper.
WEI_GENERALITY_COUNT = 34
#: PIN HERE the h5 keys of the paper's 34 generality images once a real ``wei_atom.h5`` has been
#: seen (no public list names them). While empty they are selected from the metadata: ``Type``
#: experimental and material neither SrTiO3 nor WS2 (:func:`generality_note` reports the count).
WEI_GENERALITY_KEYS: frozenset[str] = frozenset()
#: A folder holding a local copy of ``wei_atom.h5`` (offline machines).
DATA_DIR_ENV = "ATOMBENCH_DATA_DIR"


# ------------------------------------------------------------------ wei_atom.h5

_GROUP_ALIASES = {
    "imgs": ("imgs", "images", "img", "image", "input", "inputs"),
    "raw": ("raw", "raws", "raw_imgs", "raw_images"),
    "coords": ("coords", "coordinates", "coord", "labels", "positions"),
    "metadata": ("metadata", "meta", "metas"),
}

#: metadata name (lower case, punctuation dropped) -> our name and factor to our unit
_METADATA_NAMES = {
    "pixelsizepm": ("pixel_size_pm", 1.0),
    "atomspx": ("atoms_per_100px", 1.0),  # "Atoms/px" is atoms per 100 px (15 pm / 1.842 Å -> 8.14)
    "contrast": ("contrast", 1.0),
    "resolutionpm": ("resolution_pm", 1.0),
    "doseeå": ("dose_e_per_A2", 1.0),  # "dose_e-/Å²" (the ² is dropped)
    "doseea": ("dose_e_per_A2", 1.0),
    "doseea2": ("dose_e_per_A2", 1.0),
    "doseepera2": ("dose_e_per_A2", 1.0),
    "poissondb": ("psnr_db", 1.0),
    "randomdrift": ("random_drift", 1.0),
    "flybackerror": ("flyback_error", 1.0),
    "probecurrentpa": ("probe_current_pA", 1.0),
    "peakintensitye": ("peak_intensity_e", 1.0),
    "materialorientation": ("material", 1.0),
    "spacegroup": ("spacegroup", 1.0),
    "type": ("type", 1.0),
}


def _norm(name: str) -> str:
    return re.sub(r"[^0-9a-zå]", "", str(name).lower())


def _h5():
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py comes with rosettasciio[hdf5]
        raise ImportError("reading wei_atom.h5 needs h5py (pip install h5py)") from None
    return h5py


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _find(handle, role: str):
    lower = {k.lower(): k for k in handle.keys()}
    for alias in _GROUP_ALIASES[role]:
        if alias in lower:
            return lower[alias]
    return None


def _entries(handle, key: str, path) -> dict[str, Any]:
    """Per-image entries of a group (one dataset each) or a stacked dataset: name -> h5 path/index."""
    h5py = _h5()
    item = handle[key]
    if isinstance(item, h5py.Group):
        names = sorted(item.keys(), key=_natural_key)
        nested = [n for n in names if not isinstance(item[n], h5py.Dataset)]
        if nested:
            raise ValueError(f"{path}: /{key}/{nested[0]} is a group; expected one dataset per image\n{describe_h5(path)}")
        return {n: (f"{key}/{n}", None) for n in names}
    if item.ndim == 3 or item.dtype == object:
        return {str(i): (key, i) for i in range(item.shape[0])}
    raise ValueError(f"{path}: /{key} is a dataset of shape {item.shape}; expected a group with one "
                     f"dataset per image or a stack (n, rows, cols)\n{describe_h5(path)}")


def _read_entry(handle, entry) -> np.ndarray:
    location, index = entry
    data = handle[location]
    if data.dtype != object:  # declared size checked before reading (ATOMBENCH_MAX_IMAGE_BYTES)
        shape = data.shape if index is None else data.shape[1:]
        _check_declared_size(Path(handle.filename), f"/{location}", shape, data.dtype, max_image_bytes())
    return np.asarray(data[()] if index is None else data[index])


def _coords_rc(array: np.ndarray, where: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 2))
    if array.ndim == 1 and array.size % 2 == 0:  # variable-length rows store x0, y0, x1, y1, ...
        array = array.reshape(-1, 2)
    if _is_2xn(array.shape):  # an older prototype stored x and y as two rows (warned about on reading)
        array = array.T
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"{where}: coordinates must be an N×2 array (x, y); got shape {array.shape}")
    return array[:, ::-1].copy()  # file: column 0 = x = image column -> (row, col)


def _is_2xn(shape) -> bool:
    # a 2×2 array is read as N×2: two points are likelier than an ambiguous transpose
    return len(shape) == 2 and shape[0] == 2 and shape[1] != 2


def _image_attrs(handle, names, image_entries) -> list[dict]:
    records = []
    for name in names:
        location, index = image_entries[name]
        attrs = handle[location].attrs if index is None else {}
        records.append({k: _decode(v) for k, v in attrs.items()})
    return records


def _metadata_records(handle, path, key: str | None, names: list[str], image_entries) -> tuple[list[dict], list[str], str]:
    """Per-image metadata dicts (raw names), notes, and how rows were matched to images.

    Returns ``how = "pandas"`` (records empty) when ``/key`` is a pandas store:
    the caller reads it with :func:`read_pandas_metadata` once h5py has closed
    the file.
    """
    h5py = _h5()
    n = len(names)
    records = _image_attrs(handle, names, image_entries)
    notes: list[str] = []
    if key is None:
        return records, notes, "image attributes" if any(records) else "none"
    meta = handle[key]
    where = f"{path}:/{key}"
    if is_pandas_store(meta):
        return records, notes, "pandas"
    if isinstance(meta, h5py.Group) and set(names) <= set(meta.keys()):  # one entry per image
        for record, name in zip(records, names):
            item = meta[name]
            record.update({k: _decode(v) for k, v in item.attrs.items()})
            if isinstance(item, h5py.Dataset) and item.dtype.names:
                row = item[()]
                row = row[0] if getattr(row, "shape", ()) else row
                record.update({f: _decode(row[f]) for f in item.dtype.names})
            elif isinstance(item, h5py.Group):
                record.update({k: _decode(v[()]) for k, v in item.items() if isinstance(v, h5py.Dataset) and v.shape == ()})
        return records, notes, "key (one metadata entry per image)"
    if isinstance(meta, h5py.Group):  # one array per column
        columns = {}
        for column, item in meta.items():
            if isinstance(item, h5py.Dataset) and item.ndim == 1 and item.shape[0] == n:
                columns[column] = [_decode(v) for v in item[()]]
            else:
                notes.append(f"/{key}/{column} ignored (not one value per image)")
        frame = pd.DataFrame(columns)
    elif meta.dtype.names and meta.ndim == 1:  # compound table
        frame = pd.DataFrame({f: [_decode(v) for v in meta[f]] for f in meta.dtype.names})
    else:
        frame = pd.DataFrame()
    if frame.empty:
        raise ValueError(f"{where} ({'group' if isinstance(meta, h5py.Group) else f'dataset {meta.shape} {meta.dtype}'}) "
                         f"holds no readable metadata table; the file holds:\n{describe_h5(path)}")
    aligned, how = align_metadata(frame, names, where)
    return [{**r, **a} for r, a in zip(records, aligned)], notes, how


def _standard_metadata(record: dict) -> dict:
    out = {}
    for name, value in record.items():
        mapped = _METADATA_NAMES.get(_norm(name))
        if mapped is None:
            out[str(name)] = value
        else:
            out[mapped[0]] = value
    return out


def _kind(meta: dict, key: str) -> str:
    kind = str(meta.get("type", "")).lower()
    if "sim" in kind:
        return "simulated"
    if WEI_GENERALITY_KEYS:
        return "generality" if key in WEI_GENERALITY_KEYS else "experimental"
    material = str(meta.get("material", "")).lower().replace(" ", "")
    if not material or "srtio" in material or "ws2" in material or "sto" == material[:3]:
        return "experimental"
    return "generality"


def generality_note(dataset: Dataset) -> str:
    """How many generality cases a ``wei_atom.h5`` dataset has, said plainly when it is not the paper's 34."""
    n = sum(c.kind == "generality" for c in dataset)
    how = "pinned keys" if WEI_GENERALITY_KEYS else "metadata: Type experimental, material not SrTiO3 / WS2"
    if n == WEI_GENERALITY_COUNT:
        return f"{n} generality cases ({how}), as in the paper"
    return (f"{n} generality cases ({how}); the paper has {WEI_GENERALITY_COUNT}: this selection is NOT the "
            f"paper's generality set")


def _check_wei_shapes(handle, path, names, images, coords) -> list[str]:
    """Shapes checked up front so a run never fails half way; returns the keys with 2×N coordinates."""
    transposed = []
    for name in names:
        location, index = images[name]
        shape = handle[location].shape[1:] if index is not None else handle[location].shape
        if len(shape) != 2:
            raise ValueError(f"{path}: image /{location} has shape {shape}; expected 2D (rows, cols)")
        clocation, cindex = coords[name]
        if handle[clocation].dtype == object:  # variable-length rows: checked on reading
            continue
        cshape = handle[clocation].shape[1:] if cindex is not None else handle[clocation].shape
        if _is_2xn(cshape):
            transposed.append(name)
        elif not (len(cshape) == 2 and cshape[1] == 2) and not (len(cshape) >= 1 and cshape[0] == 0):
            raise ValueError(f"{path}: coordinates /{clocation} have shape {cshape}; expected N×2 (x, y)")
    return transposed


def _wei_records(path: Path, allow_missing_metadata: bool) -> tuple[list[str], list[dict], str]:
    h5py = _h5()
    with h5py.File(path, "r") as handle:
        keys = {role: _find(handle, role) for role in _GROUP_ALIASES}
        for role in ("imgs", "coords"):
            if keys[role] is None:
                raise ValueError(
                    f"{path} has no /{role} group (looked for {', '.join(_GROUP_ALIASES[role])}); "
                    f"it holds:\n{describe_h5(path)}"
                )
        images = _entries(handle, keys["imgs"], path)
        coords = _entries(handle, keys["coords"], path)
        names = list(images)
        if set(coords) != set(names):
            only_images = sorted(set(names) - set(coords), key=_natural_key)[:5]
            only_coords = sorted(set(coords) - set(names), key=_natural_key)[:5]
            raise ValueError(
                f"{path}: /{keys['imgs']} ({len(names)}) and /{keys['coords']} ({len(coords)}) name different "
                f"images (images without coords: {only_images}; coords without images: {only_coords})"
            )
        transposed = _check_wei_shapes(handle, path, names, images, coords)
        records, notes, how = _metadata_records(handle, path, keys["metadata"], names, images)
    if transposed:
        warnings.warn(f"{path}: coordinates of {len(transposed)} image(s) stored 2×N (first: {transposed[:5]}); "
                      f"read as rows x, y", stacklevel=3)
    for note in notes:
        warnings.warn(f"{path}: {note}", stacklevel=3)
    if how == "pandas":
        where = f"{path}:/{keys['metadata']}"
        aligned, how = align_metadata(read_pandas_metadata(path, keys["metadata"]), names, where)
        records = [{**r, **a} for r, a in zip(records, aligned)]
    if how == "none" and not allow_missing_metadata:
        raise ValueError(f"{path}: no metadata found (no /metadata group, no attributes on the images): pixel "
                         f"sizes, kinds and materials would all be unknown; the file holds:\n{describe_h5(path)}")
    return names, records, how


def read_wei_atom(path: str | os.PathLike, *, allow_missing_metadata: bool = False) -> Dataset:
    """Read the published benchmark set (or any HDF5 file with its layout).

    Metadata rows are matched to image keys by a key column or a metadata
    index naming the images when there is one, else by the file's row order;
    each case's ``metadata_match`` says which. Pixel size: ``pixelsize_pm`` /
    100; material: ``Material_orientation``; kind: ``Type`` (see
    :func:`generality_note`).

    Parameters
    ----------
    path : path
    allow_missing_metadata : bool
        Read a file with no metadata at all (every pixel size unknown, every
        case experimental) instead of failing.

    Raises
    ------
    ValueError
        With a listing of the file (:func:`describe_h5`) when ``/imgs`` or
        ``/coords`` is missing, metadata cannot be read or does not match the
        images (counts or keys), or an array has the wrong shape.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    names, records, how = _wei_records(path, allow_missing_metadata)
    cases = []
    for name, record in zip(names, records):
        meta = _standard_metadata(record)
        pixel_size_pm = meta.get("pixel_size_pm")
        try:
            pixel_size_A = float(pixel_size_pm) / 100.0 if pixel_size_pm not in (None, "") else None
        except (TypeError, ValueError):
            raise ValueError(f"{path}: image {name} has a pixel size {pixel_size_pm!r} that is not a number") from None
        if pixel_size_A is not None:
            try:
                check_pixel_size_A(pixel_size_A, f"{path}: image {name}")
            except FileFormatError as exc:  # one bad row must not lose the other cases
                warnings.warn(f"{exc}; that case is scored in pixels only", stacklevel=2)
                pixel_size_A = None
        material = str(meta.pop("material", "") or "")
        meta["metadata_match"] = how
        cases.append(
            Case(
                case=name if not name.isdigit() else f"wei_{int(name):03d}",
                pixel_size_A=pixel_size_A,
                kind=_kind({**meta, "material": material}, name),
                material=material,
                source=f"wei_atom.h5 ({WEI_ATOM_DOI})",
                licence="CC-BY-4.0",
                extra={k: v for k, v in meta.items() if np.isscalar(v)},
                h5_path=str(path),
                h5_key=name,
            )
        )
    dataset = Dataset(path.stem, cases, str(path))
    if any(c.kind != "simulated" for c in cases):
        logger.info("%s: %s", path, generality_note(dataset))
    return dataset


def _read_wei_case(path: str, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    h5py = _h5()
    with h5py.File(path, "r") as handle:
        keys = {role: _find(handle, role) for role in _GROUP_ALIASES}
        images = _entries(handle, keys["imgs"], path)
        coords = _entries(handle, keys["coords"], path)
        image = as_image_2d(_read_entry(handle, images[name]), name=f"{path}:/{keys['imgs']}/{name}")
        truth = _coords_rc(_read_entry(handle, coords[name]), f"{path}:/{keys['coords']}/{name}")
        raw = None
        if keys["raw"]:
            raw_entries = _entries(handle, keys["raw"], path)
            if name in raw_entries:
                raw = np.asarray(_read_entry(handle, raw_entries[name]), dtype=np.float32)
    return image, truth, raw


def fetch_wei_atom(path: str | os.PathLike | None = None, *, download: bool = True) -> Path:
    """Find ``wei_atom.h5``, downloading it into the cache when allowed.

    Lookup order: ``path`` (a file or a folder holding it), then
    ``$ATOMBENCH_DATA_DIR/wei_atom.h5``, then the pooch cache, then a download
    from :data:`WEI_ATOM_URL` (about 233 MB).

    Raises
    ------
    FileNotFoundError
        With instructions to fetch the file by hand from the DOI.
    """
    tried = []
    candidates = []
    if path is not None:
        path = Path(path)
        candidates.append(path / WEI_ATOM_FILENAME if path.is_dir() else path)
    if os.environ.get(DATA_DIR_ENV):
        candidates.append(Path(os.environ[DATA_DIR_ENV]) / WEI_ATOM_FILENAME)
    import pooch

    cache = Path(pooch.os_cache("napari-atombench"))
    candidates.append(cache / WEI_ATOM_FILENAME)
    for candidate in candidates:
        tried.append(str(candidate))
        if candidate.is_file():
            return candidate
    hint = (
        f"Get it by hand: open https://doi.org/{WEI_ATOM_DOI} (Materials Data Facility, "
        f"'Benchmark Dataset for Locating Atoms in STEM images', CC-BY 4.0), download "
        f"{WEI_ATOM_FILENAME} (~233 MB) and pass its path (--path FILE) or put it in the folder "
        f"named by ${DATA_DIR_ENV}. Looked in: {'; '.join(tried)}."
    )
    if not download:
        raise FileNotFoundError(f"{WEI_ATOM_FILENAME} not found. {hint}")
    try:
        # no hash is published for the file: pooch logs the SHA-256 it computed
        fetched = pooch.retrieve(WEI_ATOM_URL, known_hash=None, fname=WEI_ATOM_FILENAME, path=cache, progressbar=True)
    except Exception as exc:  # network errors come in many types
        raise FileNotFoundError(f"could not download {WEI_ATOM_FILENAME} ({type(exc).__name__}: {exc}). {hint}") from None
    return Path(fetched)


