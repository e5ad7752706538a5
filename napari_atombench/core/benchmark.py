"""Run locators over benchmark cases; find where each model breaks along degradation series.

**Runs.** :func:`run_benchmark` scores every (case, model) pair: one
``dask.delayed`` task per pair, computed with the local ``threads``,
``processes`` or ``sync`` scheduler, or on a ``dask.distributed`` cluster when
given its address. A case whose locator raises is recorded with its error and
the run goes on. The result table has one row per (case, model): ``case``,
``model``, the :class:`~napari_atombench.core.metrics.Score` fields, the
quality metrics of :mod:`~napari_atombench.core.quality`, ``seconds`` and
``error``.

**Models** are :class:`~napari_atombench.models.base.AtomLocator` objects, or
names resolved lazily (in the worker) by :func:`resolve_locator`: a name given
to the caller's ``locator_factory`` (the CLI and the widgets pass
``napari_atombench.models.registry.get_locator``; this module never imports the
models) or ``module:attribute`` naming a locator or a factory that returns one.

**Robustness.** :func:`run_robustness` runs the models along
:class:`DegradationSeries` and finds their cutoffs; the series and the cutoff
rules live in :mod:`.robustness` (names re-exported here).

This module imports neither Qt nor napari.
"""

from __future__ import annotations

import importlib
import os
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from .._types import Cancelled, ProgressCallback
from .dataset import Case, Dataset, load_case, series_dataset
from .io import atomic_write_text
from .metrics import Score, ScoringOptions, aggregate_scores, score_positions
from .quality import QUALITY_COLUMNS, quality_metrics
from .robustness import (
    COLUMN_SPACING_PM,
    CRITERIA,
    DEFAULT_KNOBS,
    Cutoff,
    DegradationSeries,
    build_series,
    cutoffs_table,
    find_cutoff,
    parse_knob,
    simulated_series,
)

__all__ = [
    "COLUMN_SPACING_PM",
    "CRITERIA",
    "DEFAULT_KNOBS",
    "RESULT_COLUMNS",
    "SCORE_COLUMNS",
    "BenchmarkResult",
    "Cutoff",
    "DegradationSeries",
    "build_series",
    "cutoffs_table",
    "find_cutoff",
    "parse_knob",
    "resolve_locator",
    "run_benchmark",
    "run_robustness",
    "simulated_series",
]

#: Score columns of a result table, in the order of the Score dataclass.
SCORE_COLUMNS = tuple(Score.__dataclass_fields__)
#: Every column of a result table, in order.
RESULT_COLUMNS = ("case", "model", *SCORE_COLUMNS, *QUALITY_COLUMNS, "seconds", "error")

# ----------------------------------------------------------------------------- models

_LOCATOR_CACHE: dict[str, Any] = {}


#: ``factory(name, **options) -> AtomLocator`` (e.g. ``models.registry.get_locator``)
LocatorFactory = Callable[..., Any]


def resolve_locator(model, *, locator_factory: LocatorFactory | None = None, **options):
    """An AtomLocator from an object, a ``module:attribute`` path or a model name.

    Parameters
    ----------
    model : AtomLocator, str
        A locator, ``"module:attribute"`` (a locator or a factory returning one),
        or a name passed to ``locator_factory``.
    locator_factory : callable(name, **options), optional
        Builds a locator from a name (``napari_atombench.models.registry.get_locator``);
        needed only when ``model`` is a plain name.
    **options
        Passed to the factory.

    Names are resolved once per process and cached.
    """
    if not isinstance(model, str):
        if not hasattr(model, "locate"):
            raise TypeError(f"{model!r} is not an AtomLocator (it has no locate method)")
        return model
    key = model + repr(sorted(options.items())) + repr(locator_factory)
    if key in _LOCATOR_CACHE:
        return _LOCATOR_CACHE[key]
    if ":" in model:
        module_name, _, attribute = model.partition(":")
        try:
            target = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot import model {model!r}: {exc}") from None
        locator = target if hasattr(target, "locate") else target(**options)
    else:
        if locator_factory is None:
            raise ValueError(
                f"model {model!r} is a name but no locator_factory was given to build it: pass "
                "locator_factory=napari_atombench.models.registry.get_locator, an AtomLocator object "
                "or 'module:attribute'"
            )
        locator = locator_factory(model, **options)
    if not hasattr(locator, "locate"):
        raise TypeError(f"model {model!r} resolved to {locator!r}, which has no locate method")
    _LOCATOR_CACHE[key] = locator
    return locator


def model_name(model) -> str:
    """The name a model gets in result tables."""
    if isinstance(model, str):
        return model.rpartition(":")[2] if ":" in model else model
    return str(getattr(model, "name", type(model).__name__))


# ----------------------------------------------------------------------------- tasks


def _empty_score_fields() -> dict:
    return {name: None for name in SCORE_COLUMNS}


def _case_quality(case: Case) -> dict:
    """Quality metrics of one case; never raises (an error becomes all-None)."""
    try:
        data = load_case(case)
        return quality_metrics(data.image, case.pixel_size_A, data.truth_rc if len(data.truth_rc) else None,
                               raw=data.raw, metadata=case.extra)
    except Exception:  # noqa: BLE001 - recorded through the locate task's error instead
        return {name: None for name in QUALITY_COLUMNS}


def _locate_task(case: Case, model, options: dict, scoring: ScoringOptions, cancelled=None,
                 torch_threads: int | None = None, locator_factory: LocatorFactory | None = None) -> dict:
    """Run one model on one case; errors are returned, never raised.

    ``torch_threads`` is set in worker processes (each would otherwise use every core).
    """
    if torch_threads is not None and "torch" in __import__("sys").modules:
        __import__("sys").modules["torch"].set_num_threads(torch_threads)
    row = {"case": case.case, "model": model_name(model), **_empty_score_fields(), "seconds": None, "error": ""}
    positions = None
    start = time.perf_counter()
    try:
        data = load_case(case)
        locator = resolve_locator(model, locator_factory=locator_factory, **options)
        row["model"] = model_name(locator) if not isinstance(model, str) else row["model"]
        result = locator.locate(data.image, case.pixel_size_A, cancelled=cancelled)
        row["seconds"] = time.perf_counter() - start
        positions = np.asarray(result.positions_rc, dtype=float).reshape(-1, 2)
        score = score_positions(positions, data.truth_rc, scoring, pixel_size_A=case.pixel_size_A,
                                image_shape=data.image.shape)
        row.update(score.as_dict())
    except Exception as exc:  # noqa: BLE001 - a failing case must not stop the run
        if isinstance(exc, Cancelled):
            raise
        row["seconds"] = time.perf_counter() - start
        last = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f" ({os.path.basename(last.filename)}:{last.lineno})" if last else ""
        row["error"] = f"{type(exc).__name__}: {exc}{where}"
    return {"row": row, "positions_rc": positions}


@dataclass
class BenchmarkResult:
    """The outcome of :func:`run_benchmark`.

    Attributes
    ----------
    table : DataFrame
        One row per (case, model), columns :data:`RESULT_COLUMNS` plus the
        case-table columns ``kind``, ``material`` and any dataset extras.
    predictions : dict of (case, model) -> ndarray (N, 2) or None
        Predicted positions (row, col), for overlays.
    """

    table: pd.DataFrame
    predictions: dict[tuple[str, str], np.ndarray | None] = field(default_factory=dict)

    def aggregate(self) -> pd.DataFrame:
        """Per model: mean/median scores, pass counts, number of errors, total seconds."""
        return summarise(self.table)

    def to_csv(self, path) -> None:
        atomic_write_text(path, self.table.to_csv(index=False, lineterminator="\n"))


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Aggregate rows per model (from :func:`~napari_atombench.core.metrics.aggregate_scores`)."""
    if table.empty:
        return pd.DataFrame(columns=["model", "n_images", "n_passed", "n_errors"])
    ok = table[table["error"].fillna("") == ""]
    result = aggregate_scores(ok, by="model") if not ok.empty else pd.DataFrame({"model": []})
    counts = table.groupby("model", sort=False).agg(
        n_cases=("case", "size"), n_errors=("error", lambda e: int((e.fillna("") != "").sum())),
        seconds=("seconds", "sum"))
    merged = counts.reset_index().merge(result, on="model", how="left")
    for column in ("n_images", "n_passed"):
        if column in merged:
            merged[column] = merged[column].fillna(0).astype(int)
    return merged


def _configure_torch_threads(num_workers: int) -> Callable[[], None]:
    """Share the cores among threaded workers: torch gets cpu_count // workers threads each."""
    torch = __import__("sys").modules.get("torch")
    if torch is None or num_workers <= 1:
        return lambda: None
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // num_workers))
    return lambda: torch.set_num_threads(before)


# over 80 lines only by its numpydoc docstring (the code is under 80)
def run_benchmark(
    dataset: Dataset | Sequence[Case],
    models: Sequence[Any],
    *,
    scheduler: str = "threads",
    num_workers: int | None = None,
    progress: ProgressCallback | None = None,
    cancelled: Callable[[], bool] | None = None,
    quality: bool = True,
    model_options: dict | None = None,
    max_distance_A: float | None = 0.5,
    paper_compatible: bool = False,
    border_margin_px: float = 0.0,
    locator_factory: LocatorFactory | None = None,
) -> BenchmarkResult:
    """Score every model on every case.

    Parameters
    ----------
    dataset : Dataset or sequence of Case
    models : sequence of AtomLocator, registry names or ``module:attribute``
    scheduler : {"threads", "processes", "sync"} or a ``dask.distributed`` address
        An address (``tcp://host:port``) needs the optional ``distributed``
        package and runs the tasks on that cluster.
    num_workers : int, optional
        Local workers (default: min(2, cores)).
    progress : callable(done, total), optional
        Called after each finished task (quality and locate tasks both count).
    cancelled : callable() -> bool, optional
        Checked before each task starts; when true the run stops and raises
        :class:`~napari_atombench._types.Cancelled`.
    quality : bool
        Compute the quality metrics (once per case).
    model_options : dict, optional
        Passed to ``locator_factory`` when models are names (e.g. ``device``).
    max_distance_A, paper_compatible, border_margin_px
        Scoring options (see :func:`~napari_atombench.core.metrics.score_positions`);
        ``border_margin_px`` ignores labels and predictions that close to the border
        (the paper left columns within 11 px of the edge out of its simulated labels).
    locator_factory : callable(name, **options), optional
        Builds locators for models given by name (see :func:`resolve_locator`).

    Returns
    -------
    BenchmarkResult
    """
    import dask

    cases = list(dataset)
    if not models:
        raise ValueError("no models to benchmark: give at least one")
    if not cases:
        raise ValueError("the dataset has no cases (check the filters)")
    options = dict(model_options or {})
    scoring = ScoringOptions(max_distance_A=max_distance_A, paper_compatible=paper_compatible,
                             border_margin_px=float(border_margin_px))
    local = scheduler in ("threads", "processes", "sync", "synchronous", "single-threaded")
    can_cancel_inside = scheduler in ("threads", "sync", "synchronous", "single-threaded")
    inner_cancel = cancelled if can_cancel_inside else None

    workers = num_workers or max(1, min(2, os.cpu_count() or 1))
    per_process_threads = max(1, (os.cpu_count() or 1) // workers) if scheduler == "processes" else None
    tasks = []
    for case in cases:
        for model in models:
            tasks.append(dask.delayed(_locate_task, pure=False)(case, model, options, scoring, inner_cancel,
                                                                per_process_threads, locator_factory))
    quality_tasks = [dask.delayed(_case_quality, pure=False)(case) for case in cases] if quality else []
    everything = tasks + quality_tasks

    if local:
        outputs = _compute_local(everything, scheduler, workers, progress, cancelled)
    else:
        outputs = _compute_distributed(everything, scheduler, progress, cancelled)
    located, qualities = outputs[: len(tasks)], outputs[len(tasks):]

    quality_by_case = {case.case: q for case, q in zip(cases, qualities)} if quality else {}
    case_rows = {case.case: case.row() for case in cases}
    rows, predictions = [], {}
    for item in located:
        row = dict(item["row"])
        row.update(quality_by_case.get(row["case"], {name: None for name in QUALITY_COLUMNS}))
        rows.append(row)
        predictions[(row["case"], row["model"])] = item["positions_rc"]
    table = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    extras = pd.DataFrame([case_rows[c] for c in table["case"]]).drop(columns=["case", "pixel_size_A"], errors="ignore")
    # metadata that shares a name with a computed column (e.g. the published set's own
    # contrast or resolution) is kept beside it as meta_<name>
    extras = extras.rename(columns={c: f"meta_{c}" for c in extras.columns if c in table.columns})
    table = pd.concat([table, extras.reset_index(drop=True)], axis=1)
    return BenchmarkResult(table, predictions)


def _compute_local(tasks, scheduler, workers, progress, cancelled):
    import dask
    from dask.callbacks import Callback

    keys = {task.key for task in tasks}
    total = len(tasks)
    done = [0]

    class _Progress(Callback):
        def _pretask(self, key, dsk, state):
            if cancelled is not None and cancelled():
                raise Cancelled("benchmark cancelled")

        def _posttask(self, key, result, dsk, state, worker_id):
            if key in keys:
                done[0] += 1
                if progress is not None:
                    progress(done[0], total)

    restore = _configure_torch_threads(workers if scheduler == "threads" else 1)
    try:
        kwargs = {"scheduler": scheduler}
        if scheduler in ("threads", "processes"):
            kwargs["num_workers"] = workers
        with _Progress():
            return list(dask.compute(*tasks, **kwargs))
    finally:
        restore()


def _compute_distributed(tasks, address, progress, cancelled):
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ValueError(
            f"--scheduler {address!r} needs the 'distributed' package (pip install distributed); "
            "without it use 'threads', 'processes' or 'sync'"
        ) from None
    with Client(address) as client:
        futures = client.compute(tasks)
        index = {f.key: i for i, f in enumerate(futures)}
        outputs: list[Any] = [None] * len(futures)
        for done, future in enumerate(as_completed(futures), start=1):
            if cancelled is not None and cancelled():
                client.cancel(futures)
                raise Cancelled("benchmark cancelled")
            outputs[index[future.key]] = future.result()
            if progress is not None:
                progress(done, len(futures))
        return outputs


# ----------------------------------------------------------------------------- robustness


def run_robustness(
    series_list: Iterable[DegradationSeries],
    models: Sequence[Any],
    *,
    method: str = "linear",
    progress: ProgressCallback | None = None,
    cancelled: Callable[[], bool] | None = None,
    **run_options,
) -> tuple[BenchmarkResult, pd.DataFrame]:
    """Score models along series and find their cutoffs.

    Returns
    -------
    result : BenchmarkResult
        ``result.table`` has one row per (series, value, model): the result
        columns plus ``series``, ``knob``, ``value``, ``order``; predictions
        are kept for overlays.
    cutoffs : DataFrame
        From :func:`cutoffs_table`.
    """
    series_list = list(series_list)
    cases, order = [], {}
    for series in series_list:
        for i, case in enumerate(series_dataset(series)):
            order[case.case] = i
            cases.append(case)
    result = run_benchmark(cases, models, progress=progress, cancelled=cancelled, **run_options)
    result.table["order"] = result.table["case"].map(order)
    return result, cutoffs_table(result.table, method)
