"""``atombench benchmark`` and ``atombench robustness``: argument parsing and printing.

The science is in :mod:`napari_atombench.core.benchmark`; this module only
turns command-line options into calls and results into files and tables.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd

from .core.benchmark import COLUMN_SPACING_PM, DEFAULT_KNOBS, build_series, parse_knob, run_benchmark, run_robustness, summarise
from .core.dataset import generality_note, open_dataset
from .core.io import atomic_write_text

SUMMARY_COLUMNS = ["model", "n_cases", "n_errors", "n_passed", "recall_mean", "precision_mean", "rmse_A_mean", "seconds"]


def _progress_bar(total_label: str, enabled: bool):
    """A progress(done, total) callback: tqdm on a terminal, nothing otherwise."""
    if not enabled:
        return None, lambda: None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with napari/dask deps
        return (lambda done, total: print(f"\r{total_label}: {done}/{total}", end="", file=sys.stderr)), (
            lambda: print(file=sys.stderr))
    bar = tqdm(desc=total_label, unit="task", file=sys.stderr)

    def progress(done, total):
        bar.total = total
        bar.n = done
        bar.refresh()

    return progress, bar.close


def add_common_run_arguments(parser) -> None:
    parser.add_argument("--model", action="append", required=True, metavar="NAME",
                        help="registry name or module:attribute of a locator (repeat for more)")
    parser.add_argument("--scheduler", default="threads",
                        help="threads, processes, sync, or a dask.distributed address (tcp://host:port)")
    parser.add_argument("--workers", type=int, default=None, help="local workers (default: min(2, cores))")
    parser.add_argument("--device", default=None, help="device for registry models (auto, cpu, cuda)")
    parser.add_argument("--paper-compatible", action="store_true", help="score the benchmark authors' way")
    parser.add_argument("--border-margin-px", type=float, default=0.0, metavar="PX",
                        help="ignore labels and predictions closer than this to the image border "
                        "(the paper's simulated labels leave out 11 px)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run_options(args) -> dict:
    options = {"scheduler": args.scheduler, "num_workers": args.workers, "paper_compatible": args.paper_compatible,
               "border_margin_px": args.border_margin_px}
    if args.device:
        options["model_options"] = {"device": args.device}
    return options


def add_benchmark_arguments(parser) -> None:
    parser.add_argument("dataset", help="folder with cases.csv, a wei_atom.h5 file, or 'wei_atom' (cached/downloaded)")
    add_common_run_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, help="results CSV, one row per (case, model)")
    parser.add_argument("--path", type=Path, help="local copy of wei_atom.h5 (file or folder)")
    parser.add_argument("--kind", action="append", help="only cases of this kind (repeatable)")
    parser.add_argument("--material", help="only cases whose material contains this text")
    parser.add_argument("--case", action="append", help="only these cases (repeatable)")
    parser.add_argument("--summary", type=Path, help="also write the per-model summary CSV here")


def run_benchmark_cli(args) -> int:
    start = time.perf_counter()
    dataset = open_dataset(args.dataset, path=args.path)
    if any(c.h5_path for c in dataset):
        print(f"{dataset.name}: {generality_note(dataset)}", file=sys.stderr)
    dataset = dataset.filter(kind=args.kind, material=args.material, cases=args.case)
    loaded = time.perf_counter()
    progress, close = _progress_bar("benchmark", not args.no_progress)
    try:
        result = run_benchmark(dataset, args.model, progress=progress, **_run_options(args))
    finally:
        close()
    result.to_csv(args.out)
    summary = result.aggregate()
    if args.summary:
        atomic_write_text(args.summary, summary.to_csv(index=False, lineterminator="\n"))
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.precision", 3):
        print(summary[[c for c in SUMMARY_COLUMNS if c in summary.columns]].to_string(index=False))
    errors = result.table[result.table["error"].fillna("") != ""]
    for _, row in errors.head(10).iterrows():
        print(f"error: {row['case']} / {row['model']}: {row['error']}", file=sys.stderr)
    print(f"{len(dataset)} cases × {len(args.model)} model(s) in {time.perf_counter() - start:.1f} s "
          f"(loading {loaded - start:.1f} s); results in {args.out}")
    return 0


def add_robustness_arguments(parser) -> None:
    add_common_run_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, help="output folder (CSV tables and plots)")
    parser.add_argument("--material", action="append", choices=sorted(COLUMN_SPACING_PM),
                        help="simulated material (default: srtio3 and ws2)")
    parser.add_argument("--knob", action="append",
                        help=f"knob[=start:end] (default: {', '.join(DEFAULT_KNOBS)} with the default ranges)")
    parser.add_argument("--points", type=int, default=8, help="values per series (default 8)")
    parser.add_argument("--method", choices=["linear", "pchip"], default="linear", help="cutoff interpolation")
    parser.add_argument("--format", action="append", choices=["png", "svg"], help="plot formats (default png)")
    parser.add_argument("--seed", type=int, default=0)


def run_robustness_cli(args) -> int:
    from .core.plots import radar_figure, save_figure, score_vs_knob_figure

    start = time.perf_counter()
    knobs = [parse_knob(k) for k in (args.knob or DEFAULT_KNOBS)]
    series = build_series(args.material or sorted(COLUMN_SPACING_PM), knobs, args.points, args.seed)
    simulated = time.perf_counter()
    progress, close = _progress_bar("robustness", not args.no_progress)
    try:
        result, cutoffs = run_robustness(series, args.model, method=args.method, progress=progress,
                                        quality=False, **_run_options(args))
    finally:
        close()
    table = result.table
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "robustness_scores.csv", table.to_csv(index=False, lineterminator="\n"))
    atomic_write_text(args.out / "cutoffs.csv", cutoffs.to_csv(index=False, lineterminator="\n"))
    for fmt in args.format or ["png"]:
        save_figure(radar_figure(cutoffs), args.out / f"radar.{fmt}")
        save_figure(score_vs_knob_figure(table, cutoffs), args.out / f"score_vs_knob.{fmt}")
    print(cutoffs[["series", "model", "label", "criterion"]].to_string(index=False))
    print(summarise(table)[["model", "n_cases", "n_errors"]].to_string(index=False))
    print(f"{len(series)} series in {time.perf_counter() - start:.1f} s (simulation {simulated - start:.1f} s); "
          f"tables and plots in {args.out}")
    return 0
