"""Simulator speed: time per 256² image for typical recipes vs the 50 ms goal.

Run: python benchmarks/bench_simulate.py [--repeat 10]
Numbers are wall-clock medians on this machine (noisy when other work runs).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from napari_atombench.core.simulate import simulate  # noqa: E402

GOAL_MS = 50.0
RECIPES = {
    "SrTiO3 [100], 0.15 Å/px, Poisson": dict(crystal="srtio3_100", dose_e_per_A2=1e4),
    "WS2, 0.10 Å/px, PSNR 20 dB": dict(crystal="ws2", pixel_size_pm=10, psnr_db=20),
    "Si [110], 0.094 Å/px": dict(crystal="si_110", pixel_size_pm=9.4, dose_e_per_A2=3e4),
    "SrTiO3 + drift/flyback/jitter": dict(crystal="srtio3_100", dose_e_per_A2=1e4, random_drift=1.0,
                                          flyback_error=0.5, line_jitter=0.3),
    "Pt atoms on amorphous carbon": dict(crystal=None, pixel_size_pm=29, adatoms_per_nm2=0.5, amorphous=0.4,
                                         dose_e_per_A2=2e3),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    simulate(**RECIPES["SrTiO3 [100], 0.15 Å/px, Poisson"])  # warm imports
    print(f"| recipe (256²) | median ms | goal ms | ratio to goal |\n|---|---|---|---|")
    for name, kw in RECIPES.items():
        times = []
        for k in range(args.repeat):
            t0 = time.perf_counter()
            simulate(shape=(256, 256), seed=k, **kw)
            times.append(1e3 * (time.perf_counter() - t0))
        med = float(np.median(times))
        print(f"| {name} | {med:.1f} | {GOAL_MS:.0f} | {med / GOAL_MS:.2f} |")


if __name__ == "__main__":
    main()
