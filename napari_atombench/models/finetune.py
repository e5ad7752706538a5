"""Adapt a trained ``atombench`` model to one image from a few hand labels.

:func:`finetune` starts from the weights of a registered model of our trainable
family (``atombench``, or an adapted ``.pt`` file), rescales the image to the
sampling those weights were trained at (as inference does), makes Gaussian
heatmap targets from the labels (:func:`~napari_atombench.models.train_data.make_target`)
and trains on random crops of the labelled region only: pixels outside the region
are left out of the loss, so unlabelled parts of the image are not taken as
"no column". The last 20 % of the region along its longer side (a separate strip)
is held out: the model is scored on it every few steps, the best state is kept and
training stops early when the score stops improving.

The adapted weights are written by :func:`save_adapted_weights` as one ``.pt``
file (``{"state_dict", "card"}``, readable with ``torch.load(weights_only=True)``);
``atombench locate --weights`` and the Run dock accept it.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..core.match import match_positions, nearest_neighbour_distances_px
from .adapted import load_adapted_weights  # noqa: F401 - read back here, where it is written
from .base import Cancelled

#: fraction of the labelled region held out (a strip along its longer side)
HOLDOUT_FRACTION = 0.2


@dataclass
class FineTuneResult:
    """Adapted weights and what they were made from.

    Attributes
    ----------
    state_dict : dict of str -> torch.Tensor
        The adapted network's weights (fp32).
    card : dict
        Base model, image name, label count, steps, seconds, validation F1 (before
        and after), region, and the base card's sampling and threshold.
    locator : SamplingAwareLocator
        The adapted model, ready to run on the whole image.
    history : list of (step, loss, validation F1)
    """

    state_dict: dict
    card: dict
    locator: Any
    history: list = field(default_factory=list)


# ------------------------------------------------------------------------ regions


def region_box(labels_rc: np.ndarray, shape: tuple[int, int], region=None) -> tuple[int, int, int, int]:
    """The labelled region as a box (r0, c0, r1, c1), end exclusive, in image pixels.

    ``region`` None: the labels' bounding box grown by half a nearest-column distance
    (a labelled column's whole blob is inside); a 4-sequence: that box; a boolean
    mask of the image's shape: its bounding box (pixels outside the mask are then
    also left out of the loss by :func:`finetune`).
    """
    h, w = shape
    if region is None:
        if len(labels_rc) < 2:
            raise ValueError(f"need at least 2 labels to find the labelled region; got {len(labels_rc)}")
        pad = 0.5 * float(np.median(nearest_neighbour_distances_px(labels_rc)))
        lo = np.floor(labels_rc.min(0) - pad).astype(int)
        hi = np.ceil(labels_rc.max(0) + pad).astype(int) + 1
        r0, c0, r1, c1 = int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1])
    elif isinstance(region, np.ndarray) and region.ndim == 2:
        if region.shape != tuple(shape):
            raise ValueError(f"region mask has shape {region.shape}, the image {tuple(shape)}")
        rows, cols = np.nonzero(region)
        if len(rows) == 0:
            raise ValueError("region mask is empty")
        r0, c0, r1, c1 = rows.min(), cols.min(), rows.max() + 1, cols.max() + 1
    else:
        values = [float(v) for v in np.ravel(region)]
        if len(values) != 4:
            raise ValueError(f"region must be (r0, c0, r1, c1) or a mask; got {region!r}")
        r0, c0, r1, c1 = (int(round(v)) for v in values)
    r0, c0, r1, c1 = max(r0, 0), max(c0, 0), min(r1, h), min(c1, w)
    if r1 - r0 < 8 or c1 - c0 < 8:
        raise ValueError(f"region ({r0}, {c0}, {r1}, {c1}) is smaller than 8 px on a side inside the {h}x{w} image")
    return int(r0), int(c0), int(r1), int(c1)


def _split(box, fraction: float):
    """(train box, validation box): the validation strip is the last ``fraction``
    of the box along its longer side."""
    r0, c0, r1, c1 = box
    if r1 - r0 >= c1 - c0:
        cut = int(round(r1 - fraction * (r1 - r0)))
        return (r0, c0, cut, c1), (cut, c0, r1, c1)
    cut = int(round(c1 - fraction * (c1 - c0)))
    return (r0, c0, r1, cut), (r0, cut, r1, c1)


def _inside(positions: np.ndarray, box, margin: float = 0.0) -> np.ndarray:
    r0, c0, r1, c1 = box
    return ((positions[:, 0] >= r0 - 0.5 - margin) & (positions[:, 0] < r1 - 0.5 + margin)
            & (positions[:, 1] >= c0 - 0.5 - margin) & (positions[:, 1] < c1 - 0.5 + margin))


def strip_f1(predicted: np.ndarray, labels: np.ndarray, box, radius_px: float) -> float:
    """F1 inside ``box``: labels inside are the truth; predictions within ``radius_px``
    of it may match any label, and only unmatched ones inside count as false positives."""
    pred = predicted[_inside(predicted, box, radius_px)]
    match = match_positions(pred, labels, radius_px)
    in_box = _inside(labels, box)
    tp = int(in_box[match.truth_index].sum())
    unmatched = np.ones(len(pred), bool)
    unmatched[match.pred_index] = False
    fp = int((unmatched & _inside(pred, box)).sum())
    fn = int(in_box.sum()) - tp
    return 2 * tp / max(2 * tp + fp + fn, 1)


# ----------------------------------------------------------------------- training


def _base_locator(locator_or_spec, weights, device):
    """The sampling-aware atombench locator to start from (name or locator)."""
    from .ours import AtomBenchLocator
    from .registry import get_locator
    from .sampling import SamplingAwareLocator

    locator = get_locator(locator_or_spec, weights=weights, device=device) if isinstance(locator_or_spec, str) \
        else locator_or_spec
    if not (isinstance(locator, SamplingAwareLocator) and isinstance(locator.inner, AtomBenchLocator)):
        raise ValueError(f"model {getattr(locator, 'name', locator_or_spec)!r} cannot be fine-tuned: only the "
                         "atombench family (our U-Net) is trainable here")
    return locator


def _augment(x: np.ndarray, y: np.ndarray, m: np.ndarray, rng: np.random.Generator):
    """Same flip / 90° rotation of input, target and loss mask; intensity jitter
    (gain, offset, gamma-like curvature, noise) of the standardised input only."""
    k = int(rng.integers(4))
    x, y, m = np.rot90(x, k), np.rot90(y, k), np.rot90(m, k)
    if rng.random() < 0.5:
        x, y, m = x[:, ::-1], y[:, ::-1], m[:, ::-1]
    x = x * rng.uniform(0.75, 1.3) + rng.uniform(-0.3, 0.3)
    x = x + rng.uniform(-0.1, 0.1) * (x**2 - 1.0)
    if rng.random() < 0.3:
        x = x + rng.normal(0.0, rng.uniform(0.02, 0.15), x.shape)
    return [np.ascontiguousarray(a, dtype=np.float32) for a in (x, y, m)]


def _predict_box(net, x: np.ndarray, box, context: int, threshold: float, min_distance_px: int, torch,
                 light_columns: bool = False):
    """Peaks of the network's heatmap on ``box`` of the standardised image ``x``
    (with ``context`` px around it), in ``x``'s frame."""
    from .heatmap import heatmap_peaks
    from .ours import input_planes

    r0, c0, r1, c1 = box
    a0, b0 = max(r0 - context, 0), max(c0 - context, 0)
    a1, b1 = min(r1 + context, x.shape[0]), min(c1 + context, x.shape[1])
    crop = x[a0:a1, b0:b1]
    d = net.downsampling
    ph, pw = (-crop.shape[0]) % d, (-crop.shape[1]) % d
    crop = np.pad(crop, ((0, ph), (0, pw)), mode="reflect" if min(crop.shape) > max(ph, pw) else "edge")
    with torch.inference_mode():
        t = torch.from_numpy(np.ascontiguousarray(crop))[None, None].to(next(net.parameters()).device)
        t = input_planes(t, getattr(net, "in_channels", 1), light_columns)
        prob = torch.sigmoid(net(t))[0, 0].float().cpu().numpy()[: a1 - a0, : b1 - b0]
    return heatmap_peaks(prob, threshold, min_distance_px) + np.array([a0, b0])


def _check_options(labels: np.ndarray, *, lr: float, threads: int | None, **at_least) -> None:
    """ValueError naming the first option of :func:`finetune` out of range."""
    if labels.ndim != 2 or labels.shape[1] != 2 or len(labels) < 4:
        raise ValueError(f"labels_rc must be an (N, 2) array with at least 4 labels; got shape {labels.shape}")
    lows = {"steps": 1, "crop_px": 16, "batch_size": 1, "eval_every": 1, "patience": 1}
    for name, value in at_least.items():
        if int(value) < lows[name]:
            raise ValueError(f"{name} must be >= {lows[name]}; got {value}")
    if lr <= 0:
        raise ValueError(f"lr must be > 0; got {lr}")
    if threads is not None and int(threads) < 1:
        raise ValueError(f"threads must be >= 1; got {threads}")


def _region_mask(shape: tuple[int, int], box, region) -> np.ndarray:
    """1 inside the labelled box (and inside ``region`` when it is a mask), 0 elsewhere."""
    mask = np.zeros(shape, np.float32)
    mask[box[0]:box[2], box[1]:box[3]] = 1.0
    if isinstance(region, np.ndarray) and region.ndim == 2:
        mask *= region.astype(np.float32)
    return mask


def _training_inputs(base, image: np.ndarray, labels: np.ndarray, box, mask: np.ndarray, pixel_size_A, crop_px: int):
    """The image and labels at the trained sampling: standardised input, heatmap target,
    loss mask (training part of the region), labels, (train, validation) boxes,
    (crop side, match radius, context) in px, and (zoom, how, sampling metadata, ratio)."""
    from ._pipeline import positions_to_frame
    from .heatmap import standardize
    from .sampling import resample
    from .train import ARCH_RECIPES
    from .train_data import make_target

    # the base locator's polarity rule applies (auto: dark columns mirrored), as at inference
    _, scaled, zoom, how, sampling_meta = base._rescaled(image, pixel_size_A)
    x = standardize(scaled, base.inner.normalize_window_px)
    labels_s = positions_to_frame(labels[_inside(labels, box)], image.shape, scaled.shape)
    ratio = np.array(scaled.shape * 2, float) / np.array(image.shape * 2, float)
    box_s = tuple(int(v) for v in np.round(np.array(box) * ratio))
    mask_s = resample(mask, scaled.shape) > 0.5
    train_box, val_box = _split(box_s, HOLDOUT_FRACTION)
    loss_mask = np.zeros(scaled.shape, np.float32)
    loss_mask[train_box[0]:train_box[2], train_box[1]:train_box[3]] = 1.0
    loss_mask *= mask_s
    recipe = ARCH_RECIPES["atombench_unet"]
    target = make_target(labels_s, scaled.shape, recipe["target"], recipe["target_px"]).astype(np.float32)
    side = min(int(crop_px) // 8 * 8, scaled.shape[0] // 8 * 8, scaled.shape[1] // 8 * 8)
    nn_px = float(np.median(nearest_neighbour_distances_px(labels_s))) if len(labels_s) > 1 else 10.0
    radius = max(1.5, 0.25 * nn_px)
    context = int(np.ceil(nn_px)) + 8
    return (x, target, loss_mask, labels_s, (train_box, val_box), (side, radius, context),
            (zoom, how, sampling_meta, ratio))


def finetune(locator_or_spec="atombench", image=None, labels_rc=None, *, region=None, steps: int = 300,
             pixel_size_A: float | None = None, weights: str | Path | None = None, image_name: str = "",
             crop_px: int = 64, batch_size: int = 8, lr: float = 1e-3, eval_every: int = 25, patience: int = 4,
             seed: int = 0, device: str = "auto", threads: int | None = None,
             progress: Callable[[int, int], None] | None = None,
             cancelled: Callable[[], bool] | None = None) -> FineTuneResult:
    """Fine-tune an atombench model on hand labels of one image.

    Parameters
    ----------
    locator_or_spec : str or SamplingAwareLocator
        A registered model of the atombench family (default ``atombench``) or its locator.
    image : array_like, shape (H, W)
    labels_rc : array_like, shape (N, 2)
        Every column inside the labelled region, (row, col) in pixels.
    region : None, (r0, c0, r1, c1) or bool mask (H, W)
        Where the labels are complete (see :func:`region_box`); default the labels' bounding box.
    steps : int
        Most optimiser steps (training may stop earlier, see ``patience``).
    pixel_size_A : float, optional
        Å per pixel; without it the sampling is estimated from the image, as inference does.
    weights : path, optional
        Start from this checkpoint (e.g. an adapted ``.pt``) instead of the model's weights.
    image_name : str
        Recorded in the card.
    crop_px, batch_size, lr : training crops (side, multiple of 8), batch, peak learning rate
    eval_every, patience : int
        Score the held-out strip every ``eval_every`` steps and keep the best state
        (the later one on a tie); stop after ``patience`` scores below the best.
    seed : int
    device : str
    threads : int, optional
        CPU threads for torch during fine-tuning (restored afterwards); on a busy
        machine 1 thread can be several times faster than all.
    progress : callable(done, total), optional
    cancelled : callable() -> bool, optional
        Checked every step; raises :class:`~napari_atombench.models.base.Cancelled`.

    Returns
    -------
    FineTuneResult
    """
    import torch

    from ..core.io import as_image_2d

    t0 = time.perf_counter()
    image = as_image_2d(image, name="image")
    labels = np.asarray(labels_rc, dtype=np.float64)
    _check_options(labels, lr=lr, threads=threads, steps=steps, crop_px=crop_px, batch_size=batch_size,
                   eval_every=eval_every, patience=patience)
    base = _base_locator(locator_or_spec, weights, device)
    box = region_box(labels, image.shape, region)
    mask = _region_mask(image.shape, box, region)
    if not _inside(labels, box).any():
        raise ValueError(f"no label lies inside the region {box}")

    x, target, loss_mask, labels_s, boxes, scales, sampling = _training_inputs(base, image, labels, box, mask,
                                                                               pixel_size_A, crop_px)
    train_box, val_box = boxes
    side, radius, context = scales
    zoom, how, sampling_meta, ratio = sampling

    threads_before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        return _train(base, x, target, loss_mask, labels_s, train_box, val_box, side, radius, context, steps=steps,
                      batch_size=batch_size, lr=lr, eval_every=eval_every, patience=patience, seed=seed,
                      progress=progress, cancelled=cancelled, t0=t0, card_info=dict(
                          image_name=image_name, image=image, pixel_size_A=pixel_size_A, zoom=zoom, how=how,
                          contrast=sampling_meta.get("contrast_used"), box=box, ratio=ratio, n_labels=int(_inside(labels, box).sum()), weights=weights))
    finally:
        torch.set_num_threads(threads_before)


def _train(base, x, target, loss_mask, labels_s, train_box, val_box, side, radius, context, *, steps, batch_size, lr,
           eval_every, patience, seed, progress, cancelled, t0, card_info) -> FineTuneResult:
    """The training loop of :func:`finetune` (inputs already in the trained sampling)."""
    import torch

    from .ours import AtomBenchLocator, input_planes
    from .sampling import SamplingAwareLocator
    from .train import learning_rate

    inner = base.inner
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = copy.deepcopy(inner.source_net).to(inner.device)  # unfolded: BatchNorm trains, keys match the file
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")

    def evaluate() -> float:
        net.eval()
        pred = _predict_box(net, x, val_box, context, inner.threshold, inner.min_distance_px, torch,
                            inner.light_columns)
        net.train()
        return strip_f1(pred, labels_s, val_box, radius)

    best_f1 = f1_before = evaluate()
    best_state, best_step, stale, step, history, stopped = copy.deepcopy(net.state_dict()), 0, 0, 0, [], "budget"
    lo_r = int(np.clip(train_box[0] - side // 2, 0, x.shape[0] - side))
    hi_r = int(np.clip(train_box[2] - side // 2, lo_r, x.shape[0] - side))
    lo_c = int(np.clip(train_box[1] - side // 2, 0, x.shape[1] - side))
    hi_c = int(np.clip(train_box[3] - side // 2, lo_c, x.shape[1] - side))
    net.train()
    running = []
    while step < steps:
        if cancelled is not None and cancelled():
            raise Cancelled("fine-tuning cancelled")
        for group in opt.param_groups:
            group["lr"] = learning_rate(lr, step / steps)
        batch = []
        for _ in range(int(batch_size)):
            r, c = int(rng.integers(lo_r, hi_r + 1)), int(rng.integers(lo_c, hi_c + 1))
            sl = (slice(r, r + side), slice(c, c + side))
            batch.append(_augment(x[sl], target[sl], loss_mask[sl], rng))
        xb, yb, mb = (torch.from_numpy(np.stack(a))[:, None].to(inner.device) for a in zip(*batch))
        xb = input_planes(xb, inner.in_channels, inner.light_columns)
        loss = (loss_fn(net(xb), yb) * (1.0 + 9.0 * yb) * mb).sum() / mb.sum().clamp(min=1.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        running.append(float(loss.item()))
        if step % eval_every == 0 or step == steps:
            f1 = evaluate()
            history.append((step, float(np.mean(running)), f1))
            running = []
            if f1 >= best_f1:  # on a tie the later (longer trained) state
                best_f1, best_state, best_step, stale = f1, copy.deepcopy(net.state_dict()), step, 0
            else:
                stale += 1
                if stale >= patience:
                    stopped = "early"
                    break
        if progress is not None:
            progress(step, steps)
    net.load_state_dict(best_state)
    net.eval()
    run = {"steps": int(best_step), "steps_run": int(step), "steps_budget": int(steps), "stopped": stopped,
           "seconds": round(time.perf_counter() - t0, 2), "validation_f1_before": round(float(f1_before), 4),
           "validation_f1": round(float(best_f1), 4), "seed": int(seed),
           "n_labels_validation": int(_inside(labels_s, val_box).sum()),
           "config": {"normalize_window_px": inner.normalize_window_px, "crop_px": side,
                      "batch_size": int(batch_size), "lr": float(lr)}}
    card = _make_card(base, card_info, val_box, run)
    adapted = SamplingAwareLocator(
        AtomBenchLocator(f"{inner.name} adapted", net, {**inner.provenance, "adapted": card}, device=str(inner.device),
                         threshold=inner.threshold, min_distance_px=inner.min_distance_px,
                         tile_size=inner.tile_size, overlap_px=inner.overlap_px,
                         normalize_window_px=inner.normalize_window_px, fast=inner.fast, bf16=inner.bf16,
                         light_columns=inner.light_columns),
        trained_pixel_size_A=base.trained_pixel_size_A, trained_separation_px=base.trained_separation_px,
        max_side_px=base.max_side_px, edge_px=base.edge_px, rescale=base.rescale, contrast=base.contrast)
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    return FineTuneResult(state_dict=state, card=card, locator=adapted, history=history)


def _make_card(base, info: dict, val_box, run: dict) -> dict:
    """The adapted model's card: base model, image, region, labels, the run's record
    (``run``), and the base card's sampling and threshold (so the file runs alone)."""
    from .ours import unet_kwargs

    inner = base.inner
    base_card = _base_card(base, info["weights"])
    return {
        "kind": "adapted",
        "architecture": "atombench_unet",
        "arch_kwargs": base_card.get("arch_kwargs") or unet_kwargs(inner.source_net.state_dict()),
        "base_model": inner.name,
        "base_weights_sha256": inner.provenance.get("weights_sha256"),
        "image_name": str(info["image_name"]),
        "image_shape": [int(s) for s in info["image"].shape],
        "pixel_size_A": info["pixel_size_A"],
        "sampling_zoom": float(info["zoom"]),
        "sampling_from": info["how"],
        "contrast_used": info["contrast"],
        "contrast": base.contrast,  # the polarity rule it was adapted under, applied again on reload
        **({"light_columns": inner.light_columns} if inner.in_channels == 2 else {}),  # its label convention
        "region_rc": [int(v) for v in info["box"]],
        "validation_region_rc": [int(round(v)) for v in np.array(val_box) / info["ratio"]],
        "n_labels": info["n_labels"],
        **run,
        "trained_pixel_size_A": base.trained_pixel_size_A,
        "trained_separation_px": base.trained_separation_px,
        "threshold": inner.threshold,
    }


def _base_card(base, weights) -> dict:
    from .catalogue import OUR_MODELS, card
    from .registry import checkpoint_card

    if weights is not None:
        return checkpoint_card(Path(weights))
    info = OUR_MODELS.get(base.inner.name)
    return card(info["filename"]) if info else {}


# ------------------------------------------------------------------------- files


def save_adapted_weights(result: FineTuneResult, path: str | Path) -> Path:
    """Write ``{"state_dict", "card"}`` to ``path`` (a ``.pt`` that
    ``torch.load(weights_only=True)`` reads; ``locate --weights`` accepts it)."""
    import io
    import json

    import torch

    from ..core.io import atomic_write_bytes

    path = Path(path)
    if path.suffix not in (".pt", ".pth"):
        raise ValueError(f"{path}: adapted weights must be written to a .pt or .pth file")
    card = json.loads(json.dumps(result.card))  # plain JSON types only, as weights_only loading needs
    buffer = io.BytesIO()
    torch.save({"state_dict": result.state_dict, "card": card}, buffer)
    return atomic_write_bytes(path, buffer.getvalue())
