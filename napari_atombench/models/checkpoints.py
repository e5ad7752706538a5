"""Weights files: hashes, verification against pinned hashes, and the one safe loader.

Every checkpoint in the package is read by :func:`load_checkpoint`
(``torch.load(..., weights_only=True)``): a file that would import or run code
is refused with a one-line ``ValueError``.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from pathlib import Path
from typing import Any


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def git_blob_sha1_of(path: str | os.PathLike) -> str:
    """``sha1(b"blob <size>\\0" + bytes)``, the id git gives the file's content."""
    size = os.path.getsize(path)
    digest = hashlib.sha1(f"blob {size}\0".encode())
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class CorruptWeightsError(ValueError):
    """A weights file does not match the hash pinned for it."""


def _fix_hint(path: Path, source) -> str:
    if getattr(source, "url", None) is None:  # shipped inside the package
        return "reinstall napari-atombench (pip install --force-reinstall napari-atombench)"
    return f"delete {path} so that it is downloaded again from {source.url}"


def verify_file(path: Path, source) -> str:
    """Check ``path`` against the source's pinned hashes; returns its SHA-256.

    Raises
    ------
    CorruptWeightsError
        One line naming the file, the expected and actual hash and how to fix it.
    """
    sha256 = sha256_of(path)
    expected = getattr(source, "sha256", None)
    if expected and sha256 != expected:
        raise CorruptWeightsError(
            f"weights file {path} is corrupt or altered: SHA-256 {sha256}, expected {expected}; "
            f"{_fix_hint(Path(path), source)}"
        )
    blob = getattr(source, "git_blob_sha1", None)
    if blob and not expected:
        actual = git_blob_sha1_of(path)
        if actual != blob:
            raise CorruptWeightsError(
                f"weights file {path} is corrupt or altered: git blob SHA-1 {actual}, expected {blob}; "
                f"{_fix_hint(Path(path), source)}"
            )
    return sha256


#: (path, size, mtime_ns) -> whether it matched its pinned hash, so listings hash each file once
_VERIFIED: dict[tuple[str, int, int], bool] = {}


def file_matches(path: Path, source) -> bool:
    """Whether ``path`` exists and matches its pinned hash (remembered per file version)."""
    try:
        st = Path(path).stat()
    except OSError:
        return False
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        try:
            verify_file(Path(path), source)
            _VERIFIED[key] = True
        except (CorruptWeightsError, OSError):
            _VERIFIED[key] = False
    return _VERIFIED[key]


def load_checkpoint(path: str | os.PathLike):
    """``torch.load(path, weights_only=True)``; a file that is not a plain checkpoint
    (text, truncated, a pickle that would import or run code) is a one-line ValueError."""
    import pickle
    import struct
    import zipfile

    import torch

    if Path(path).is_dir():
        raise ValueError(f"{path}: is a folder, not a weights file")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error below says it all
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    # garbage bytes reach torch's unpickler as struct/assertion errors, a broken archive as BadZipFile
    except (RuntimeError, pickle.UnpicklingError, EOFError, IndexError, ValueError, KeyError, struct.error,
            AssertionError, zipfile.BadZipFile) as exc:
        # torch's weights_only message is a paragraph; its "WeightsUnpickler error:" part says why
        text = " ".join(str(exc).split())
        why = re.search(r"WeightsUnpickler error: (.*?)(?: Check the documentation|$)", text)
        why = why.group(1) if why else text.split(". ")[0]
        raise ValueError(f"{path}: not a PyTorch weights file ({type(exc).__name__}: {why or 'empty file'})") from exc


def load_state_dict(path: str | os.PathLike) -> dict:
    """Read a checkpoint safely (``weights_only=True``) and strip DataParallel ``module.``."""
    obj = load_checkpoint(path)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: not a state_dict (got {type(obj).__name__})")
    # DataParallel prefixes only: AtomNet keys contain "res_module." legitimately
    return {k[len("module.") :] if k.startswith("module.") else k: v for k, v in obj.items()}


def checkpoint_card(path: str | os.PathLike) -> dict[str, Any]:
    """The record of a checkpoint (sampling, threshold, ...): ``<stem>.json`` beside it,
    else the card inside an adapted-weights file, else {}."""
    import json

    sidecar = Path(path).with_suffix(".json")
    if sidecar.is_file():
        return json.loads(sidecar.read_text())
    # an adapted .pt (atombench finetune) carries its card inside
    obj = load_checkpoint(path) if Path(path).is_file() else None
    if isinstance(obj, dict) and isinstance(obj.get("card"), dict):
        return obj["card"]
    return {}


def _key_list(keys: list[str], n: int = 4) -> str:
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def load_weights_into(net, state: dict, spec, path: str | os.PathLike) -> None:
    """Load ``state`` into ``net`` strictly; a mismatch names the model, the file and the keys."""
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    problems = [f"{label}: {_key_list(keys)}" for label, keys in
                (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", shapes)) if keys]
    if problems:
        raise ValueError(
            f"weights file {path} does not fit model {spec.name!r} (architecture {spec.architecture}): "
            f"{'; '.join(problems)}; pass weights trained for this architecture"
        )
    net.load_state_dict(state, strict=True)
