"""Speed and accuracy of column refinement against the Cramér-Rao bound.

Synthetic images with exactly known positions: a square lattice (spacing
``max(16, 6 sigma)`` px, each column jittered uniformly by +-0.5 px), 2D
Gaussian columns of ``sigma`` px sampled at pixel centres, a flat background
of 10 % of the peak, and Poisson noise. Refinement starts from the true
positions displaced by 1.5 px RMS (radial), like a careless hand label.

For each image and method the table gives columns/s, the per-axis position
RMSE, and that RMSE divided by the Cramér-Rao lower bound (CRLB).

The CRLB (see :func:`napari_atombench.core.refine.cramer_rao_bound_px`):
for pixel counts ``mu_k = B + A exp(-((y_k - r)^2 + (x_k - c)^2) / (2 s^2))``
with independent Poisson noise and all of ``theta = (r, c, A, s, B)``
unknown, the Fisher information is
``I_ij = sum_k (d mu_k/d theta_i)(d mu_k/d theta_j) / mu_k`` over the fit
window, and ``var(r) >= (I^-1)_rr``. The bound is averaged over sub-pixel
offsets and reported per axis. For ``B -> 0`` it tends to
``s / sqrt(N)``, ``N = 2 pi A s^2`` the column's counts. Assumptions: an
isolated column, pure Poisson noise, an exact model, an unbiased estimator.
Columns within 8 px of a neighbour's tail are not isolated when
``sigma = 4``; the lattice spacing grows with sigma to keep that small.

atomap (optional, not a dependency) is run on the same image when it can be
imported; otherwise its published speed on this machine class, about 90
columns/s (issue #4: 1024 columns, sigma 3 px), is printed as context and
labelled as not measured here.

Usage::

    python benchmarks/bench_refine.py            # the default grid (about a minute)
    python benchmarks/bench_refine.py --quick    # 512 x 512 only
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from napari_atombench.core.refine import (  # noqa: E402
    cramer_rao_bound_px,
    refine_center_of_mass,
    refine_gaussian,
)
from napari_atombench.core.simulate import render_columns  # noqa: E402

ATOMAP_REFERENCE_COL_PER_S = 90.0  # from issue #4; NOT measured here


def make_image(size: int, sigma_px: float, peak_counts: float, seed: int = 0):
    """Poisson image of a jittered square lattice; returns (image, truth, start)."""
    rng = np.random.default_rng(seed)
    spacing = max(16.0, 6.0 * sigma_px)
    grid = np.arange(spacing / 2, size - spacing / 2 + 1e-9, spacing)
    truth = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    truth = truth + rng.uniform(-0.5, 0.5, truth.shape)
    background = 0.1 * peak_counts
    clean = render_columns((size, size), truth, peak_counts, sigma_px, background=background)
    image = rng.poisson(clean).astype(np.float32)
    start = truth + rng.normal(0.0, 1.5 / np.sqrt(2.0), truth.shape)
    return image, truth, start, background


def run_atomap(image, start):
    """atomap's 2D Gaussian refinement on the same image; None when not importable."""
    try:
        import atomap.api as am  # noqa: F401
    except Exception:
        return None
    sublattice = am.Sublattice(start[:, ::-1], image)  # atomap wants (x, y)
    sublattice.find_nearest_neighbors()
    t0 = time.perf_counter()
    sublattice.refine_atom_positions_using_2d_gaussian()
    elapsed = time.perf_counter() - t0
    found = np.asarray(sublattice.atom_positions)[:, ::-1]
    return found, elapsed


def dumbbells(gap_px: float = 5.0, sigma_px: float = 2.0, peak_counts: float = 200.0) -> None:
    """Close pairs: independent fits are pulled together, the joint fit is not."""
    rng = np.random.default_rng(1)
    grid = np.arange(20.0, 1004.0, 24.0)
    centres = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    centres = centres + rng.uniform(-0.5, 0.5, centres.shape)
    truth = np.concatenate([centres - [0, gap_px / 2], centres + [0, gap_px / 2]])
    image = rng.poisson(render_columns((1024, 1024), truth, peak_counts, sigma_px, background=0.1 * peak_counts))
    image = image.astype(np.float32)
    start = truth + rng.normal(0.0, 0.5, truth.shape)
    n = len(centres)
    print(f"\nDumbbells: {n} pairs {gap_px:g} px apart (sigma {sigma_px:g} px, peak {peak_counts:g} counts), 1024², window 15 px")
    print("| method | columns/s | mean gap px | gap bias px | RMSE px | converged |")
    print("|---|---|---|---|---|---|")
    for name, overlapping in (("gaussian, independent", False), ("gaussian, overlaps (joint)", True)):
        t0 = time.perf_counter()
        result = refine_gaussian(image, start, window_px=15, overlapping=overlapping)
        speed = len(truth) / (time.perf_counter() - t0)
        gap = result.positions_rc[n:, 1] - result.positions_rc[:n, 1]
        rmse = float(np.sqrt(np.mean((result.positions_rc - truth) ** 2)))
        print(f"| {name} | {speed:,.0f} | {gap.mean():.3f} | {gap.mean() - gap_px:+.3f} | {rmse:.4f} | {result.counts()['converged']} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the 512 x 512 cases")
    args = parser.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
    except Exception:
        pass

    cases = [(512, 3.0, 10.0), (512, 3.0, 100.0), (512, 3.0, 1000.0)]
    if not args.quick:
        cases += [(2048, 2.0, 100.0), (2048, 3.0, 100.0), (2048, 4.0, 100.0), (2048, 3.0, 20.0)]
    methods = [
        ("centre of mass", lambda im, p: refine_center_of_mass(im, p)),
        ("gaussian", lambda im, p: refine_gaussian(im, p)),
        ("gaussian, overlaps", lambda im, p: refine_gaussian(im, p, overlapping=True)),
    ]
    print(f"cores available: {os.cpu_count()}; columns/s is wall clock (noisy on a shared machine), columns/CPU-s uses this process's CPU time")
    header = "| image | sigma px | peak counts | columns | method | columns/s | columns/CPU-s | RMSE px | CRLB px | RMSE/CRLB | converged | vs atomap |"
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    atomap_missing = False
    for size, sigma, peak in cases:
        image, truth, start, background = make_image(size, sigma, peak)
        atomap_speed = None
        if size == 512:
            measured = run_atomap(image, start)
            if measured is None:
                atomap_missing = True
            else:
                found, elapsed = measured
                atomap_speed = len(truth) / elapsed
                rmse = float(np.sqrt(np.mean((found - truth) ** 2)))
                print(f"| {size}² | {sigma:g} | {peak:g} | {len(truth)} | atomap 2D Gaussian | {atomap_speed:,.0f} | | {rmse:.4f} | | | | 1.0 |")
        for name, refine in methods:
            t0, c0 = time.perf_counter(), time.process_time()
            result = refine(image, start)
            elapsed = time.perf_counter() - t0
            cpu = time.process_time() - c0
            speed = len(truth) / elapsed
            rmse = float(np.sqrt(np.mean((result.positions_rc - truth) ** 2)))
            window = result.parameters.get("window_px") or int(2 * np.ceil(result.parameters["radius_px"]) + 1)
            bound = cramer_rao_bound_px(peak, sigma, background, window_px=window)
            ratio = speed / atomap_speed if atomap_speed else speed / ATOMAP_REFERENCE_COL_PER_S
            mark = "" if atomap_speed else "*"
            print(
                f"| {size}² | {sigma:g} | {peak:g} | {len(truth)} | {name} | {speed:,.0f} | {len(truth) / cpu:,.0f} | {rmse:.4f} | "
                f"{bound:.4f} | {rmse / bound:.2f} | {result.counts()['converged']} | {ratio:,.0f}x{mark} |"
            )
    if atomap_missing:
        print(
            "\natomap not importable: not run. * = ratio to the reference figure of "
            f"{ATOMAP_REFERENCE_COL_PER_S:g} columns/s quoted in issue #4 (1024 columns, sigma 3 px), "
            "NOT measured here."
        )
    dumbbells()
    print(
        "\nGoals (issue #4): gaussian >= 10,000 columns/s on 2048² with ~16,000 columns; "
        "RMSE <= 1.2 x CRLB at moderate dose (peak 100 counts)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
