"""Fine-tuning on one quarter of inverted-contrast simulated images: F1 on the other
three quarters and seconds, against the step budget and the image side.

Usage: ``python benchmarks/bench_finetune.py [--sides 256 512 1024] [--steps 50 100 300] [--threads 1]``
(the 1024² row with a few hundred labels in the quarter is the issue's 3-minute budget check).
"""

from __future__ import annotations

import argparse
import time

from napari_atombench.core import simulate as sim
from napari_atombench.core.metrics import score_positions
from napari_atombench.models.finetune import finetune
from napari_atombench.models.registry import get_locator


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--steps", type=int, nargs="+", default=[50, 100, 300])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    print("| side | labels in quarter | steps budget | steps kept | shipped F1 3/4 | adapted F1 3/4 | fine-tune s |")
    print("|---|---|---|---|---|---|---|")
    for side in args.sides:
        s = sim.simulate("srtio3_100", shape=(side, side), pixel_size_pm=20, resolution_pm=90, dose_e_per_A2=2e3,
                         seed=args.seed, rotation_deg=7)
        image, truth, h = -s.image, s.positions_rc, side // 2
        quarter = (truth[:, 0] < h - 0.5) & (truth[:, 1] < h - 0.5)

        def f1(pred):
            keep = ~((pred[:, 0] < h - 0.5) & (pred[:, 1] < h - 0.5))
            return score_positions(pred[keep], truth[~quarter], pixel_size_A=0.2).f1

        shipped = f1(get_locator("atombench").locate(image, 0.2).positions_rc)
        for steps in args.steps:
            t0 = time.perf_counter()
            result = finetune("atombench", image, truth[quarter], region=(0, 0, h, h), steps=steps, pixel_size_A=0.2,
                              threads=args.threads, seed=0)
            seconds = time.perf_counter() - t0
            adapted = f1(result.locator.locate(image, 0.2).positions_rc)
            print(f"| {side} | {int(quarter.sum())} | {steps} | {result.card['steps']} | {shipped:.3f} | {adapted:.3f} "
                  f"| {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
