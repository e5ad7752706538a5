"""Train any registered architecture on simulated images (domain randomisation).

Data: a pool of random simulated scenes (:mod:`napari_atombench.models.train_data`,
whose names stay importable from here), generated once per run (seeded) and
augmented on the fly (flips, 90° rotations, gamma, extra noise, 8-bit
quantisation).

Targets follow each family: AtomNet — binary disks; AtomSegNet — Gaussian
masks; ``atombench`` — a Gaussian heatmap (σ = 1.2 px). Inputs are normalised
as each family's inference pipeline does (8-bit min–max for the published
families, mean/std for ours).

Checkpoints (``torch.save`` of plain dicts: state_dict, optimiser state, step,
config, RNG states) load with ``weights_only=True`` and resume exactly.
"""

from __future__ import annotations

import io
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..core.io import atomic_write_bytes
from .checkpoints import load_checkpoint, load_state_dict, load_weights_into, sha256_of
from .ours import input_planes
from .registry import build_architecture
from .train_data import (  # noqa: F401 - the data generators, importable from here as before
    HBN, MODALITY_KINDS, POOL_CHUNK, RESOLVABLE_SEPARATION_FWHM, TRAINED_PIXEL_SIZE_A, _modality_image, make_pool,
    make_pool_chunked, make_target, modality_scene_kwargs, nanoparticle_mask, processing_artefacts,
    random_scene_kwargs, resolvable_resolution_pm)

#: architecture -> (target kind, target size px, input normalisation)
ARCH_RECIPES: dict[str, dict] = {
    "atombench_unet": dict(target="gauss", target_px=1.2, norm="standardize"),
    "resatomsegnet_s2": dict(target="disk", target_px=2.0, norm="minmax8"),
    "atomsegnet": dict(target="disk", target_px=2.0, norm="minmax8"),
    "unet": dict(target="gauss", target_px=1.5, norm="minmax8"),
    "nestedunet": dict(target="gauss", target_px=1.5, norm="minmax8"),
}


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved in each checkpoint)."""

    architecture: str
    steps: int = 1000
    batch_size: int = 8
    crop_px: int = 128
    pool_size: int = 2000
    lr: float = 2e-3
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    checkpoint_every: int = 100
    log_every: int = 10
    max_minutes: float | None = None
    arch_kwargs: dict = field(default_factory=dict)
    trained_pixel_size_A: float = TRAINED_PIXEL_SIZE_A
    #: simulate each scene at a native pixel size drawn log-uniformly from this range (Å)
    #: and resample it to ``trained_pixel_size_A`` exactly as inference does, so the
    #: network sees the interpolation blur and correlated noise of rescaled real images;
    #: None: simulate at the trained pixel size ± 25 %
    native_pixel_size_A: tuple[float, float] | None = None
    #: side of the sliding window inference standardises with (recorded for the locator);
    #: None: whole-image standardisation
    normalize_window_px: int | None = None
    #: probe FWHM range (pm), drawn log-uniformly and capped at 1.1× the closest labelled
    #: column separation (beyond that two columns merge into one blob: no image shows
    #: them apart); None: uniform 60–125 pm, uncapped (the recipe of the first weights)
    resolution_pm: tuple[float, float] | None = None
    #: add the v3 modality scenes (:data:`MODALITY_KINDS`) and image-processing
    #: artefacts (JPEG, low-pass, row offsets); False: the v2 recipe
    modalities: bool = False
    #: label only the columns that can be seen and placed one by one in their image
    #: (matched-filter SNR >= :data:`LABEL_MIN_SNR` and enough to place them within
    #: :data:`LABEL_MAX_ERROR_A`, outside Sparrow's limit of a neighbour) and leave the
    #: pixels around the others out of the loss; False: every column the contrast-weight
    #: policy counts (the recipe of the shipped v3 weights)
    seen_labels: bool = False
    #: with ``modalities``: pool shares of some modality kinds instead of
    #: :data:`MODALITY_KINDS` (e.g. ``{"thick_support": 0.2}``); None: the defaults
    modality_shares: dict | None = None
    #: share of crops shown with inverted contrast and an all-zero target: the network should
    #: answer only in the right polarity, which the ``contrast="auto"`` vote relies on
    polarity_negatives: float = 0.0
    #: with ``modalities``: thick-support scenes keep their broad probes (up to the top of
    #: ``resolution_pm``, as validation draws them) instead of the resolvable cap; implied
    #: by ``seen_labels``; False: the recipe of the shipped v3 weights
    broad_thick_probes: bool = False
    #: processes generating the pool; with ``modalities`` the pool is made of
    #: :data:`POOL_CHUNK` scene chunks seeded from ``seed`` and the chunk index, so
    #: it is the same for any number of workers
    pool_workers: int = 1
    #: start from these weights (a state_dict file, fp16 or fp32) instead of a random
    #: network; the file's SHA-256 goes into ``init_weights_sha256``
    init_weights: str | None = None
    init_weights_sha256: str | None = None


# --------------------------------------------------------------------- normalisation


def normalise(batch: np.ndarray, mode: str) -> np.ndarray:
    """Per-image input normalisation as the family's inference does (batch (B, H, W))."""
    batch = batch.astype(np.float32)
    if mode == "standardize":
        from .heatmap import standardize

        return np.stack([standardize(image) for image in batch])
    if mode == "minmax8":
        lo = batch.min(axis=(1, 2), keepdims=True)
        hi = batch.max(axis=(1, 2), keepdims=True)
        return np.floor((batch - lo) / np.maximum(hi - lo, 1e-12) * 255.0) / 255.0
    raise ValueError(f"unknown normalisation {mode!r}")


def augment(images: np.ndarray, targets: np.ndarray, rng: np.random.Generator, artefacts: bool = False):
    """Flips and 90° rotations (both), gamma, extra Gaussian noise, 8-bit quantisation (image);
    with ``artefacts`` also :func:`processing_artefacts` (before quantisation)."""
    out_i, out_t = [], []
    for img, tgt in zip(images, targets):
        k = int(rng.integers(4))
        img, tgt = np.rot90(img, k), np.rot90(tgt, k)
        if rng.random() < 0.5:
            img, tgt = img[:, ::-1], tgt[:, ::-1]
        img = img.astype(np.float32)
        lo, hi = float(img.min()), float(img.max())
        span = max(hi - lo, 1e-6)
        if rng.random() < 0.2:
            img = lo + span * ((img - lo) / span) ** rng.uniform(0.7, 1.4)
        if rng.random() < 0.2:
            img = img + rng.normal(0, rng.uniform(0.01, 0.08) * span, img.shape)
        if artefacts:
            img = processing_artefacts(img, rng)
        if rng.random() < 0.3:
            lo, hi = float(img.min()), float(img.max())
            img = np.floor((img - lo) / max(hi - lo, 1e-6) * 255.0)
        out_i.append(np.ascontiguousarray(img))
        out_t.append(np.ascontiguousarray(tgt, dtype=np.float32))
    return np.stack(out_i), np.stack(out_t)


def polarity_negatives(images: np.ndarray, targets: np.ndarray, share: float, rng: np.random.Generator):
    """Invert the contrast of about ``share`` of the crops and empty their targets (nothing to find
    in the wrong polarity). ``share`` 0 draws nothing from ``rng``: the default recipe is unchanged."""
    if share <= 0:
        return images, targets
    wrong = rng.random(len(images)) < share
    images, targets = images.copy(), targets.copy()
    images[wrong], targets[wrong] = -images[wrong], 0.0
    return images, targets


# --------------------------------------------------------------------------- network


def _init_output_bias(net) -> None:
    """Start the output near "no atom" (most pixels are background).

    AtomSegNet's UNet ends with ReLU -> BatchNorm(1) -> sigmoid: with BN's default
    bias 0 every background pixel starts at p ≈ 0.45 and the BN bias needs
    thousands of steps to move; a bias of -4 starts it at p ≈ 0.02. (The other
    networks end with a plain convolution whose bias learns fast.)
    """
    import torch

    if hasattr(net, "bn9"):
        with torch.no_grad():
            net.bn9.bias.fill_(-4.0)


def _resolve_device(device: str):
    from ._pipeline import resolve_device

    return resolve_device(device)


def _logits(net, x):
    return net.logits(x) if hasattr(net, "logits") else net(x)


# --------------------------------------------------------------------------- training


def weighted_loss(loss_fn, logits, y):
    """Mean of ``loss_fn`` weighted 1 + 9 × target (columns count more than background), 0 where the
    target is :data:`~napari_atombench.models.train_data.IGNORED_TARGET` (around unseen columns)."""
    import torch

    weight = torch.where(y < 0, 0.0, 1.0 + 9.0 * y)
    return (loss_fn(logits, y.clamp(min=0.0)) * weight).mean()


def learning_rate(peak: float, progress: float, warmup: float = 0.05) -> float:
    """Linear warm-up then cosine decay to 2 % of ``peak`` over ``progress`` in [0, 1]."""
    if progress < warmup:
        return peak * (0.1 + 0.9 * progress / warmup)
    t = (progress - warmup) / (1.0 - warmup)
    return peak * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0))))


def train(
    config: TrainConfig,
    out: str | Path,
    *,
    resume: str | Path | None = None,
    log: Callable[[str], None] = print,
    cancelled: Callable[[], bool] | None = None,
) -> dict:
    """Train ``config.architecture`` and write checkpoints to ``out``.

    Returns the final checkpoint's summary (step, losses, wall time).
    """
    import torch

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if config.architecture not in ARCH_RECIPES:
        raise ValueError(f"no training recipe for {config.architecture!r}; known: {', '.join(ARCH_RECIPES)}")
    recipe = ARCH_RECIPES[config.architecture]
    if config.threads:
        torch.set_num_threads(int(config.threads))
    device = _resolve_device(config.device)
    torch.manual_seed(config.seed)
    if config.modalities and config.architecture == "atombench_unet":
        config.arch_kwargs.setdefault("in_channels", 2)  # image + light-columns plane (train_data)
    net = build_architecture(config.architecture, **config.arch_kwargs)
    _init_output_bias(net)
    if config.init_weights is not None and resume is None:
        _load_init_weights(net, config)
    net = net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=1e-4)
    run = {"step": 0, "history": [], "wall_s": 0.0, "rng": np.random.default_rng(config.seed + 1)}
    if resume is not None:
        _resume(resume, net, opt, run)
        log(f"resumed from {resume} at step {run['step']}")
    images, targets, seps, light = _training_pool(config, recipe, log)
    run["trained_separation_px"] = trained_separation_px(seps, light)
    net.train()
    run["t0"] = time.perf_counter()
    _train_loop(config, recipe, net, opt, run, (images, targets, light), device, out, log, cancelled)
    _save_checkpoint(out, config, net, opt, run)
    return {"step": run["step"], "history": run["history"], "wall_s": _wall_s(run), "checkpoint": str(out)}


def _load_init_weights(net, config: TrainConfig) -> None:
    """Start ``net`` from ``config.init_weights`` (and record the file's SHA-256 in ``config``)."""
    from types import SimpleNamespace

    model = SimpleNamespace(name=f"{config.architecture} {config.arch_kwargs}", architecture=config.architecture)
    state = widen_first_conv(load_state_dict(config.init_weights), net)
    load_weights_into(net, state, model, config.init_weights)
    config.init_weights_sha256 = sha256_of(config.init_weights)


def trained_separation_px(separations: np.ndarray, light: np.ndarray) -> float:
    """The sampling reference of the locator's no-pixel-size rule: the median column
    separation over the scenes labelled in the default (heavy-column) convention.

    ``estimate_separation`` on a HAADF image sees the heavy lattice; scenes shown with
    ``light_columns`` 1 label O columns too, about half as far apart, which would pull
    the median down and make every image without a pixel size come out too small."""
    heavy = np.asarray(separations)[np.asarray(light) == 0]
    heavy = heavy[np.isfinite(heavy)]
    return float(np.median(heavy)) if len(heavy) else float("nan")


def widen_first_conv(state: dict, net) -> dict:
    """``state`` of a one-input-channel network made to fit ``net``'s two-channel first
    convolution: the new light-columns channel starts at zero weight, so the widened
    network computes exactly what the given weights did; any other state unchanged."""
    key = "enc.0.0.weight"
    want = net.state_dict().get(key)
    have = state.get(key)
    if want is None or have is None or have.shape[1] != 1 or want.shape[1] != 2 or have.shape[0] != want.shape[0]:
        return state
    import torch

    return {**state, key: torch.cat([have, torch.zeros_like(have)], dim=1)}


def _wall_s(run: dict) -> float:
    """Training wall time so far, resumed runs' time included."""
    return run["wall_s"] + time.perf_counter() - run["t0"]


def _resume(path: str | Path, net, opt, run: dict) -> None:
    """Load a training checkpoint's network, optimiser, step, history and RNG into ``run``."""
    ckpt = load_checkpoint(path)
    missing = [k for k in ("state_dict", "optimizer", "step", "history", "wall_s", "rng_state")
               if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise ValueError(f"{path}: not a training checkpoint of `atombench train` (no {', '.join(missing)})")
    net.load_state_dict(ckpt["state_dict"])
    opt.load_state_dict(ckpt["optimizer"])
    run.update(step=int(ckpt["step"]), history=list(ckpt["history"]), wall_s=float(ckpt["wall_s"]))
    run["rng"].bit_generator.state = json.loads(ckpt["rng_state"])


def _training_pool(config: TrainConfig, recipe: dict, log: Callable[[str], None]):
    """The run's scene pool: images, targets, nearest-neighbour separations, light-columns flags."""
    t_pool = time.perf_counter()
    pool_kwargs = dict(target=recipe["target"], target_px=recipe["target_px"], pixel_size_A=config.trained_pixel_size_A,
                       native_pixel_size_A=config.native_pixel_size_A, resolution_pm=config.resolution_pm,
                       seen_labels=config.seen_labels, modality_shares=config.modality_shares,
                       broad_thick_probes=config.broad_thick_probes)
    if config.modalities:
        pool = make_pool_chunked(config.pool_size, config.crop_px, seed=config.seed,
                                 workers=config.pool_workers, modalities=True, **pool_kwargs)
    else:
        pool = make_pool(config.pool_size, config.crop_px, seed=config.seed, **pool_kwargs)
    log(f"pool: {config.pool_size} scenes of {config.crop_px}² in {time.perf_counter() - t_pool:.1f} s")
    return pool


def _save_checkpoint(path: Path, config: TrainConfig, net, opt, run: dict) -> None:
    """Write a resumable checkpoint (plain dict, readable with ``weights_only=True``) atomically."""
    import torch

    state = {
        "state_dict": net.state_dict(),
        "optimizer": opt.state_dict(),
        "step": run["step"],
        "history": run["history"],
        "wall_s": _wall_s(run),
        "config": json.dumps(asdict(config)),
        "rng_state": json.dumps(run["rng"].bit_generator.state),
        "trained_pixel_size_A": config.trained_pixel_size_A,
        "trained_separation_px": run["trained_separation_px"],
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())  # a kill mid-write keeps the previous checkpoint


def _train_loop(config, recipe, net, opt, run, pool, device, out, log, cancelled) -> None:
    """Steps until ``config.steps``, the time budget or ``cancelled``; logs and checkpoints on the way."""
    import torch

    images, targets, light = pool
    in_channels = getattr(net, "in_channels", 1)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
    rng, running = run["rng"], []
    while run["step"] < config.steps:
        if cancelled is not None and cancelled():
            break
        progress = run["step"] / max(config.steps, 1)
        if config.max_minutes is not None:
            progress = max(progress, _wall_s(run) / (60.0 * config.max_minutes))
        if progress >= 1.0:
            log(f"time budget of {config.max_minutes} min reached at step {run['step']}")
            break
        for group in opt.param_groups:
            group["lr"] = learning_rate(config.lr, progress)
        idx = rng.integers(0, len(images), config.batch_size)
        xb, yb = augment(images[idx], targets[idx], rng, artefacts=config.modalities)
        xb, yb = polarity_negatives(xb, yb, config.polarity_negatives, rng)
        x = input_planes(torch.from_numpy(normalise(xb, recipe["norm"]))[:, None], in_channels,
                         torch.from_numpy(light[idx])).to(device)
        y = torch.from_numpy(yb)[:, None].to(device)
        loss = weighted_loss(loss_fn, _logits(net, x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        run["step"] += 1
        step = run["step"]
        running.append(loss.item())
        if step % config.log_every == 0 or step == config.steps:
            mean = float(np.mean(running))
            run["history"].append([step, mean])
            running = []
            log(f"step {step}/{config.steps} loss {mean:.4f} elapsed {_wall_s(run):.0f} s")
        if step % config.checkpoint_every == 0 or step == config.steps:
            _save_checkpoint(out, config, net, opt, run)


def export_weights(checkpoint: str | Path, out: str | Path, *, fp16: bool = True, card: dict | None = None) -> dict:
    """Write a checkpoint's state_dict (fp16 by default) and a JSON record next to it."""
    import torch

    ckpt = load_checkpoint(checkpoint)
    state = {k: (v.half() if fp16 and v.is_floating_point() else v) for k, v in ckpt["state_dict"].items()}
    out = Path(out)
    torch.save(state, out)
    config = json.loads(ckpt["config"])
    record = {
        "architecture": config["architecture"],
        "arch_kwargs": config["arch_kwargs"],
        "trained_pixel_size_A": ckpt["trained_pixel_size_A"],
        "trained_separation_px": ckpt["trained_separation_px"],
        "steps": ckpt["step"],
        "train_wall_s": round(ckpt["wall_s"], 1),
        "config": config,
        "fp16": fp16,
        "sha256": sha256_of(out),
        **(card or {}),
    }
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    return record
