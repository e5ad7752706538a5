"""Speed of a whole benchmark run: one model over ../shared/data/experimental.

Goal: <= 60 s for the whole set on the 2-core development machine. Prints the
time of each stage and the ratio to the goal. Timings are noisy when other
work shares the machine.

    PYTHONPATH=. python benchmarks/bench_benchmark.py [--model atomnet-cubic] [--workers 2]

Registry models need their weights: offline, point ATOMBENCH_WEIGHTS_DIR at a
folder holding them (e.g. ../shared/weights for atomnet-cubic).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 60.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="atomnet-cubic")
    parser.add_argument("--dataset", default=str(ROOT.parent / "shared" / "data" / "experimental"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scheduler", default="threads")
    args = parser.parse_args(argv)
    os.environ.setdefault("ATOMBENCH_WEIGHTS_DIR", str(ROOT.parent / "shared" / "weights"))

    from napari_atombench.core.benchmark import resolve_locator, run_benchmark
    from napari_atombench.core.dataset import load_case, open_dataset
    from napari_atombench.core.quality import quality_metrics
    from napari_atombench.models.registry import get_locator

    stages = []
    start = time.perf_counter()
    dataset = open_dataset(args.dataset)
    stages.append(("open dataset", time.perf_counter() - start))
    t = time.perf_counter()
    try:
        locator = resolve_locator(args.model, locator_factory=get_locator, device="cpu")
    except Exception as exc:  # noqa: BLE001 - a benchmark script reports and stops
        print(f"cannot load model {args.model!r}: {exc}", file=sys.stderr)
        return 2
    stages.append(("load model", time.perf_counter() - t))
    t = time.perf_counter()
    for case in dataset:
        data = load_case(case)
        quality_metrics(data.image, case.pixel_size_A, data.truth_rc, raw=data.raw, metadata=case.extra)
    stages.append(("quality metrics (serial)", time.perf_counter() - t))
    t = time.perf_counter()
    result = run_benchmark(dataset, [locator], scheduler=args.scheduler, num_workers=args.workers, quality=True)
    run_s = time.perf_counter() - t
    stages.append((f"run: locate + score + quality ({args.scheduler}, {args.workers} workers)", run_s))
    table = result.table
    stages.append(("  sum of per-case locate+score seconds", float(table["seconds"].sum())))
    total = time.perf_counter() - start - stages[2][1]  # the serial quality pass is diagnostic only
    print(f"{len(dataset)} cases, model {locator.name}, {os.cpu_count()} cores")
    print(f"{'stage':<62} {'seconds':>8}")
    for name, seconds in stages:
        print(f"{name:<62} {seconds:8.2f}")
    print(f"{'total (open + load + run)':<62} {total:8.2f}")
    print(f"goal {GOAL_S:.0f} s -> ratio {total / GOAL_S:.2f} ({'met' if total <= GOAL_S else 'NOT met'})")
    print()
    print(table[["case", "recall", "precision", "rmse_A", "passes", "seconds", "error"]].to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
