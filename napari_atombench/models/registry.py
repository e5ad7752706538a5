"""Named atom-locating models and where their weights come from.

A :class:`ModelSpec` says which network (``architecture``, a key of
:data:`ARCHITECTURES`), which pipeline family (``"atomnet"`` or ``"atomsegnet"``),
where the default weights are (:class:`UrlWeights`: downloaded with pooch on first
use and hash-checked; or :class:`PackagedWeights`: a file shipped in
``napari_atombench/models/weights/``) and pipeline options (e.g. ``threshold``).
Registering a model is one line::

    register(ModelSpec(name="atomnet-sim", family="atomnet", architecture="resatomsegnet_s2",
                       weights=PackagedWeights("atomnet-sim.pt", sha256="...")))

:func:`get_locator` builds an :class:`~napari_atombench.models.base.AtomLocator`.

Weights lookup order: an explicit ``weights=`` path (any checkpoint of the same
architecture), then ``$ATOMBENCH_WEIGHTS_DIR/<file>`` (offline machines), then the
pooch cache, then a download (``download=False`` forbids it). Every file is read
with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

WEIGHTS_DIR_ENV = "ATOMBENCH_WEIGHTS_DIR"
#: set to 1 to forbid downloads (tests, offline machines)
NO_DOWNLOAD_ENV = "ATOMBENCH_NO_DOWNLOAD"
PACKAGED_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def _architectures() -> dict[str, Callable[..., Any]]:
    from .atomnet import build_atomsegnet, build_resatomsegnet_s2
    from .atomsegnet import build_nestedunet, build_unet

    return {
        "atomsegnet": build_atomsegnet,
        "resatomsegnet_s2": build_resatomsegnet_s2,
        "unet": build_unet,
        "nestedunet": build_nestedunet,
    }


#: architecture name -> builder(**arch_kwargs) -> torch.nn.Module
ARCHITECTURES: dict[str, Callable[..., Any]] = {}
FAMILIES = ("atomnet", "atomsegnet", "atombench")  # atombench: our own (models.ours)


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
    family : {"atomnet", "atomsegnet"}
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
        Sampling the weights were trained at; when set and ``locate`` gets a pixel
        size, the default pipeline rescales the image to it.
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


def verify_file(path: Path, source: UrlWeights | PackagedWeights) -> str:
    """Check ``path`` against the source's pinned hashes; returns its SHA-256."""
    sha256 = sha256_of(path)
    expected = getattr(source, "sha256", None)
    if expected and sha256 != expected:
        raise ValueError(f"{path}: SHA-256 {sha256} does not match the pinned {expected}")
    blob = getattr(source, "git_blob_sha1", None)
    if blob and not expected and git_blob_sha1_of(path) != blob:
        raise ValueError(f"{path}: git blob SHA-1 does not match the pinned {blob}")
    return sha256


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
    """Whether the default weights are available without a download."""
    src = spec.weights
    if src is None:
        return False
    if isinstance(src, PackagedWeights):
        return src.path.is_file()
    env_dir = os.environ.get(WEIGHTS_DIR_ENV)
    paths = ([Path(env_dir) / src.filename] if env_dir else []) + [cache_dir() / src.filename]
    return any(p.is_file() for p in paths)


def load_state_dict(path: str | os.PathLike) -> dict:
    """Read a checkpoint safely (``weights_only=True``) and strip DataParallel ``module.``."""
    import torch

    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: not a state_dict (got {type(obj).__name__})")
    # DataParallel prefixes only: AtomNet keys contain "res_module." legitimately
    return {k[len("module.") :] if k.startswith("module.") else k: v for k, v in obj.items()}


def load_network(spec: ModelSpec | str, weights: str | os.PathLike | None = None, *, download: bool = True):
    """Build ``spec``'s network and load its weights strictly.

    Returns
    -------
    (network, provenance) : (torch.nn.Module, dict)
        ``provenance`` has ``weights_source``, ``weights_path`` and ``weights_sha256``.
    """
    spec = get_spec(spec) if isinstance(spec, str) else spec
    path, source = resolve_weights(spec, weights, download=download)
    net = spec.build()
    state = load_state_dict(path)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ValueError(
            f"{path} is not a {spec.architecture} checkpoint for {spec.name!r}: {first}"
        ) from None
    return net, {"weights_source": source, "weights_path": str(path), "weights_sha256": sha256_of(path)}


def get_locator(
    name: str | ModelSpec,
    weights: str | os.PathLike | None = None,
    device: str = "auto",
    fidelity: str = "default",
    *,
    download: bool = True,
    **options,
):
    """An :class:`~napari_atombench.models.base.AtomLocator` for the named model.

    Parameters
    ----------
    name : str or ModelSpec
        Registry name (see :func:`list_models`), or an unregistered spec.
    weights : path, optional
        Any checkpoint of the same architecture; default: the registered weights.
    device : {"auto", "cpu", "cuda", "mps", ...}
        ``auto`` picks CUDA, then MPS, then CPU.
    fidelity : {"default", "original"}
        ``original`` reproduces the published wrapper bit for bit; ``default`` is
        the improved pipeline (original image frame, weighted centroids, tiling).
    **options
        Pipeline options overriding the spec's (``threshold``, ``tile_size``,
        ``rescale``, ``refine``, ``bf16``, ...).
    """
    spec = name if isinstance(name, ModelSpec) else get_spec(name)
    # A name of ours goes through models.ours, which wraps the family locator in the
    # sampling-aware one; it calls back here with the spec (not the name) for the network.
    if spec.family == "atombench" or (not isinstance(name, ModelSpec) and name in _ours.OUR_MODELS):
        return _ours.get_locator(spec.name, weights, device, **options)
    net, provenance = load_network(spec, weights, download=download)
    merged = {**spec.options, **options}
    if spec.family == "atomnet":
        from .atomnet import AtomNetLocator as cls
    else:
        from .atomsegnet import AtomSegNetLocator as cls
    return cls(spec, net, provenance, device=device, fidelity=fidelity, **merged)


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


# --------------------------------------------------------------------- published models

_AICRYST = "https://raw.githubusercontent.com/pycroscopy/AICrystallographer/master/AtomNet/saved_models/"
_ATOMSEGNET = "https://raw.githubusercontent.com/xinhuolin/AtomSegNet/master/model_weights/"

register(
    ModelSpec(
        name="atomnet-cubic",
        family="atomnet",
        architecture="resatomsegnet_s2",
        weights=UrlWeights(
            url=_AICRYST + "cubic-best_weights.pt",
            filename="cubic-best_weights.pt",
            sha256="dc305d6f48bb3e6a22fd91385ef561b4425e73e74a9ecaf8b206a86bbe327c35",
            git_blob_sha1="2604d2a2b412db2fa5b1f57d3c06caf1a3523199",
            size=4034538,
        ),
        options={"threshold": 0.5},
        description="AtomNet resatomsegnet_s2, 'cubic' weights (Ziatdinov et al.)",
    )
)
register(
    ModelSpec(
        name="atomnet-hexagonal",
        family="atomnet",
        architecture="atomsegnet",
        weights=UrlWeights(
            url=_AICRYST + "G-Si-DFT0-1-4-best_weights.pt",
            filename="G-Si-DFT0-1-4-best_weights.pt",
            git_blob_sha1="012f4f6417eb78aa6ff900ef95985733505d06bf",
        ),
        options={"threshold": 0.5},
        description="AtomNet atomsegnet, 'hexagonal' graphene weights (Ziatdinov et al.)",
    )
)
register(
    ModelSpec(
        name="atomsegnet-gaussianmask",
        family="atomsegnet",
        architecture="unet",
        weights=UrlWeights(
            url=_ATOMSEGNET + "gaussianMask%2B.pth",
            filename="gaussianMask+.pth",
            git_blob_sha1="04464d67b166dfe32eba05b81e3e70aa4fda1bf1",
        ),
        description="AtomSegNet UNet, 'gaussianMask+' weights (Lin, Ge & Xin)",
    )
)
register(
    ModelSpec(
        name="atomsegnet-superresolution",
        family="atomsegnet",
        architecture="nestedunet",
        weights=UrlWeights(
            url=_ATOMSEGNET + "Gen1-noNoiseNoBackgroundSuperresolution.pth",
            filename="Gen1-noNoiseNoBackgroundSuperresolution.pth",
            git_blob_sha1="89f6f24ccfae4a281bb0cf7d343b5bd40320ec03",
        ),
        description="AtomSegNet NestedUNet, 'superresolution' weights (Lin, Ge & Xin)",
    )
)


# Register our shipped weights (atombench, atomnet-sim, atomsegnet-sim) beside the published ones.
from . import ours as _ours  # noqa: E402
