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

**Robustness.** A :class:`DegradationSeries` is data: a knob name, its values
in the order of worsening quality, and one (image, truth_rc, pixel_size_A) per
value. :func:`find_cutoff` finds where a model first fails the pass criteria
along it (recall < 0.90, precision < 0.95, RMSE > 0.3 Å), interpolated
linearly (default) or with a PCHIP fit of each criterion's margin; ``None``
with status ``"none in range"`` when it never fails. :func:`simulated_series`
is the one place that asks the simulator for series.

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
from .metrics import PASS_CRITERIA, Score, ScoringOptions, aggregate_scores, score_positions
from .quality import QUALITY_COLUMNS, quality_metrics

__all__ = [
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
#: Pass criteria as (column, threshold, "min" | "max").
CRITERIA = (
    ("recall", PASS_CRITERIA["min_recall"], "min"),
    ("precision", PASS_CRITERIA["min_precision"], "min"),
    ("rmse_A", PASS_CRITERIA["max_rmse_A"], "max"),
)


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


@dataclass
class DegradationSeries:
    """Images along one quality knob, best quality first.

    Attributes
    ----------
    name : str
        e.g. ``"srtio3_resolution_pm"``.
    knob : str
        e.g. ``"resolution_pm"``.
    values : sequence of float
        Knob values, in the order of worsening quality.
    images : list of (image, truth_rc, pixel_size_A)
    material : str
    """

    name: str
    knob: str
    values: Sequence[float]
    images: list[tuple[np.ndarray, np.ndarray, float | None]]
    material: str = ""

    def __post_init__(self):
        if len(self.values) != len(self.images):
            raise ValueError(f"series {self.name}: {len(self.values)} values for {len(self.images)} images")


@dataclass
class Cutoff:
    """Where a model first fails along a series.

    Attributes
    ----------
    value : float or None
        The interpolated knob value; None when it never fails.
    status : {"crossed", "none in range", "fails at start"}
    criterion : str or None
        The criterion that failed first (``recall``, ``precision``, ``rmse_A``).
    """

    value: float | None
    status: str
    criterion: str | None = None

    @property
    def label(self) -> str:
        if self.value is None:
            return self.status
        text = f"{self.value:.3g}"
        return text + (" (fails at start)" if self.status == "fails at start" else "")


def _margins(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per criterion, how far each point is inside (+) or outside (−) the pass region."""
    error = table["error"].fillna("").astype(str).to_numpy() != "" if "error" in table else np.zeros(len(table), bool)
    margins = {}
    for column, threshold, sense in CRITERIA:
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
        margin = values - threshold if sense == "min" else threshold - values
        if sense == "min":
            margin[error] = -1.0  # a locator that raised found nothing: recall and precision fail
        margins[column] = margin
    return margins


def _first_crossing(values: np.ndarray, margin: np.ndarray, method: str) -> tuple[float | None, str]:
    keep = np.isfinite(margin)
    values, margin = values[keep], margin[keep]
    if not len(values):
        return None, "none in range"
    if margin[0] < 0:
        return float(values[0]), "fails at start"
    failing = np.flatnonzero(margin < 0)
    if not len(failing):
        return None, "none in range"
    i = int(failing[0])
    v0, v1, m0, m1 = values[i - 1], values[i], margin[i - 1], margin[i]
    linear = float(v0 + (v1 - v0) * m0 / (m0 - m1))
    if method == "linear" or len(values) < 3:
        return linear, "crossed"
    if method != "pchip":
        raise ValueError(f"unknown cutoff method {method!r}; use 'linear' or 'pchip'")
    from scipy.interpolate import PchipInterpolator
    from scipy.optimize import brentq

    order = np.argsort(values)
    x, y = values[order], margin[order]
    if np.any(np.diff(x) == 0):
        return linear, "crossed"
    curve = PchipInterpolator(x, y)
    low, high = sorted((v0, v1))
    if curve(low) * curve(high) > 0:
        return linear, "crossed"
    return float(brentq(curve, low, high)), "crossed"


def find_cutoff(values: Sequence[float], scores: pd.DataFrame | dict, method: str = "linear") -> Cutoff:
    """The knob value where the pass criteria first fail along a series.

    Parameters
    ----------
    values : sequence of float
        Knob values in the order of worsening quality (increasing or decreasing).
    scores : DataFrame or dict of column -> sequence
        ``recall``, ``precision``, ``rmse_A`` (and optionally ``error``) per value.
    method : {"linear", "pchip"}
        Linear interpolation between the last passing and the first failing
        point, or the root of a PCHIP fit of the criterion's margin there.

    Returns
    -------
    Cutoff
        The earliest crossing over the three criteria. Failing at the first
        value gives that value with status ``"fails at start"``; never failing
        gives ``Cutoff(None, "none in range")``. An RMSE of None (no match) is
        skipped for the RMSE criterion: recall decides there. A row with an
        error counts as failing recall and precision.
    """
    table = pd.DataFrame(scores)
    values = np.asarray(values, dtype=float)
    if len(values) != len(table):
        raise ValueError(f"{len(values)} knob values for {len(table)} score rows")
    if len(values) > 1:
        steps = np.diff(values)
        if not (np.all(steps > 0) or np.all(steps < 0)):
            raise ValueError("knob values must be strictly monotonic along a series")
    span = values[-1] - values[0] if len(values) > 1 else 1.0
    best: tuple[float, float, str, str] | None = None
    for criterion, margin in _margins(table).items():
        value, status = _first_crossing(values, margin, method)
        if value is None:
            continue
        along = (value - values[0]) / span  # 0 at the start, 1 at the end, whatever the direction
        if best is None or along < best[0]:
            best = (along, value, status, criterion)
    if best is None:
        return Cutoff(None, "none in range")
    return Cutoff(best[1], best[2], best[3])


def cutoffs_table(series_table: pd.DataFrame, method: str = "linear") -> pd.DataFrame:
    """One row per (series, model): ``cutoff`` (None when none in range), ``status``, ``criterion``.

    A pixel-size cutoff is also given on the paper's radar axis, ``atoms_per_100px`` =
    100 × cutoff / projected column spacing (:data:`COLUMN_SPACING_PM`).
    """
    rows = []
    for (series, model), group in series_table.groupby(["series", "model"], sort=False):
        group = group.sort_values("order")
        cutoff = find_cutoff(group["value"].to_numpy(), group, method)
        material, knob = group["material"].iloc[0], group["knob"].iloc[0]
        spacing_pm = COLUMN_SPACING_PM.get(str(material).lower())
        atoms = (100.0 * cutoff.value / spacing_pm
                 if knob == "pixel_size_pm" and spacing_pm and cutoff.value is not None else None)
        rows.append({
            "series": series, "material": material, "knob": knob,
            "model": model, "cutoff": cutoff.value, "status": cutoff.status, "criterion": cutoff.criterion,
            "label": cutoff.label, "range_start": group["value"].iloc[0], "range_end": group["value"].iloc[-1],
            "atoms_per_100px": atoms,
        })
    return pd.DataFrame(rows)


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


# ----------------------------------------------------------------------------- simulated series

#: Default degradation ranges (best first) of the simulated radar axes.
DEFAULT_KNOBS: dict[str, tuple[float, float]] = {
    "pixel_size_pm": (8.0, 40.0),
    "contrast": (1.0, 0.05),
    "psnr_db": (30.0, 0.0),
    "resolution_pm": (80.0, 300.0),
    "random_drift": (0.0, 0.5),
    "flyback_error": (0.0, 5.0),
}
#: Nearest projected column spacing (pm) of the simulated crystals, to turn a pixel-size
#: cutoff into atoms / 100 px: SrTiO3 [100] a/2 (Sr to O), WS2 a/sqrt(3) (W to S2).
COLUMN_SPACING_PM = {"srtio3": 195.25, "ws2": 183.6}


def simulated_series(material: str, knob: str, values: Sequence[float], *, base: dict | None = None,
                     seed: int = 0) -> DegradationSeries:
    """A degradation series from the simulator.

    Uses ``core.simulate.degradation_series(base, knob, values)`` when the
    simulator has it; otherwise the basic :func:`~napari_atombench.core.simulate.simulate_crystal`
    covers ``pixel_size_pm``, ``resolution_pm`` and ``peak_counts`` only.

    Parameters
    ----------
    material : {"srtio3", "ws2"}
    knob : str
    values : sequence of float, best quality first
    base : dict, optional
        Base simulation parameters.
    """
    from . import simulate

    crystals = {"srtio3": simulate.SRTIO3_100, "ws2": simulate.WS2_MONOLAYER}
    key = material.lower()
    if key not in crystals:
        raise ValueError(f"unknown material {material!r}; use one of {', '.join(crystals)}")
    base = {"crystal": crystals[key], "seed": seed, **(base or {})}
    if hasattr(simulate, "degradation_series"):
        images = simulate.degradation_series(base, knob, list(values))
    else:
        fallback = {"pixel_size_pm": ("pixel_size_A", 0.01), "resolution_pm": ("resolution_A", 0.01),
                    "peak_counts": ("peak_counts", 1.0)}
        if knob not in fallback:
            raise ValueError(f"this simulator has no knob {knob!r} (available: {', '.join(fallback)})")
        name, factor = fallback[knob]
        kwargs = {k: v for k, v in base.items() if k != "crystal"}
        images = [simulate.simulate_crystal(base["crystal"], **{**kwargs, name: float(v) * factor}) for v in values]
    return DegradationSeries(
        name=f"{key}_{knob}", knob=knob, values=[float(v) for v in values],
        images=[(s.image, s.positions_rc, s.pixel_size_A) for s in images], material=key,
    )


def parse_knob(text: str) -> tuple[str, tuple[float, float]]:
    """``"name"`` (default range) or ``"name=start:end"`` -> (name, (start, end))."""
    name, _, span = text.partition("=")
    if span:
        try:
            start, end = (float(v) for v in span.split(":"))
        except ValueError:
            raise ValueError(f"knob {text!r}: write NAME=START:END, e.g. resolution_pm=80:300") from None
        return name, (start, end)
    if name not in DEFAULT_KNOBS:
        raise ValueError(f"knob {name!r} has no default range; give NAME=START:END")
    return name, DEFAULT_KNOBS[name]


def build_series(materials: Sequence[str], knobs, points: int, seed: int = 0) -> list[DegradationSeries]:
    """One simulated series per (material, (knob, (start, end))), ``points`` values each."""
    if points < 2:
        raise ValueError("points must be at least 2")
    series = []
    for material in materials:
        for knob, (start, end) in knobs:
            series.append(simulated_series(material, knob, np.linspace(start, end, points), seed=seed))
    return series
