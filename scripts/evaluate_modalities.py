"""Recall / precision of atombench weights per imaging modality on simulated scenes.

Scenes come from the v3 training sampler (:data:`napari_atombench.models.train_data.MODALITY_KINDS`
plus the v2 "haadf" kinds and a "jpeg" set of v2 scenes through JPEG at quality 25-60),
with seeds the training never uses; ABF scenes are given to the locator as recorded
(dark columns) and its ``contrast="auto"`` decides. Each scene is simulated at its own
pixel size (0.08-0.4 Å) and located with its true pixel size; scores use the 0.5 Å
matching radius and ignore the outer 3 px. The threshold is chosen on one seed range
(best mean F1 over modalities) and reported on another. No experimental image is read.

Labels: ``--labels all`` (default) scores against every column the contrast-weight
policy counts, as the shipped weights were trained; ``--labels seen`` (the "seen"
policy, :data:`napari_atombench.models.train_data.LABEL_MIN_SNR`) only against the
columns that can be seen and placed one by one in their image (matched-filter SNR >=
Rose's 5 and high enough for the 0.5 Å radius at the Cramér–Rao bound, outside Sparrow's
limit of a neighbour): the others are neither labels nor false positives, a detection
on one (within the probe's half width at half maximum, at least 0.5 Å) is left out. A
scene needs 2 labels to count, so the two policies can draw slightly different scene sets.

Label conventions: "abf" and "idpc" label light columns between heavy ones (O) and
weights with the v3 light-columns input are run with ``light_columns=True``;
"abf_heavy" and "idpc_heavy" are the same kinds of scene labelled as HAADF would be
(pure O columns are not atoms) and run with ``light_columns=False``, as every other
modality. Weights without that input always run as they are.

Run (from the repository root)::

    python scripts/evaluate_modalities.py --weights v2=napari_atombench/models/weights/atombench.pt \\
        v3=/path/atombench-v3.pt [--n 16] [--write-threshold v3]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from napari_atombench.core import simulate as sim  # noqa: E402
from napari_atombench.core.metrics import compare_positions  # noqa: E402
from napari_atombench.models.train_data import LABEL_MAX_ERROR_A  # noqa: E402

#: the matching radius of the scores; the "seen" labels are placeable within it by construction
MATCH_RADIUS_A = LABEL_MAX_ERROR_A

SELECT_SEED, REPORT_SEED = 880_000, 990_000
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
MODALITIES = ("haadf", "abf", "idpc", "abf_heavy", "idpc_heavy", "light_lowdose", "nanoparticle", "thick_support",
              "jpeg")


def _jpeg(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    lo, hi = float(image.min()), float(image.max())
    img8 = np.clip((image - lo) / max(hi - lo, 1e-6) * 255.0, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img8).save(buf, format="JPEG", quality=int(rng.integers(25, 60)))
    return np.asarray(Image.open(buf), dtype=np.float32)


def scenes(modality: str, n: int, seed: int, labels: str = "all") -> list[tuple]:
    """(image, truth_rc, pixel_size_A, unseen_rc, unseen_radius_A) for ``n`` scenes of ``modality``;
    ``labels`` "all": every column the contrast-weight policy counts, "seen": only those seen one
    by one. ``unseen_radius_A``: a detection this close to an unseen column is on it (the probe's
    half width at half maximum, at least the 0.5 Å matching radius)."""
    from napari_atombench.models import train_data as tr

    rng = np.random.default_rng(seed)
    kind = modality.removesuffix("_heavy")
    out = []
    while len(out) < n:
        kw = tr.random_scene_kwargs(rng, 160, 0.2, (0.08, 0.4), (60.0, 260.0), seen_labels=labels == "seen")
        if kind in tr.MODALITY_KINDS:
            kw = tr.modality_scene_kwargs(kind, kw, rng)
        s = sim.simulate(**kw)
        capped = tr.resolvable_resolution_pm(tr.counted_columns(s), s.pixel_size_A, kw["resolution_pm"], 60.0)
        if capped < kw["resolution_pm"] and modality != "thick_support":
            s = sim.simulate(**{**kw, "resolution_pm": capped})
        image, truth, unseen = s.image.astype(np.float32), s.positions_rc, s.unseen_rc
        if modality.endswith("_heavy"):
            truth, unseen = tr.heavy_column_labels(s, kw)
        if modality == "nanoparticle":
            image, truth, unseen = tr._modality_image(s, modality, rng)  # ABF stays dark: the locator decides
        elif modality == "jpeg":
            image = _jpeg(image, rng)
        if len(truth) >= 2:
            hwhm_A = s.parameters["resolution_pm"] / 200.0
            out.append((image, truth, s.pixel_size_A, unseen, max(MATCH_RADIUS_A, hwhm_A)))
    return out


def counts(found: np.ndarray, truth: np.ndarray, unseen: np.ndarray, px: float, shape,
           unseen_radius_A: float = MATCH_RADIUS_A) -> tuple[int, int, int]:
    """(TP, FP, FN) at :data:`MATCH_RADIUS_A` ignoring the outer 3 px; a false positive within ``unseen_radius_A``
    of an unseen column is left out."""
    scoring = dict(pixel_size_A=px, max_distance_A=MATCH_RADIUS_A, border_margin_px=3, image_shape=shape)
    sc = compare_positions(found, truth, **scoring)
    n_fp = sc.score.n_fp
    if len(unseen) and n_fp:
        on_unseen = {**scoring, "max_distance_A": unseen_radius_A}
        n_fp -= compare_positions(found[sc.fp_index], unseen, **on_unseen).score.n_tp
    return sc.score.n_tp, n_fp, sc.score.n_fn


def score_all(weights: Path, threshold: float, data: dict) -> dict:
    from napari_atombench.models import train_data as tr
    from napari_atombench.models.registry import get_locator

    default = get_locator("atombench", weights=weights, device="cpu", threshold=threshold)
    # weights with the v3 light-columns plane run the light-labelled modalities with it
    light = (get_locator("atombench", weights=weights, device="cpu", threshold=threshold, light_columns=True)
             if default.inner.in_channels == 2 else default)
    rows = {}
    for modality, items in data.items():
        locator = light if modality in tr.LIGHT_MODALITIES else default
        tp = fp = fn = 0
        for image, truth, px, unseen, unseen_radius_A in items:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = locator.locate(image, px).positions_rc
            n_tp, n_fp, n_fn = counts(found, truth, unseen, px, image.shape, unseen_radius_A)
            tp, fp, fn = tp + n_tp, fp + n_fp, fn + n_fn
        recall, precision = tp / max(tp + fn, 1), tp / max(tp + fp, 1)
        rows[modality] = dict(recall=recall, precision=precision, f1=2 * recall * precision / max(recall + precision, 1e-12))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", nargs="+", required=True, metavar="LABEL=PATH")
    parser.add_argument("--n", type=int, default=16, help="scenes per modality and seed range")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--labels", choices=("all", "seen"), default="all",
                        help="all: every column the contrast-weight policy counts (default, as the shipped weights "
                             "were trained); seen: only the columns that can be seen one by one")
    parser.add_argument("--thresholds", type=float, nargs="+", default=THRESHOLDS,
                        help="candidates for the threshold chosen on the selection seeds (one: no choice)")
    parser.add_argument("--write-threshold", metavar="LABEL", help="store the chosen threshold in LABEL's card (.json)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    report = {m: scenes(m, args.n, REPORT_SEED + k, args.labels) for k, m in enumerate(MODALITIES)}
    select = ({m: scenes(m, args.n, SELECT_SEED + k, args.labels) for k, m in enumerate(MODALITIES)}
              if len(args.thresholds) > 1 else {})
    unseen = sum(len(item[3]) for items in report.values() for item in items)
    print(f"labels: {args.labels}; report scenes: {unseen} unseen columns left out")
    results = {}
    for item in args.weights:
        label, path = item.split("=", 1)
        best = max(args.thresholds,
                   key=lambda t: np.mean([r["f1"] for r in score_all(Path(path), t, select).values()])
                   if select else 0.0)
        rows = score_all(Path(path), best, report)
        results[label] = {"threshold": best, "modalities": rows}
        chosen = f"best mean F1 on seeds {SELECT_SEED}+" if select else "given"
        print(f"\n{label} ({path}): threshold {best} ({chosen})")
        print(f"{'modality':<15} {'recall':>7} {'precision':>9} {'F1':>6}")
        for m, r in rows.items():
            print(f"{m:<15} {r['recall']:7.3f} {r['precision']:9.3f} {r['f1']:6.3f}")
        if args.write_threshold == label:
            card_path = Path(path).with_suffix(".json")
            card = json.loads(card_path.read_text()) if card_path.is_file() else {}
            card["threshold"] = best
            card["threshold_selection"] = (
                f"best mean F1 over thresholds {', '.join(map(str, args.thresholds))} on {args.n} simulated scenes "
                f"per modality ({', '.join(MODALITIES)}; scripts/evaluate_modalities.py, seeds {SELECT_SEED}+; "
                f"labels: {args.labels})" if select else
                f"given ({best}), not chosen by scripts/evaluate_modalities.py; validated on {args.n} simulated "
                f"scenes per modality, seeds {REPORT_SEED}+, labels: {args.labels}")
            card["modality_validation"] = {m: {k: round(v, 4) for k, v in r.items()} for m, r in rows.items()}
            card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps({k: {"threshold": v["threshold"]} for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
