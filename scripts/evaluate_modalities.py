"""Recall / precision of atombench weights per imaging modality on simulated scenes.

Scenes come from the v3 training sampler (:data:`napari_atombench.models.train_data.MODALITY_KINDS`
plus the v2 "haadf" kinds and a "jpeg" set of v2 scenes through JPEG at quality 25-60),
with seeds the training never uses; ABF scenes are given to the locator as recorded
(dark columns) and its ``contrast="auto"`` decides. Each scene is simulated at its own
pixel size (0.08-0.4 Å) and located with its true pixel size; scores use the 0.5 Å
matching radius and ignore the outer 3 px. The threshold is chosen on one seed range
(best mean F1 over modalities) and reported on another. No experimental image is read.

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
from napari_atombench.core.metrics import score_positions  # noqa: E402

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


def scenes(modality: str, n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """(image, truth_rc, pixel_size_A) for ``n`` scenes of ``modality``."""
    from napari_atombench.models import train_data as tr

    rng = np.random.default_rng(seed)
    kind = modality.removesuffix("_heavy")
    out = []
    while len(out) < n:
        kw = tr.random_scene_kwargs(rng, 160, 0.2, (0.08, 0.4), (60.0, 260.0))
        if kind in tr.MODALITY_KINDS:
            kw = tr.modality_scene_kwargs(kind, kw, rng)
        s = sim.simulate(**kw)
        capped = tr.resolvable_resolution_pm(s.positions_rc, s.pixel_size_A, kw["resolution_pm"], 60.0)
        if capped < kw["resolution_pm"] and modality != "thick_support":
            s = sim.simulate(**{**kw, "resolution_pm": capped})
        image, truth = s.image.astype(np.float32), s.positions_rc
        if modality.endswith("_heavy"):
            truth = tr.heavy_column_labels(s, kw)
        if modality == "nanoparticle":
            image, truth = tr._modality_image(s, modality, rng)  # ABF stays dark: the locator decides
        elif modality == "jpeg":
            image = _jpeg(image, rng)
        if len(truth) >= 2:
            out.append((image, truth, s.pixel_size_A))
    return out


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
        for image, truth, px in items:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = locator.locate(image, px).positions_rc
            sc = score_positions(found, truth, pixel_size_A=px, max_distance_A=0.5, border_margin_px=3,
                                 image_shape=image.shape)
            tp, fp, fn = tp + sc.n_tp, fp + sc.n_fp, fn + sc.n_fn
        recall, precision = tp / max(tp + fn, 1), tp / max(tp + fp, 1)
        rows[modality] = dict(recall=recall, precision=precision, f1=2 * recall * precision / max(recall + precision, 1e-12))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", nargs="+", required=True, metavar="LABEL=PATH")
    parser.add_argument("--n", type=int, default=16, help="scenes per modality and seed range")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write-threshold", metavar="LABEL", help="store the chosen threshold in LABEL's card (.json)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    select = {m: scenes(m, args.n, SELECT_SEED + k) for k, m in enumerate(MODALITIES)}
    report = {m: scenes(m, args.n, REPORT_SEED + k) for k, m in enumerate(MODALITIES)}
    results = {}
    for item in args.weights:
        label, path = item.split("=", 1)
        best = max(THRESHOLDS, key=lambda t: np.mean([r["f1"] for r in score_all(Path(path), t, select).values()]))
        rows = score_all(Path(path), best, report)
        results[label] = {"threshold": best, "modalities": rows}
        print(f"\n{label} ({path}): threshold {best} (best mean F1 on seeds {SELECT_SEED}+)")
        print(f"{'modality':<15} {'recall':>7} {'precision':>9} {'F1':>6}")
        for m, r in rows.items():
            print(f"{m:<15} {r['recall']:7.3f} {r['precision']:9.3f} {r['f1']:6.3f}")
        if args.write_threshold == label:
            card_path = Path(path).with_suffix(".json")
            card = json.loads(card_path.read_text()) if card_path.is_file() else {}
            card["threshold"] = best
            card["threshold_selection"] = (f"best mean F1 over thresholds {', '.join(map(str, THRESHOLDS))} on "
                                           f"{args.n} simulated scenes per modality ({', '.join(MODALITIES)}; "
                                           f"scripts/evaluate_modalities.py, seeds {SELECT_SEED}+)")
            card["modality_validation"] = {m: {k: round(v, 4) for k, v in r.items()} for m, r in rows.items()}
            card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps({k: {"threshold": v["threshold"]} for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
