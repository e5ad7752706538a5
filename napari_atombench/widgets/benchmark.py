"""The "Benchmark" dock: choose a dataset and models, run, browse cases, plot cutoffs.

Thin by design: datasets, quality metrics, runs, cutoffs and plots all come
from :mod:`napari_atombench.core`; this widget only wires them to Qt and to
layers. Long work (quality metrics on load, the run) happens in napari thread
workers with a progress bar and a Cancel button.

Models come from the registry when it is importable; any
:class:`~napari_atombench.models.base.AtomLocator` can be added with
:meth:`BenchmarkWidget.add_locator` (that is also how tests inject doubles).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QFileDialog, QListWidgetItem, QTableWidgetItem, QWidget

from .._napari.layers import unproxied
from ..core.benchmark import CRITERIA, build_series, parse_knob, run_benchmark, run_robustness
from ..core.dataset import Dataset, generality_note, load_case, open_dataset, series_dataset
from ..core.quality import quality_metrics
from ..models.registry import get_locator
from ._benchmark_ui import CASE_PLOTS, SOURCES, build_ui
from ._scroll import scroll_body
from ._worker import set_message, start_job

QUALITY_SHOWN = (
    ("pixel_size_pm", "pixel pm"),
    ("atoms_per_100px", "atoms/100px"),
    ("contrast", "contrast"),
    ("resolution_pm", "resol. pm"),
    ("psnr_db", "PSNR dB"),
    ("dose_e_per_A2", "dose e/Å²"),
)
PASS_COLOUR = QColor(0, 158, 115, 110)
FAIL_COLOUR = QColor(213, 94, 0, 110)
ERROR_COLOUR = QColor(128, 128, 128, 110)
COMPARE_WIDGET = ("napari-atombench", "Compare to labels")
SERIES_PLOTS = ("radar", "score vs knob")


def _format(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "pass" if value else "fail"
    if isinstance(value, (float, np.floating)):
        return f"{value:.3g}"
    return str(value)


class BenchmarkWidget(QWidget):
    """Dock widget: dataset + models -> case table with scores, overlays, radar plots."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = unproxied(napari_viewer)  # layers compared as themselves (see unproxied)
        self.dataset: Dataset | None = None
        self.series: list = []
        self.quality: dict[str, dict] = {}
        self.result = None  # BenchmarkResult of the last run
        self.series_table: pd.DataFrame | None = None
        self.cutoffs: pd.DataFrame | None = None
        self.locators: dict[str, Any] = {}
        self._job = None
        self._compare = None  # the Compare dock this dock drives
        self._build()
        self._fill_registry_models()

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        build_ui(self)
        scroll_body(self)  # beside another dock on a 1000 px tall screen

    def _on_source_changed(self, source: str) -> None:
        simulated = source == SOURCES[2]
        for widget in (self.knobs, self.material, self.points):
            widget.setEnabled(simulated)
        self.path.setEnabled(not simulated)
        self.path.setPlaceholderText({SOURCES[0]: "folder with cases.csv",
                                      SOURCES[1]: "wei_atom.h5 (empty: $ATOMBENCH_DATA_DIR or the cache)",
                                      SOURCES[2]: "not used: the series is simulated"}[source])

    def _browse(self) -> None:
        if self.source.currentText() == SOURCES[0]:
            chosen = QFileDialog.getExistingDirectory(self, "Folder dataset (with cases.csv)")
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, "wei_atom.h5", filter="HDF5 (*.h5 *.hdf5)")
        if chosen:
            self.path.setText(chosen)

    # ------------------------------------------------------------------ models

    def _fill_registry_models(self) -> None:
        try:
            from ..models.registry import list_models
        except ImportError:
            return
        try:
            rows = list_models()
        except Exception as exc:  # noqa: BLE001 - a broken registry must not break the dock
            self._warn(f"model registry unavailable: {exc}")
            return
        for row in rows:
            self._add_model_item(row["name"], checked=False, tooltip=row.get("description", ""))

    def _add_model_item(self, name: str, checked: bool, tooltip: str = "") -> None:
        for i in range(self.models.count()):
            if self.models.item(i).text() == name:
                self.models.item(i).setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
                return
        item = QListWidgetItem(name)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
        item.setToolTip(tooltip)
        self.models.addItem(item)

    def add_locator(self, locator, checked: bool = True) -> None:
        """Offer an AtomLocator object (ticked by default)."""
        self.locators[locator.name] = locator
        self._add_model_item(locator.name, checked, tooltip=type(locator).__name__)

    def selected_models(self) -> list:
        chosen = []
        for i in range(self.models.count()):
            item = self.models.item(i)
            if item.checkState() == Qt.CheckState.Checked:
                chosen.append(self.locators.get(item.text(), item.text()))
        return chosen

    # ------------------------------------------------------------------ loading

    def _make_dataset(self) -> Dataset:
        source = self.source.currentText()
        text = self.path.text().strip()
        if source == SOURCES[0]:
            if not text:
                raise ValueError("choose a folder with cases.csv")
            self.series = []
            return open_dataset(text)
        if source == SOURCES[1]:
            self.series = []
            return open_dataset(text if text else "wei_atom", download=False)
        materials = ["srtio3", "ws2"] if "+" in self.material.currentText() else [self.material.currentText()]
        knobs = [parse_knob(k.strip()) for k in self.knobs.text().split(",") if k.strip()]
        if not knobs:
            raise ValueError("give at least one knob")
        self.series = build_series(materials, knobs, self.points.value())
        cases = [case for series in self.series for case in series_dataset(series)]
        return Dataset("simulated series", cases)

    def load_dataset(self):
        """Read the chosen dataset and compute its quality metrics in a worker; returns the worker."""
        try:
            dataset = self._make_dataset()
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self._error(f"cannot load the dataset: {exc}")
            return None
        self.dataset, self.quality, self.result = dataset, {}, None
        self.series_table = self.cutoffs = None
        kinds = sorted({c.kind for c in dataset if c.kind})
        self.kind.blockSignals(True)
        self.kind.clear()
        self.kind.addItems(["all kinds", *kinds])
        self.kind.blockSignals(False)
        self._fill_table()
        note = f" ({generality_note(dataset)})" if any(c.h5_path for c in dataset) else ""
        self.status.setText(f"{dataset.name}: {len(dataset)} cases{note}; computing image-quality metrics…")

        def compute(progress, cancelled):
            out = {}
            for i, case in enumerate(dataset):
                if cancelled():
                    break
                try:
                    data = load_case(case)
                    out[case.case] = quality_metrics(data.image, case.pixel_size_A,
                                                     data.truth_rc if len(data.truth_rc) else None,
                                                     raw=data.raw, metadata=case.extra)
                except Exception as exc:  # noqa: BLE001 - one bad case must not stop the table
                    out[case.case] = {"error": f"{type(exc).__name__}: {exc}"}
                progress(i + 1, len(dataset))
            return out

        def done(quality):
            self.quality = quality
            self._fill_table()
            bad = [name for name, q in quality.items() if "error" in q]
            self.status.setText(f"{dataset.name}: {len(dataset)} cases loaded"
                                + (f"; {len(bad)} could not be read ({', '.join(bad[:3])})" if bad else ""))

        return self._start(compute, done, "image-quality metrics")

    # ------------------------------------------------------------------ running

    def run(self):
        """Run the ticked models over the loaded cases in a worker; returns the worker."""
        if self.dataset is None:
            self._warn("load a dataset first")
            return None
        models = self.selected_models()
        if not models:
            self._warn("tick at least one model")
            return None
        cases = self._visible_cases()
        series = [s for s in self.series] if self.series else None

        def compute(progress, cancelled):
            if series:
                result, cutoffs = run_robustness(series, models, progress=progress, cancelled=cancelled,
                                                 quality=False, locator_factory=get_locator)
                return "series", result, cutoffs
            return "cases", run_benchmark(cases, models, progress=progress, cancelled=cancelled, quality=False,
                                          locator_factory=get_locator), None

        def done(output):
            kind, first, cutoffs = output
            self.result = first
            if kind == "series":
                self.series_table, self.cutoffs = first.table, cutoffs
            self._fill_table()
            self.draw_plot()
            summary = self.result.aggregate()
            parts = [f"{r.model}: {int(r.n_passed) if 'n_passed' in summary else 0}/{r.n_cases} pass"
                     + (f", {r.n_errors} errors" if r.n_errors else "") for r in summary.itertuples()]
            self.status.setText("done — " + "; ".join(parts))

        self.run_button.setEnabled(False)
        return self._start(compute, done, "benchmark")

    def cancel(self) -> None:
        if self._job is not None:
            self._job.cancel()
        self.status.setText("cancelling…")

    def _start(self, compute, done, what: str):
        self.cancel_button.setEnabled(True)
        self.load_button.setEnabled(False)
        self._job = start_job(compute, desc=what, bar=self.progress, on_returned=done,
                              on_error=lambda exc: self._error(f"{what} failed: {type(exc).__name__}: {exc}"),
                              on_cancelled=lambda: self.status.setText("cancelled"), on_finished=self._on_finished)
        return self._job.worker

    def _on_finished(self) -> None:
        self.cancel_button.setEnabled(False)
        self.run_button.setEnabled(True)
        self.load_button.setEnabled(True)
        self._job = None

    # ------------------------------------------------------------------ table

    def _visible_cases(self) -> list:
        if self.dataset is None:
            return []
        kind = self.kind.currentText()
        return [c for c in self.dataset if kind == "all kinds" or c.kind == kind]

    def _model_columns(self) -> list[str]:
        if self.result is None:
            return []
        return list(dict.fromkeys(self.result.table["model"]))

    def _fill_table(self) -> None:
        cases = self._visible_cases()
        models = self._model_columns()
        headers = ["case"]
        for model in models:
            # two-line headers: a column is as wide as its numbers, not as "<model> precision"
            headers += [f"{model}\nrecall", f"{model}\nprecision", f"{model}\nRMSE Å", f"{model}\npass"]
        headers += ["kind", "material", *(label for _, label in QUALITY_SHOWN)]
        self.table.clear()
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(cases))
        scores = self.result.table.set_index(["case", "model"]) if self.result is not None else None
        for row, case in enumerate(cases):
            quality = self.quality.get(case.case, {})
            name = QTableWidgetItem(case.case)
            if "error" in quality:
                name.setToolTip(quality["error"])
                name.setBackground(ERROR_COLOUR)
            self.table.setItem(row, 0, name)
            col = 1
            for model in models:
                key = (case.case, model)
                record = scores.loc[key] if scores is not None and key in scores.index else None
                col = self._fill_scores(row, col, record)
            values = [case.kind, case.material]
            values += [quality.get(key, case.extra.get(key)) for key, _ in QUALITY_SHOWN]
            for offset, value in enumerate(values):
                self.table.setItem(row, col + offset, QTableWidgetItem(_format(value)))
        self.table.resizeColumnsToContents()

    def _fill_scores(self, row: int, col: int, record) -> int:
        if record is None:
            for offset in range(4):
                self.table.setItem(row, col + offset, QTableWidgetItem(""))
            return col + 4
        error = str(record.get("error") or "")
        for offset, (column, threshold, sense) in enumerate(CRITERIA):
            value = record.get(column)
            item = QTableWidgetItem(_format(value))
            if error:
                item.setBackground(ERROR_COLOUR)
                item.setToolTip(error)
            elif value is not None and not pd.isna(value):
                ok = value >= threshold if sense == "min" else value <= threshold
                item.setBackground(PASS_COLOUR if ok else FAIL_COLOUR)
            self.table.setItem(row, col + offset, item)
        passes = record.get("passes")
        item = QTableWidgetItem("error" if error else _format(passes))
        if error:
            item.setBackground(ERROR_COLOUR)
            item.setToolTip(error)
        elif passes is not None and not pd.isna(passes):
            item.setBackground(PASS_COLOUR if bool(passes) else FAIL_COLOUR)
        self.table.setItem(row, col + 3, item)
        return col + 4

    # ------------------------------------------------------------------ cases in the viewer

    def open_case(self, name: str) -> None:
        """Show a case's image, labels and each model's predictions; dock the compare widget."""
        from .._napari.layers import image_layer_kwargs, labels_layer_kwargs, points_size_px

        if self.dataset is None:
            return
        try:
            case = self.dataset[name]
            data = load_case(case)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self._error(f"cannot open case {name}: {exc}")
            return
        provenance = {"benchmark_case": name, "dataset": self.dataset.name}
        self._remove_other_cases(name)
        image = self._set_layer(name, "image", data.image, image_layer_kwargs(name, case.pixel_size_A, provenance))
        labels_name = f"{name} labels"
        labels = self._set_layer(labels_name, "points", data.truth_rc,
                                 labels_layer_kwargs(labels_name, data.truth_rc, pixel_size_A=case.pixel_size_A,
                                                     metadata={**provenance, "role": "labels"}))
        predictions = self.result.predictions if self.result is not None else {}
        colours = ("#00e5ff", "#ff4fd8", "#7cff4f", "#ffa64f")
        size = points_size_px(data.truth_rc)
        opened = []
        for k, model in enumerate(self._model_columns()):
            positions = predictions.get((name, model))
            if positions is None:
                continue
            layer_name = f"{name} {model}"
            opened.append(self._set_layer(layer_name, "points", positions, dict(
                name=layer_name, size=size, face_color=colours[k % len(colours)], border_color="black",
                symbol="cross", metadata={**provenance, "model": model, "role": "prediction",
                                          "pixel_size_A": case.pixel_size_A})))
        self.viewer.layers.selection.active = labels
        self._dock_compare(image, labels, opened)

    def _remove_other_cases(self, name: str) -> None:
        """One case on screen at a time: its image, labels and predictions replace the previous case's."""
        stale = [layer for layer in self.viewer.layers
                 if layer.metadata.get("benchmark_case") not in (None, name)]
        for layer in stale:
            self.viewer.layers.remove(layer)

    def _set_layer(self, name: str, kind: str, data, kwargs: dict):
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        if kind == "image":
            return self.viewer.add_image(data, **kwargs)
        return self.viewer.add_points(np.asarray(data, dtype=float).reshape(-1, 2), **kwargs)

    def _dock_compare(self, image, labels, predictions) -> None:
        """Dock Compare and point it at this case: its image (pixel size), its labels, its predictions."""
        window = getattr(self.viewer, "window", None)
        if window is None:
            return
        try:
            # tabbed with this dock: two tall docks stacked would make the window taller than the screen
            docked = window.add_plugin_dock_widget(*COMPARE_WIDGET, tabify=True)
        except Exception:  # noqa: BLE001 - the compare widget is a separate contribution
            if not getattr(self, "_compare_warned", False):
                self._compare_warned = True
                from napari.utils.notifications import show_info

                show_info("the 'Compare to labels' widget is not available: layers were opened without overlays")
            return
        compare = docked[1] if isinstance(docked, tuple) and len(docked) == 2 else None
        if hasattr(compare, "set_layers"):
            compare.set_layers(image=image, truth=labels, predictions=predictions)
            docked[0].raise_()

    # ------------------------------------------------------------------ plots and export

    def draw_plot(self) -> None:
        from ..core.plots import radar_figure, recall_precision_figure, score_vs_knob_figure
        from ._plot_labels import declutter_annotations

        series = self.cutoffs is not None and len(self.cutoffs)
        self._set_plot_kinds(SERIES_PLOTS if series else CASE_PLOTS)
        if series:
            if self.plot_kind.currentText() == "radar":
                radar_figure(self.cutoffs, figure=self.figure)
            else:
                score_vs_knob_figure(self.series_table, self.cutoffs, figure=self.figure)
        elif self.result is not None and not self.result.table.empty:
            recall_precision_figure(self.result.table, figure=self.figure)
            hidden = declutter_annotations(self.figure)
            self.canvas.setToolTip(f"{hidden} case name(s) hidden where they would overlap" if hidden else "")
        else:
            self.figure.clear()
            ax = self.figure.add_subplot()
            ax.text(0.5, 0.5, "run models to see scores here;\nradar plots come from simulated series",
                    ha="center", va="center")
            ax.set_axis_off()
        self.canvas.draw_idle()

    def _set_plot_kinds(self, kinds: tuple[str, ...]) -> None:
        """The selector names the plot shown: radar / score vs knob for series, recall vs precision for cases."""
        if tuple(self.plot_kind.itemText(i) for i in range(self.plot_kind.count())) == kinds:
            return
        current = self.plot_kind.currentText()
        self.plot_kind.blockSignals(True)
        self.plot_kind.clear()
        self.plot_kind.addItems(kinds)
        if current in kinds:
            self.plot_kind.setCurrentText(current)
        self.plot_kind.blockSignals(False)

    def export_csv(self, path) -> list[Path]:
        """Write the results (and cutoffs after a series run); returns the files written."""
        from ..core.io import atomic_write_text

        if self.result is None:
            raise ValueError("nothing to export: run a benchmark first")
        path = Path(path)
        written = [atomic_write_text(path, self.result.table.to_csv(index=False, lineterminator="\n"))]
        if self.cutoffs is not None:
            cut = path.with_name(path.stem + "_cutoffs.csv")
            written.append(atomic_write_text(cut, self.cutoffs.to_csv(index=False, lineterminator="\n")))
        return written

    def export_png(self, path) -> Path:
        path = Path(path)
        self.figure.savefig(path, dpi=110)
        return path

    def _ask_export(self, kind: str) -> None:
        filters = {"csv": "CSV (*.csv)", "png": "PNG (*.png);;SVG (*.svg)"}
        chosen, _ = QFileDialog.getSaveFileName(self, f"Export {kind.upper()}", f"benchmark.{kind}", filters[kind])
        if not chosen:
            return
        try:
            written = self.export_csv(chosen) if kind == "csv" else [self.export_png(chosen)]
            self.status.setText("written: " + ", ".join(str(p) for p in written))
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self._error(f"export failed: {exc}")

    # ------------------------------------------------------------------ notifications

    def _warn(self, message: str) -> None:
        from napari.utils.notifications import show_warning

        set_message(self.status, message)
        show_warning(message)

    def _error(self, message: str) -> None:
        from napari.utils.notifications import show_error

        set_message(self.status, message)
        show_error(message)
