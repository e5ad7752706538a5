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

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .adapted import USER_MODELS_DIR_ENV, adapted_model_path, find_adapted, list_adapted_models, resolve_adapted, user_models_dir
from .checkpoints import (CorruptWeightsError, checkpoint_card, file_matches, git_blob_sha1_of, load_checkpoint,
                          load_state_dict, load_weights_into, sha256_of, verify_file)

#: names other modules and scripts import from here (the registry is the models' front door)
__all__ = ["DEFAULT_MODEL", "REGISTRY", "ModelSpec", "PackagedWeights", "UrlWeights", "CorruptWeightsError",
           "USER_MODELS_DIR_ENV", "adapted_model_path", "build_architecture", "cache_dir", "checkpoint_card", "file_matches",
           "get_locator", "get_spec", "git_blob_sha1_of", "is_cached", "list_adapted_models", "list_models",
           "load_checkpoint", "load_network", "load_state_dict", "load_weights_into", "register",
           "resolve_model", "resolve_weights", "sha256_of", "trained_sampling", "user_models_dir", "verify_file"]
WEIGHTS_DIR_ENV = "ATOMBENCH_WEIGHTS_DIR"
#: set to 1 to forbid downloads (tests, offline machines)
NO_DOWNLOAD_ENV = "ATOMBENCH_NO_DOWNLOAD"
PACKAGED_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: the model used when none is named (CLI, session, widgets, benchmark)
DEFAULT_MODEL = "atombench"


def _architectures() -> dict[str, Callable[..., Any]]:
    from .atomnet import build_atomsegnet, build_resatomsegnet_s2
    from .atomsegnet import build_nestedunet, build_unet
    from .nets.atombench_unet import build_atombench_unet

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
        wraps the locator in :class:`~napari_atombench.models.sampling.SamplingAwareLocator`,
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
        adapted = ", ".join(row["name"] for row in list_adapted_models())
        also = f"; adapted models: {adapted}" if adapted else ""
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(REGISTRY)}{also}") from None


def resolve_model(name: str | ModelSpec, weights: str | os.PathLike | None = None
                  ) -> tuple[ModelSpec, str | os.PathLike | None]:
    """(spec, weights) a model name stands for.

    ``name`` is a registry name, the name of an adapted model in
    :func:`user_models_dir` (its file stem) or a path to an adapted ``.pt``: an
    adapted model runs as its base model's spec with its own weights (and card).
    """
    if isinstance(name, ModelSpec):
        return name, weights
    path = None if name in REGISTRY else find_adapted(name)
    if path is None:
        return get_spec(name), weights
    if weights is not None:
        raise ValueError(f"model {name!r} is an adapted model (weights of its own): pass no weights file with it")
    base, path = resolve_adapted(path, list(REGISTRY))
    return REGISTRY[base], path


# ---------------------------------------------------------------------------- weights files


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
        Registry name (see :func:`list_models`), an adapted model's name or
        ``.pt`` path (see :func:`resolve_model`), or an unregistered spec.
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
    spec, resolved = resolve_model(name, weights)
    locator = _build_locator(spec, resolved, device, fidelity, download, sampling_aware, options)
    if resolved is not weights:  # an adapted model: named after its file, not its base model
        locator.name = Path(resolved).stem
    return locator


def _build_locator(spec: ModelSpec, weights, device: str, fidelity: str, download: bool,
                   sampling_aware: bool | None, options: dict):
    """:func:`get_locator` for a resolved spec and weights."""
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
    from .sampling import SamplingAwareLocator

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
