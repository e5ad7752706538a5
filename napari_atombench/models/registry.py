"""Named atom-locating models and where their weights come from.

A :class:`ModelSpec` says which network (``architecture``, a key of
:data:`ARCHITECTURES`), which pipeline family (``"atomnet"``, ``"atomsegnet"`` or
``"atombench"``),
where the default weights are (:class:`UrlWeights`: downloaded with pooch on first
use and hash-checked; or :class:`PackagedWeights`: a file shipped in
``napari_atombench/models/weights/``) and pipeline options (e.g. ``threshold``).
Registering a model is one line::

    register(ModelSpec(name="atomnet-sim", family="atomnet", architecture="resatomsegnet_s2",
                       weights=PackagedWeights("atomnet-sim.pt", sha256="...")))

:func:`get_locator` builds an :class:`~napari_atombench.models.base.AtomLocator`;
it is the one factory for every model (the models themselves are registered in
:mod:`napari_atombench.models.catalogue`).

Weights lookup order: an explicit ``weights=`` path (any checkpoint of the same
architecture), then ``$ATOMBENCH_WEIGHTS_DIR/<file>`` (offline machines), then the
pooch cache, then a download (``download=False`` forbids it). A registered file
(packaged or cached) is checked against its pinned hash before every use; every
file is read with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

WEIGHTS_DIR_ENV = "ATOMBENCH_WEIGHTS_DIR"
#: set to 1 to forbid downloads (tests, offline machines)
NO_DOWNLOAD_ENV = "ATOMBENCH_NO_DOWNLOAD"
PACKAGED_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: the model used when none is named (CLI, session, widgets, benchmark)
DEFAULT_MODEL = "atombench"


def _architectures() -> dict[str, Callable[..., Any]]:
    from .atomnet import build_atomsegnet, build_resatomsegnet_s2
    from .atomsegnet import build_nestedunet, build_unet
    from .ours import build_atombench_unet

    return {
        "atombench_unet": build_atombench_unet,
        "atomsegnet": build_atomsegnet,
        "resatomsegnet_s2": build_resatomsegnet_s2,
        "unet": build_unet,
        "nestedunet": build_nestedunet,
    }


#: architecture name -> builder(**arch_kwargs) -> torch.nn.Module
ARCHITECTURES: dict[str, Callable[..., Any]] = {}
FAMILIES = ("atomnet", "atomsegnet", "atombench")  # atombench: our own (models.ours)
#: options every locator takes; each family adds its own (see the locator classes)
COMMON_OPTIONS = ("rescale", "refine", "bf16", "tile_size", "overlap_px")


def build_architecture(architecture: str, **arch_kwargs):
    """A freshly initialised network of the named architecture."""
    if not ARCHITECTURES:
        ARCHITECTURES.update(_architectures())
    try:
        builder = ARCHITECTURES[architecture]
    except KeyError:
        raise ValueError(
            f"unknown architecture {architecture!r}; known: {', '.join(sorted(ARCHITECTURES))}"
        ) from None
    return builder(**arch_kwargs)


@dataclass(frozen=True)
class UrlWeights:
    """Weights downloaded from a public URL, pinned by SHA-256 and/or git blob SHA-1."""

    url: str
    filename: str
    sha256: str | None = None
    git_blob_sha1: str | None = None
    size: int | None = None
    where_to_get: str = ""

    def describe(self) -> str:
        return self.url


@dataclass(frozen=True)
class PackagedWeights:
    """Weights shipped inside the package (``napari_atombench/models/weights/<filename>``)."""

    filename: str
    sha256: str | None = None

    @property
    def path(self) -> Path:
        return PACKAGED_WEIGHTS_DIR / self.filename

    def describe(self) -> str:
        return f"packaged:{self.filename}"


@dataclass
class ModelSpec:
    """One named model of the registry.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"atomnet-cubic"``.
    family : {"atomnet", "atomsegnet", "atombench"}
        Which pre/post-processing pipeline runs it.
    architecture : str
        Key of :data:`ARCHITECTURES`.
    weights : UrlWeights, PackagedWeights or None
        Default weights source.
    arch_kwargs : dict
        Extra arguments for the architecture builder (e.g. ``nb_classes``).
    options : dict
        Default pipeline options (``threshold``, ``tile_size``, ``overlap_px``, ...).
    trained_pixel_size_A : float or None
        Sampling the weights were trained at (Å/px); when set, :func:`get_locator`
        wraps the locator in :class:`~napari_atombench.models.ours.SamplingAwareLocator`,
        which rescales each image to it.
    trained_separation_px : float or None
        Typical nearest-column separation of the training images (px), the
        sampling rule when an image's pixel size is unknown.
    description : str
        One line for listings.
    """

    name: str
    family: str
    architecture: str
    weights: UrlWeights | PackagedWeights | None = None
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    trained_pixel_size_A: float | None = None
    trained_separation_px: float | None = None
    description: str = ""

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, not {self.family!r}")

    def build(self):
        """A freshly initialised network (no weights loaded)."""
        return build_architecture(self.architecture, **self.arch_kwargs)


REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
    """Add ``spec`` to :data:`REGISTRY` (``replace=True`` to overwrite a name)."""
    if spec.name in REGISTRY and not replace:
        raise ValueError(f"model {spec.name!r} is already registered")
    REGISTRY[spec.name] = spec
    return spec


def get_spec(name: str) -> ModelSpec:
    """The registered spec called ``name`` (ValueError listing the known names otherwise)."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(REGISTRY)}") from None


# ---------------------------------------------------------------------------- weights files


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


def _fix_hint(path: Path, source: UrlWeights | PackagedWeights) -> str:
    if isinstance(source, PackagedWeights):
        return "reinstall napari-atombench (pip install --force-reinstall napari-atombench)"
    return f"delete {path} so that it is downloaded again from {source.url}"


def verify_file(path: Path, source: UrlWeights | PackagedWeights) -> str:
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


def file_matches(path: Path, source: UrlWeights | PackagedWeights) -> bool:
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


def cache_dir() -> Path:
    import pooch

    return Path(pooch.os_cache("napari-atombench")) / "weights"


def _missing_message(spec: ModelSpec, tried: list[Path]) -> str:
    src = spec.weights
    where = src.describe() if src is not None else "(no default weights)"
    fname = getattr(src, "filename", "<weights file>")
    return (
        f"weights for model {spec.name!r} not found: missing file {fname!r} "
        f"(looked in: {', '.join(str(p) for p in tried) or 'nowhere'}). "
        f"Get it from {where} and put it in ${WEIGHTS_DIR_ENV} "
        f"(or the cache folder {cache_dir()}), or pass --weights PATH."
    )


def resolve_weights(
    spec: ModelSpec, weights: str | os.PathLike | None = None, *, download: bool = True
) -> tuple[Path, str]:
    """Path of the weights file to use and a short description of its source."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"weights file {path} does not exist")
        return path, f"file:{path}"
    src = spec.weights
    if src is None:
        raise FileNotFoundError(f"model {spec.name!r} has no default weights: pass --weights PATH")
    if isinstance(src, PackagedWeights):
        if not src.path.is_file():
            raise FileNotFoundError(_missing_message(spec, [src.path]))
        verify_file(src.path, src)
        return src.path, src.describe()
    tried: list[Path] = []
    env_dir = os.environ.get(WEIGHTS_DIR_ENV)
    candidates = ([Path(env_dir).expanduser() / src.filename] if env_dir else []) + [
        cache_dir() / src.filename
    ]
    for candidate in candidates:
        tried.append(candidate)
        if candidate.is_file():
            verify_file(candidate, src)
            return candidate, src.describe()
    if not download or os.environ.get(NO_DOWNLOAD_ENV, "") not in ("", "0"):
        raise FileNotFoundError(_missing_message(spec, tried))
    return _download(spec, src, tried), src.describe()


def _download(spec: ModelSpec, src: UrlWeights, tried: list[Path]) -> Path:
    import pooch

    known = f"sha256:{src.sha256}" if src.sha256 else None
    try:
        path = Path(
            pooch.retrieve(src.url, known_hash=known, fname=src.filename, path=cache_dir(), progressbar=False)
        )
    except Exception as exc:  # network down, 404, hash mismatch
        raise FileNotFoundError(f"{_missing_message(spec, tried)} (download failed: {exc})") from exc
    try:
        verify_file(path, src)
    except ValueError:
        path.unlink(missing_ok=True)
        raise
    return path


def is_cached(spec: ModelSpec) -> bool:
    """Whether the default weights are available without a download, and intact."""
    src = spec.weights
    if src is None:
        return False
    if isinstance(src, PackagedWeights):
        return file_matches(src.path, src)
    env_dir = os.environ.get(WEIGHTS_DIR_ENV)
    paths = ([Path(env_dir) / src.filename] if env_dir else []) + [cache_dir() / src.filename]
    # the first existing file is the one resolve_weights would use
    for path in paths:
        if path.is_file():
            return file_matches(path, src)
    return False


def load_checkpoint(path: str | os.PathLike):
    """``torch.load(path, weights_only=True)``; a file that is not a plain checkpoint
    (text, truncated, a pickle that would import or run code) is a one-line ValueError."""
    import pickle

    import torch

    if Path(path).is_dir():
        raise ValueError(f"{path}: is a folder, not a weights file")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error below says it all
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, IndexError, ValueError, KeyError) as exc:
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


def load_weights_into(net, state: dict, spec: ModelSpec, path: str | os.PathLike) -> None:
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


def load_network(
    spec: ModelSpec | str,
    weights: str | os.PathLike | None = None,
    *,
    download: bool = True,
    arch_kwargs: Callable[[dict], dict] | None = None,
):
    """Build ``spec``'s network and load its (hash-checked) weights strictly.

    Parameters
    ----------
    spec : ModelSpec or str
    weights : path, optional
        Any checkpoint of the architecture instead of the registered weights.
    download : bool
        Allow downloading registered weights.
    arch_kwargs : callable(state_dict) -> dict, optional
        Builder arguments for an explicit ``weights`` file (default: the spec's).

    Returns
    -------
    (network, provenance) : (torch.nn.Module, dict)
        ``provenance`` has ``weights_source``, ``weights_path``, ``weights_sha256``
        and ``arch_kwargs``.
    """
    spec = get_spec(spec) if isinstance(spec, str) else spec
    path, source = resolve_weights(spec, weights, download=download)
    state = load_state_dict(path)
    kwargs = arch_kwargs(state) if (arch_kwargs is not None and weights is not None) else spec.arch_kwargs
    net = build_architecture(spec.architecture, **kwargs)
    load_weights_into(net, state, spec, path)
    provenance = {"weights_source": source, "weights_path": str(path), "weights_sha256": sha256_of(path)}
    if kwargs:
        provenance["arch_kwargs"] = dict(kwargs)
    return net, provenance


def get_locator(
    name: str | ModelSpec = DEFAULT_MODEL,
    weights: str | os.PathLike | None = None,
    device: str = "auto",
    fidelity: str = "default",
    *,
    download: bool = True,
    sampling_aware: bool | None = None,
    **options,
):
    """An :class:`~napari_atombench.models.base.AtomLocator` for any model: the one factory.

    Parameters
    ----------
    name : str or ModelSpec
        Registry name (see :func:`list_models`), or an unregistered spec.
    weights : path, optional
        Any checkpoint of the same architecture; default: the registered weights.
    device : {"auto", "cpu", "cuda", "mps", ...}
        ``auto`` picks CUDA, then MPS, then CPU.
    fidelity : {"default", "original"}
        ``original`` reproduces the published wrapper bit for bit (published
        families only); ``default`` is the improved pipeline (original image
        frame, weighted centroids, tiling).
    download : bool
        Allow downloading registered weights.
    sampling_aware : bool, optional
        Rescale images to the sampling the weights were trained at; default: yes
        when the spec records one (ours), and an error when asked of a model
        that records none.
    **options
        Pipeline options overriding the spec's: :data:`COMMON_OPTIONS` and the
        family's own (``threshold``, ``edge_px``, ...) and ``contrast`` ("auto",
        "bright", "dark": the column polarity, decided on the input image; our
        models default to "auto", the published ones to their own bright-column
        input). Each is applied; an option the model cannot apply raises
        ``ValueError`` naming it and the model.

    Returns
    -------
    AtomLocator
    """
    spec = name if isinstance(name, ModelSpec) else get_spec(name)
    if sampling_aware and spec.trained_pixel_size_A is None:
        raise ValueError(f"sampling_aware=True: model {spec.name!r} records no trained sampling to rescale to")
    wrap = spec.trained_pixel_size_A is not None and sampling_aware is not False
    if spec.family == "atombench":
        from .ours import atombench_locator

        return atombench_locator(spec, weights, device=device, fidelity=fidelity, download=download,
                                 sampling_aware=wrap, **options)
    # the polarity is decided on the input image and applied before the family's own pipeline
    contrast = options.pop("contrast", None)
    net, provenance = load_network(spec, weights, download=download)
    merged = {**spec.options, **options}
    if spec.family == "atomnet":
        from .atomnet import AtomNetLocator as cls
    else:
        from .atomsegnet import AtomSegNetLocator as cls
    locator = cls(spec, net, provenance, device=device, fidelity=fidelity, **merged)
    if not wrap and contrast is None:
        return locator
    from .ours import SamplingAwareLocator

    if not wrap:  # no sampling rule: the wrapper only mirrors dark columns
        return SamplingAwareLocator(locator, None, None, contrast=contrast)
    # the family keeps its own edge rule (edge_px) and rescale option inside
    pixel_size_A, separation_px = trained_sampling(spec, weights)
    return SamplingAwareLocator(locator, pixel_size_A, separation_px, contrast=contrast or "auto")


def trained_sampling(spec: ModelSpec, weights: str | os.PathLike | None = None) -> tuple[float, float]:
    """(Å/px, nearest-column separation in px) the weights were trained at: the spec's for
    its own weights, the checkpoint's record for others (0.2 Å/px and 14 px if it has none)."""
    if weights is None and spec.trained_pixel_size_A is not None:
        return float(spec.trained_pixel_size_A), float(spec.trained_separation_px or 14.0)
    record = checkpoint_card(weights) if weights is not None else {}
    return float(record.get("trained_pixel_size_A", 0.2)), float(record.get("trained_separation_px", 14.0))


#: environment variable naming the folder of the user's adapted models
USER_MODELS_DIR_ENV = "ATOMBENCH_USER_MODELS_DIR"


def user_models_dir() -> Path:
    """Folder of the user's adapted weights (``$ATOMBENCH_USER_MODELS_DIR``, else
    ``models/`` next to the weights cache)."""
    env_dir = os.environ.get(USER_MODELS_DIR_ENV)
    return Path(env_dir).expanduser() if env_dir else cache_dir().parent / "models"


def list_adapted_models(folder: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """One row per adapted-weights file (``atombench finetune`` output) in ``folder``
    (default :func:`user_models_dir`): name (file stem), base model, image, validation F1, path.
    Files that are not adapted weights are skipped."""
    from .finetune import load_adapted_weights

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


def list_models() -> list[dict[str, Any]]:
    """One row per registered model: name, family, architecture, weights source, cached."""
    return [
        {
            "name": s.name,
            "family": s.family,
            "architecture": s.architecture,
            "weights": s.weights.describe() if s.weights is not None else "",
            "cached": is_cached(s),
            "description": s.description,
        }
        for s in REGISTRY.values()
    ]
