"""Fine-tune on one quarter of each dev image, score on the other three.

For every case of ``<shared>/data/experimental/cases.csv``: the shipped model's F1
on the whole image; then ``finetune`` on the labels of the top-left quarter
(region = that quarter) and the adapted model's F1 on the three quarters it did not
see, with the seconds the fine-tune took. Scoring: :func:`score_positions` with the
case's pixel size (0.5 Å radius). Settings are fixed (no tuning on these images);
the adapted weights are not kept.

Usage: ``python scripts/finetune_dev_images.py [--shared ../shared] [--steps 300]
[--threads 1] [--out results.json]``
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from napari_atombench.core.io import read_positions
from napari_atombench.core.metrics import score_positions
from napari_atombench.models.finetune import finetune
from napari_atombench.models.registry import get_locator


def run_case(case: dict, folder: Path, steps: int, threads: int | None, seed: int) -> dict:
    image = np.load(folder / case["image"]).astype(np.float32)
    truth = read_positions(folder / case["labels"]).positions_rc
    px = float(case["pixel_size_A"])
    h, w = image.shape[0] // 2, image.shape[1] // 2
    in_quarter = lambda p: (p[:, 0] < h - 0.5) & (p[:, 1] < w - 0.5)  # noqa: E731
    shipped = get_locator("atombench", device="cpu").locate(image, px).positions_rc
    row = {"case": case["case"], "n_labels": int(len(truth)), "n_quarter": int(in_quarter(truth).sum()),
           "shipped_f1_whole": score_positions(shipped, truth, pixel_size_A=px).f1,
           "shipped_f1_three_quarters": score_positions(shipped[~in_quarter(shipped)], truth[~in_quarter(truth)],
                                                        pixel_size_A=px).f1}
    if row["n_quarter"] < 4:
        return {**row, "note": "fewer than 4 labels in the quarter: not fine-tuned"}
    t0 = time.perf_counter()
    result = finetune("atombench", image, truth[in_quarter(truth)], region=(0, 0, h, w), steps=steps, pixel_size_A=px,
                      image_name=case["case"], device="cpu", threads=threads, seed=seed)
    seconds = time.perf_counter() - t0
    adapted = result.locator.locate(image, px).positions_rc
    return {**row, "adapted_f1_three_quarters": score_positions(adapted[~in_quarter(adapted)],
                                                                truth[~in_quarter(truth)], pixel_size_A=px).f1,
            "finetune_s": round(seconds, 1), "steps_kept": result.card["steps"], "steps_run": result.card["steps_run"],
            "stopped": result.card["stopped"], "validation_f1_before": result.card["validation_f1_before"],
            "validation_f1": result.card["validation_f1"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cases", nargs="*", help="only these cases")
    parser.add_argument("--out", type=Path, help="write the rows as JSON")
    args = parser.parse_args(argv)
    folder = args.shared / "data" / "experimental"
    if not (folder / "cases.csv").is_file():
        print(f"finetune_dev_images: no {folder / 'cases.csv'}", file=sys.stderr)
        return 2
    with open(folder / "cases.csv", newline="") as f:
        cases = [c for c in csv.DictReader(f) if not args.cases or c["case"] in args.cases]
    rows = []
    for case in cases:
        row = run_case(case, folder, args.steps, args.threads, args.seed)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out is not None:
            args.out.write_text(json.dumps(rows, indent=2) + "\n")
    print("| case | labels (quarter) | shipped F1 whole | shipped F1 3/4 | adapted F1 3/4 | fine-tune s | steps kept/run |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        adapted = f"{r['adapted_f1_three_quarters']:.3f}" if "adapted_f1_three_quarters" in r else r.get("note", "")
        extra = f"{r['finetune_s']:.0f} | {r['steps_kept']}/{r['steps_run']}" if "finetune_s" in r else "– | –"
        print(f"| {r['case']} | {r['n_labels']} ({r['n_quarter']}) | {r['shipped_f1_whole']:.3f} | "
              f"{r['shipped_f1_three_quarters']:.3f} | {adapted} | {extra} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
