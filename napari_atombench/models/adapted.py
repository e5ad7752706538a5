"""The user's adapted models (``atombench finetune`` and the Adapt dock), by name or by file.

An adapted model is one ``.pt`` file, ``{"state_dict", "card"}``, whose card
names the registered model it was adapted from (``base_model``) and what the
locator needs to run it alone (``arch_kwargs``, sampling, threshold, contrast
rule). Files in :func:`user_models_dir` are models by their stem
(``"sto-atombench-adapted"``); a path to such a file is a model name too:
:func:`resolve_adapted` turns either into (base model name, file), which
:func:`napari_atombench.models.registry.get_locator` runs as the base model's
spec with those weights.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .checkpoints import load_checkpoint

#: environment variable naming the folder of the user's adapted models
USER_MODELS_DIR_ENV = "ATOMBENCH_USER_MODELS_DIR"
#: file suffixes of weights files (an adapted model named by its path ends in one)
WEIGHTS_SUFFIXES = (".pt", ".pth")


def user_models_dir() -> Path:
    """Folder of the user's adapted weights (``$ATOMBENCH_USER_MODELS_DIR``, else
    ``models/`` next to the weights cache)."""
    from . import registry  # the registry's cache_dir, as tests and offline setups set it

    env_dir = os.environ.get(USER_MODELS_DIR_ENV)
    return Path(env_dir).expanduser() if env_dir else registry.cache_dir().parent / "models"


def adapted_model_path(image_name: str, base_model: str) -> Path:
    """Where an adapted model of ``base_model`` for image ``image_name`` is saved by default:
    ``<user models dir>/<image stem>-<base model>-adapted.pt``."""
    # a layer name may hold spaces or slashes: keep the file name portable
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(image_name).stem).strip("_") or "image"
    return user_models_dir() / f"{stem}-{base_model}-adapted.pt"


def load_adapted_weights(path: str | os.PathLike) -> tuple[dict, dict]:
    """(state_dict, card) of an adapted-weights file.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        One line: the file is not a weights file, or not an adapted one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    obj = load_checkpoint(path)
    if not (isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict) and isinstance(obj.get("card"), dict)):
        raise ValueError(f"{path}: not an adapted-weights file (needs 'state_dict' and 'card')")
    return obj["state_dict"], obj["card"]


def list_adapted_models(folder: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """One row per adapted-weights file in ``folder`` (default :func:`user_models_dir`):
    name (file stem), base model, image, validation F1, path. Files that are not
    adapted weights are skipped."""
    folder = Path(folder) if folder is not None else user_models_dir()
    rows = []
    for path in sorted(folder.glob("*.pt")) if folder.is_dir() else []:
        try:
            card = load_adapted_weights(path)[1]
        except (ValueError, RuntimeError, OSError):
            continue
        rows.append({"name": path.stem, "base_model": card.get("base_model", ""), "image_name": card.get("image_name", ""),
                     "validation_f1": card.get("validation_f1"), "path": str(path)})
    return rows


def is_weights_path(name: str) -> bool:
    """Whether a model name is a path to a weights file (not a registry or adapted name)."""
    return name.lower().endswith(WEIGHTS_SUFFIXES) or os.sep in name or "/" in name


def find_adapted(name: str) -> Path | None:
    """The adapted-weights file ``name`` stands for: a path to a weights file, or the stem
    of a ``.pt`` in :func:`user_models_dir`; None when it is neither (a registry name)."""
    if is_weights_path(name):
        return Path(name).expanduser()
    candidate = user_models_dir() / f"{name}.pt"
    return candidate if candidate.is_file() else None


def resolve_adapted(path: str | os.PathLike, known_models) -> tuple[str, Path]:
    """(base model name, file) of the adapted model in ``path``.

    Parameters
    ----------
    path : path
        An adapted-weights file.
    known_models : container of str
        The registered model names the card's ``base_model`` must be one of.

    Raises
    ------
    FileNotFoundError, ValueError
        One line naming the file and what is wrong with it.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"model {str(path)!r}: is a folder, not an adapted-weights file")
    if not path.is_file():
        raise FileNotFoundError(f"model {str(path)!r}: no such adapted-weights file")
    card = load_adapted_weights(path)[1]
    base = card.get("base_model")
    if base not in known_models:
        raise ValueError(f"{path}: its card names base model {base!r}, which is not registered "
                         f"(known: {', '.join(known_models)})")
    return str(base), path
