"""``atombench benchmark`` and ``atombench robustness``: argument parsing and printing.

The science is in :mod:`napari_atombench.core.benchmark`; this module only
turns command-line options into calls and results into files and tables.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import UserError, device_name, integer, non_negative, output_file
from ..core.benchmark import (COLUMN_SPACING_PM, DEFAULT_KNOBS, build_series, parse_knob, resolve_locator,
                             run_benchmark, run_robustness, summarise)
from ..core.dataset import generality_note, open_dataset
from ..core.io import atomic_write_text

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
                        help="registry or adapted model name, an adapted .pt, or module:attribute of a locator (repeat for more)")
    parser.add_argument("--scheduler", default="threads",
                        help="threads, processes, sync, or a dask.distributed address (tcp://host:port)")
    parser.add_argument("--workers", type=integer(1), default=None, help="local workers (default: min(2, cores))")
    parser.add_argument("--device", type=device_name, default=None, help="device for registry models (auto, cpu, cuda)")
    parser.add_argument("--paper-compatible", action="store_true", help="score the benchmark authors' way")
    parser.add_argument("--border-margin-px", type=non_negative, default=0.0, metavar="PX",
                        help="ignore labels and predictions closer than this to the image border "
                        "(the paper's simulated labels leave out 11 px)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run_options(args) -> dict:
    from ..models.registry import get_locator

    options = {"scheduler": args.scheduler, "num_workers": args.workers, "paper_compatible": args.paper_compatible,
               "border_margin_px": args.border_margin_px, "locator_factory": get_locator}
    if args.device:
        options["model_options"] = {"device": args.device}
    return options


def _loadable_models(args) -> list[str]:
    """The ``--model`` names whose locator loads, each tried once here (not once per case:
    a missing download or a bad weights file fails the same way every time); each one
    that fails is reported in one line. Raises UserError when none loads."""
    from ..models.registry import get_locator

    options = {"device": args.device} if args.device else {}
    loadable, failures = [], []
    for model in dict.fromkeys(args.model):  # a name given twice runs once
        try:
            resolve_locator(model, locator_factory=get_locator, **options)
            loadable.append(model)
        except Exception as exc:  # noqa: BLE001 - any failure to load is this model's error
            message = " ".join(f"{type(exc).__name__}: {exc}".split())
            failures.append(f"model {model!r} cannot be loaded: {message}")
    if not loadable:
        raise UserError("; ".join(failures))
    for failure in failures:
        print(f"atombench {args.command}: error: {failure} (left out)", file=sys.stderr)
    return loadable


def _report_errors(args, errors: pd.DataFrame, n_runs: int) -> int:
    """Print each distinct run error once (with how many runs it hit); exit status 2 when every run failed."""
    if errors.empty:
        return 0
    counts = errors.groupby("error", sort=False).agg(n=("case", "size"), case=("case", "first"), model=("model", "first"))
    every = len(errors) == n_runs
    if every and len(counts) == 1:  # one line says it all
        print(f"atombench {args.command}: error: every one of the {n_runs} run(s) failed: {counts.index[0]}",
              file=sys.stderr)
        return 2
    for message, row in counts.head(10).iterrows():
        also = f" (and {row['n'] - 1} more run(s) with the same error)" if row["n"] > 1 else ""
        print(f"error: {row['case']} / {row['model']}: {message}{also}", file=sys.stderr)
    if len(counts) > 10:
        print(f"... and {len(counts) - 10} more distinct error(s); see the error column", file=sys.stderr)
    if not every:
        return 0
    print(f"atombench {args.command}: error: every one of the {n_runs} run(s) failed", file=sys.stderr)
    return 2


def add_benchmark_arguments(parser) -> None:
    parser.add_argument("dataset", help="folder with cases.csv, a wei_atom.h5 file, or 'wei_atom' (cached/downloaded)")
    add_common_run_arguments(parser)
    parser.add_argument("--out", type=output_file, required=True, help="results CSV, one row per (case, model)")
    parser.add_argument("--path", type=Path, help="local copy of wei_atom.h5 (file or folder)")
    parser.add_argument("--kind", action="append", help="only cases of this kind (repeatable)")
    parser.add_argument("--material", help="only cases whose material contains this text")
    parser.add_argument("--case", action="append", help="only these cases (repeatable)")
    parser.add_argument("--summary", type=output_file, help="also write the per-model summary CSV here")


def run_benchmark_cli(args) -> int:
    start = time.perf_counter()
    dataset = open_dataset(args.dataset, path=args.path)
    if any(c.h5_path for c in dataset):
        print(f"{dataset.name}: {generality_note(dataset)}", file=sys.stderr)
    dataset = dataset.filter(kind=args.kind, material=args.material, cases=args.case)
    models = _loadable_models(args)
    loaded = time.perf_counter()
    progress, close = _progress_bar("benchmark", not args.no_progress)
    try:
        result = run_benchmark(dataset, models, progress=progress, **_run_options(args))
    finally:
        close()
    result.to_csv(args.out)
    summary = result.aggregate()
    if args.summary:
        atomic_write_text(args.summary, summary.to_csv(index=False, lineterminator="\n"))
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.precision", 3):
        print(summary[[c for c in SUMMARY_COLUMNS if c in summary.columns]].to_string(index=False))
    print(f"{len(dataset)} cases × {len(models)} model(s) in {time.perf_counter() - start:.1f} s "
          f"(loading {loaded - start:.1f} s); results in {args.out}")
    return _report_errors(args, result.table[result.table["error"].fillna("") != ""], len(result.table))


def add_robustness_arguments(parser) -> None:
    add_common_run_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, help="output folder (CSV tables and plots)")
    parser.add_argument("--material", action="append", choices=sorted(COLUMN_SPACING_PM),
                        help="simulated material (default: srtio3 and ws2)")
    parser.add_argument("--knob", action="append",
                        help=f"knob[=start:end] (default: {', '.join(DEFAULT_KNOBS)} with the default ranges)")
    parser.add_argument("--points", type=integer(2, 1000), default=8, help="values per series (default 8)")
    parser.add_argument("--method", choices=["linear", "pchip"], default="linear", help="cutoff interpolation")
    parser.add_argument("--format", action="append", choices=["png", "svg"], help="plot formats (default png)")
    parser.add_argument("--seed", type=integer(0), default=0)


def run_robustness_cli(args) -> int:
    from ..core.plots import radar_figure, save_figure, score_vs_knob_figure

    start = time.perf_counter()
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out}: is a file; give a folder for the tables and plots")
    knobs = [parse_knob(k) for k in (args.knob or DEFAULT_KNOBS)]
    for name, span in knobs:
        if not all(np.isfinite(span)):
            raise UserError(f"--knob {name}={span[0]}:{span[1]}: give finite START:END")
    models = _loadable_models(args)
    series = build_series(args.material or sorted(COLUMN_SPACING_PM), knobs, args.points, args.seed)
    simulated = time.perf_counter()
    progress, close = _progress_bar("robustness", not args.no_progress)
    try:
        result, cutoffs = run_robustness(series, models, method=args.method, progress=progress,
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
    return _report_errors(args, table[table["error"].fillna("") != ""], len(table))


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        help="score models on a dataset (folder with cases.csv or wei_atom.h5) -> CSV",
        description="Run one or more locators over every case of a dataset and write one row per "
        "(case, model): scores, image-quality metrics, seconds and any error.",
    )
    add_benchmark_arguments(parser)
    parser.set_defaults(func=run_benchmark_cli)
    parser = subparsers.add_parser(
        "robustness",
        help="find where models fail along simulated degradation series; radar plot",
        description="Score models along simulated SrTiO3 [100] / WS2 series, find each model's "
        "cutoff per knob (first failure of recall >= 0.9, precision >= 0.95, RMSE <= 0.3 A) "
        "and draw the radar and score-vs-knob plots.",
    )
    add_robustness_arguments(parser)
    parser.set_defaults(func=run_robustness_cli)
