"""Where the labels autosave of an image lives (pure paths; no Qt, no napari).

A labels autosave goes next to the image as ``<image file>.atombench-labels.csv``
when the image has a path and its folder is writable (and is not inside the
installed package, e.g. a bundled sample). Otherwise it goes to the user cache,
``~/.cache/napari-atombench/autosave/<sha1>.csv`` (``$XDG_CACHE_HOME`` is
honoured; ``$ATOMBENCH_AUTOSAVE_DIR`` overrides the folder, for tests), keyed by
the image path or, for an image without one, by its name, shape and a hash of
a pixel subsample.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

__all__ = ["AUTOSAVE_SUFFIX", "autosave_dir", "autosave_path"]

AUTOSAVE_SUFFIX = ".atombench-labels.csv"
_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def autosave_dir() -> Path:
    """The cache folder for autosaves of images that cannot have a sidecar."""
    override = os.environ.get("ATOMBENCH_AUTOSAVE_DIR")
    if override:
        return Path(override)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "napari-atombench" / "autosave"


def _image_key(image: np.ndarray | None, name: str) -> str:
    digest = hashlib.sha1(name.encode("utf-8"))
    if image is not None:
        array = np.asarray(image)
        digest.update(repr(array.shape).encode())
        step = max(1, int(np.ceil(np.sqrt(array.size / 4096.0))))
        sample = array[::step, ::step] if array.ndim >= 2 else array[::step]
        digest.update(np.ascontiguousarray(sample, dtype=np.float32).tobytes())
    return digest.hexdigest()


def autosave_path(source_path: str | os.PathLike | None, name: str, image: np.ndarray | None = None) -> Path:
    """Autosave file for the labels of an image.

    Parameters
    ----------
    source_path : path or None
        The image file, when it came from one.
    name : str
        The image (layer) name.
    image : ndarray, optional
        The pixels, to key images that have no path.

    Returns
    -------
    pathlib.Path
    """
    if source_path:
        source = Path(source_path).resolve()
        folder = source.parent
        in_package = _PACKAGE_DIR in source.parents
        if not in_package and folder.is_dir() and os.access(folder, os.W_OK):
            return folder / (source.name + AUTOSAVE_SUFFIX)
        return autosave_dir() / (hashlib.sha1(str(source).encode("utf-8")).hexdigest() + ".csv")
    return autosave_dir() / (_image_key(image, name) + ".csv")
