"""What an HDF5 benchmark file holds, and its metadata table matched to its images.

The published ``wei_atom.h5`` most likely stores ``/metadata`` as a pandas
``format="table"`` store (PyTables: a ``table`` dataset plus an ``_i_table``
index group, a ``pandas_type`` attribute on the group, column names in
PyTables attributes). h5py alone sees one compound column of tuples there, so
such a group is read with :func:`pandas.read_hdf` (needs ``tables``).

:func:`describe_h5` lists groups, member counts, first keys, dtypes and
attribute names; :func:`align_metadata` matches metadata rows to image keys
by an explicit key column, else by a frame index that names the images, else
by the file's own row order, and says which.

This module imports neither Qt nor napari.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["KEY_COLUMNS", "align_metadata", "describe_h5", "is_pandas_store", "read_pandas_metadata"]

#: Metadata column names (lower case, punctuation dropped) taken as the image key.
KEY_COLUMNS = ("key", "imagekey", "imgkey", "image", "img", "name", "imagename", "index", "id", "imageid")


def _h5():
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py comes with rosettasciio[hdf5]
        raise ImportError("reading HDF5 benchmark files needs h5py (pip install h5py)") from None
    return h5py


def is_pandas_store(item) -> bool:
    """Whether an HDF5 group/dataset was written by pandas (``pandas_type`` attribute)."""
    return "pandas_type" in item.attrs


def read_pandas_metadata(path: str | os.PathLike, key: str) -> pd.DataFrame:
    """Read a pandas store (``table`` or ``fixed``) at ``key`` with :func:`pandas.read_hdf`."""
    try:
        import tables  # noqa: F401
    except ImportError:  # pragma: no cover - tables is a dependency
        raise ImportError(f"{path}: /{key} is a pandas store; reading it needs PyTables (pip install tables)") from None
    frame = pd.read_hdf(path, key)
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{path}: /{key} holds a pandas {type(frame).__name__}, not a table of one row per image")
    return frame


def _listing(item, h5py, max_items: int) -> list[str]:
    name = item.name
    lines = []
    if isinstance(item, h5py.Group):
        children = list(item.keys())
        shown = ", ".join(children[:max_items]) + (" ..." if len(children) > max_items else "")
        lines.append(f"  {name}: group of {len(children)} ({shown})")
        if children and not is_pandas_store(item):
            first = item[children[0]]
            if isinstance(first, h5py.Dataset):
                dtypes = sorted({str(item[c].dtype) for c in children[:max_items * 8] if isinstance(item[c], h5py.Dataset)})
                lines.append(f"    {first.name}: shape {first.shape} dtype {first.dtype}"
                             + (f" (dtypes among the first members: {', '.join(dtypes)})" if len(dtypes) > 1 else ""))
                if first.attrs:
                    lines.append(f"    {first.name} attrs: {', '.join(map(str, first.attrs))}")
    else:
        lines.append(f"  {name}: dataset shape {item.shape} dtype {item.dtype}")
    if item.attrs:
        lines.append(f"    attrs: {', '.join(map(str, item.attrs))}")
    return lines


def describe_h5(path: str | os.PathLike, max_items: int = 8) -> str:
    """An inventory of an HDF5 file: groups, member counts, first keys, dtypes, attribute names.

    A pandas metadata store is read too and its columns and row count listed.
    """
    h5py = _h5()
    lines = [f"{path}:"]
    pandas_keys = []
    with h5py.File(path, "r") as handle:
        if handle.attrs:
            lines.append(f"  / attrs: {', '.join(map(str, handle.attrs))}")
        for key, item in handle.items():
            if item is None:  # h5py gives None for a link it cannot resolve (corrupt file)
                lines.append(f"  /{key}: unreadable (broken link or corrupt object header)")
                continue
            lines += _listing(item, h5py, max_items)
            if is_pandas_store(item):
                pandas_keys.append(key)
    for key in pandas_keys:
        try:
            frame = read_pandas_metadata(path, key)
        except Exception as exc:  # the listing must not fail on the thing it reports
            lines.append(f"    /{key}: pandas store not readable ({type(exc).__name__}: {exc})")
            continue
        index = f"index {frame.index.name!r}" if frame.index.name else "unnamed index"
        lines.append(f"    /{key}: pandas table, {len(frame)} rows, {index}, columns: "
                     + ", ".join(f"{c} ({frame[c].dtype})" for c in frame.columns))
    return "\n".join(lines)


def _decode(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _decode(value[()])
    if isinstance(value, np.generic):
        return value.item()
    return value


def _key(value) -> str:
    """An image key compared loosely: bytes decoded, ``"007"`` and ``7`` are the same key."""
    text = str(_decode(value)).strip()
    if isinstance(value, float) and float(value).is_integer():
        text = str(int(value))
    return str(int(text)) if text.isdigit() else text


def _norm(name) -> str:
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def _by_keys(keys, frame: pd.DataFrame, names: list[str], where: str, what: str) -> list[dict]:
    wanted = {_key(n): i for i, n in enumerate(names)}
    if len(wanted) != len(names):
        raise ValueError(f"{where}: image keys collide once zero padding is ignored; cannot match {what}")
    rows: list[Any] = [None] * len(names)
    unknown = []
    for row, key in zip(frame.itertuples(index=False), keys):
        position = wanted.get(_key(key))
        if position is None:
            unknown.append(str(_decode(key)))
        elif rows[position] is not None:
            raise ValueError(f"{where}: {what} names image {key!r} twice")
        else:
            rows[position] = dict(zip(frame.columns, row))
    missing = [names[i] for i, r in enumerate(rows) if r is None]
    if unknown or missing:
        raise ValueError(f"{where}: {what} does not match the image keys (no image for {unknown[:5]}; "
                         f"no metadata row for {missing[:5]}; first image keys {names[:5]})")
    return [{k: _decode(v) for k, v in r.items()} for r in rows]


def align_metadata(frame: pd.DataFrame, names: list[str], where: str) -> tuple[list[dict], str]:
    """Metadata rows matched to image keys, and how they were matched.

    Parameters
    ----------
    frame : DataFrame
        One row per image.
    names : list of str
        Image keys in our order.
    where : str
        Names the file and group in error messages.

    Returns
    -------
    records : list of dict
        One dict of raw column name -> value per image, in ``names`` order.
    how : str
        ``"key column '<name>'"``, ``"metadata index '<name>'"`` or ``"file order"``.

    Raises
    ------
    ValueError
        When the row count differs from the image count, or a key column /
        index does not name the images one-to-one.
    """
    if len(frame) != len(names):
        raise ValueError(f"{where}: {len(frame)} metadata rows for {len(names)} images "
                         f"(metadata columns: {', '.join(map(str, frame.columns))}; first image keys {names[:5]})")
    for column in frame.columns:
        if _norm(column) in KEY_COLUMNS:
            how = f"key column {column!r}"
            return _by_keys(frame[column].tolist(), frame.drop(columns=[column]), names, where, how), how
    index = frame.index
    default_index = index.name is None and np.array_equal(np.asarray(index), np.arange(len(frame)))
    if not default_index and {_key(v) for v in index} == {_key(n) for n in names}:
        how = f"metadata index {index.name!r}" if index.name else "metadata index"
        return _by_keys(index.tolist(), frame, names, where, how), how
    return [{k: _decode(v) for k, v in row.items()} for row in frame.to_dict("records")], "file order"
