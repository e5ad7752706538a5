"""Compare to labels: TP/FP/FN overlays and a live metric table.

The widget reads a ground-truth Points layer and one or more prediction Points
layers, scores each prediction with :func:`napari_atombench.core.metrics.compare_positions`
and writes three overlay Points layers per prediction, named
``<prediction layer> TP``, ``<prediction layer> FP`` and ``<prediction layer> FN``
(per prediction rather than per image, so that several predictions of one image
stay apart). Editing any watched layer (add, move, delete a point) re-scores
after a short debounce; :meth:`CompareWidget.update_now` is the whole update.
"""

from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from qtpy.QtCore import QEvent, Qt, QTimer
from qtpy.QtGui import QBrush, QColor
from qtpy.QtWidgets import QFileDialog, QListWidgetItem, QTableWidgetItem, QWidget

from .._napari.layers import (
    OVERLAY_KEY,
    layer_display_name,
    layer_pixel_size_A,
    layer_role,
    points_size_px,
    set_layer_pixel_size_A,
    unproxied,
)
from ..core.io import atomic_write_text, resolve_pixel_size
from ..core.metrics import Comparison, Score, scores_table
from ._compare_inspector import FailureInspector
from ._compare_state import (  # noqa: F401 - KINDS, PALETTES, COLUMNS: this dock's public names
    COLUMNS,
    KEY_COLUMNS,
    KINDS,
    NONE,
    PALETTES,
    ComparisonCache,
)
from ._compare_state import layer_positions as _positions
from ._compare_ui import build_ui
from ._scroll import scroll_body
from ._worker import set_message

if TYPE_CHECKING:
    import napari

#: short: pre-edit events are ignored, so a drag costs one update after the release
DEBOUNCE_MS = 20
#: Points data events sent BEFORE the data changes (and repeatedly during a drag)
_PRE_EDIT = ("adding", "removing", "changing")
_COMPLETED_EDIT = ("added", "removed", "changed")


def _points_layers(viewer) -> list:
    return [layer for layer in viewer.layers if layer_role(layer) in ("labels", "prediction", "points")]


class CompareWidget(FailureInspector, QWidget):
    """Dock widget "Compare to labels"."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = unproxied(napari_viewer)  # layers compared as themselves (see unproxied)
        self.table = pd.DataFrame()  # the metric table as last computed (exported as CSV)
        self.results: dict[str, Comparison] = {}  # by prediction layer name
        self.cache = ComparisonCache()  # an edit re-scores only the layer it changed
        self._overlays: dict[int, dict[str, object]] = {}  # id(prediction layer) -> kind -> layer
        self._watched: list = []  # layers whose events we listen to
        self._truth_choices: list = []
        self._image_choices: list = []
        self._pred_checked: dict[int, bool] = {}
        self._cases: list[tuple[str, int, np.ndarray]] = []  # inspector entries (kind, index, rc)
        self._last_error = ""
        self._updating = False
        self._last_update_end = 0.0
        #: a single finished edit is scored at once (False: every edit waits for the debounce timer)
        self.score_edits_at_once = True
        # Points layers of unknown role present when the dock opens are compared; later
        # ones only when ticked (a scratch layer must not join the table)
        self._initial_points = {id(layer) for layer in _points_layers(self.viewer)}

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.update_now)
        self._build_ui()

        self.viewer.layers.events.inserted.connect(self._on_layers_changed)
        self.viewer.layers.events.removed.connect(self._on_layers_changed)
        self._refresh_layer_choices()
        self.update_now()

    # ---------------------------------------------------------------- UI
    def _build_ui(self) -> None:
        build_ui(self)
        # beside the Run dock on a 1000 px tall screen: everything down to the metric table stays in view
        scroll_body(self, keep_top=self.layout().indexOf(self.table_widget) + 1)

    # ---------------------------------------------------------- choices
    @property
    def image_layer(self):
        index = self.image_combo.currentIndex() - 1  # item 0 is "(none)"
        return self._image_choices[index] if 0 <= index < len(self._image_choices) else None

    @property
    def truth_layer(self):
        index = self.truth_combo.currentIndex()
        return self._truth_choices[index] if 0 <= index < len(self._truth_choices) else None

    @property
    def prediction_layers(self) -> list:
        truth = self.truth_layer
        return [
            layer
            for layer in _points_layers(self.viewer)
            if layer is not truth and self._pred_checked.get(id(layer), self._auto_checked(layer))
        ]

    def set_layers(self, *, image=None, truth=None, predictions=()) -> None:
        """Compare ``predictions`` (only these) to ``truth`` on ``image`` (e.g. a benchmark case)."""
        self._refresh_layer_choices()
        for combo, choices, layer, offset in ((self.image_combo, self._image_choices, image, 1),
                                              (self.truth_combo, self._truth_choices, truth, 0)):
            if layer is not None and layer in choices:
                combo.blockSignals(True)
                combo.setCurrentIndex(choices.index(layer) + offset)
                combo.blockSignals(False)
        self.set_predictions(predictions)
        self.update_now()

    def _auto_checked(self, layer) -> bool:
        role = layer_role(layer)
        return role == "prediction" or (role == "points" and id(layer) in self._initial_points)

    def set_predictions(self, layers) -> None:
        """Compare exactly these prediction layers (for scripts and tests)."""
        layers = list(layers)
        wanted = {id(layer) for layer in layers} | {layer.name for layer in layers}  # names are unique
        for layer in _points_layers(self.viewer):
            self._pred_checked[id(layer)] = id(layer) in wanted or layer.name in wanted
        self._refresh_layer_choices()

    def _default_truth(self, points: list):
        labels = [layer for layer in points if layer_role(layer) == "labels"]
        return (labels or points or [None])[0]

    def _refresh_layer_choices(self) -> None:
        """Rebuild the combos and the prediction list from the viewer, keeping choices."""
        image_before, truth_before = self.image_layer, self.truth_layer
        points = _points_layers(self.viewer)
        images = [layer for layer in self.viewer.layers if layer._type_string == "image"]
        truth = truth_before if truth_before in points else self._default_truth(points)
        image = image_before if image_before in images else None
        if image is None and images:
            matching = [im for im in images if truth is not None and truth.name.startswith(im.name)]
            image = (matching or images)[0]

        for combo in (self.image_combo, self.truth_combo, self.pred_list):
            combo.blockSignals(True)
        self._image_choices, self._truth_choices = images, points
        self.image_combo.clear()
        self.image_combo.addItems([NONE] + [layer.name for layer in images])
        self.image_combo.setCurrentIndex(images.index(image) + 1 if image is not None else 0)
        self.truth_combo.clear()
        self.truth_combo.addItems([layer.name for layer in points])
        self.truth_combo.setCurrentIndex(points.index(truth) if truth is not None else -1)
        self.pred_list.clear()
        for layer in points:
            if layer is truth:
                continue
            item = QListWidgetItem(layer.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            checked = self._pred_checked.setdefault(id(layer), self._auto_checked(layer))
            item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
            item.setData(Qt.ItemDataRole.UserRole, id(layer))
            self.pred_list.addItem(item)
        for combo in (self.image_combo, self.truth_combo, self.pred_list):
            combo.blockSignals(False)
        self._watch([image, truth, *self.prediction_layers])
        self._show_pixel_size()
        self.schedule_update()

    def _watch(self, layers) -> None:
        layers = [layer for layer in layers if layer is not None]
        for layer in self._watched:
            if layer not in layers:
                self._disconnect_layer(layer)
        for layer in layers:
            if layer not in self._watched:
                if layer._type_string == "points":
                    layer.events.data.connect(self.schedule_update)
                layer.events.name.connect(self._on_layer_renamed)
        self._watched = layers

    def _disconnect_layer(self, layer) -> None:
        for emitter, slot in ((layer.events.data, self.schedule_update), (layer.events.name, self._on_layer_renamed)):
            try:
                emitter.disconnect(slot)
            except (TypeError, RuntimeError, ValueError):
                pass

    def _on_layers_changed(self, event=None) -> None:
        value = getattr(event, "value", None)
        if value is not None and value not in self.viewer.layers:
            # a removed layer's id may be reused by the next new layer: forget its tick
            self._pred_checked.pop(id(value), None)
            self._initial_points.discard(id(value))
        if value is not None and OVERLAY_KEY in getattr(value, "metadata", {}):
            return  # our own overlays coming and going
        if not self._alive():
            return
        self._refresh_layer_choices()

    def _on_layer_renamed(self, event=None) -> None:
        if self._alive():
            self._refresh_layer_choices()

    def _on_choice_changed(self, _index=None) -> None:
        self._refresh_layer_choices()

    def _on_pred_checked(self, item: QListWidgetItem) -> None:
        self._pred_checked[item.data(Qt.ItemDataRole.UserRole)] = item.checkState() == Qt.CheckState.Checked
        self._watch([self.image_layer, self.truth_layer, *self.prediction_layers])
        self.schedule_update()

    # ----------------------------------------------------------- update
    def _alive(self) -> bool:
        try:
            self._timer.isActive()
        except RuntimeError:  # the Qt object is gone: stop listening
            self.cleanup()
            return False
        return True

    def schedule_update(self, event=None) -> None:
        """Re-score after :data:`DEBOUNCE_MS` of quiet (edits in a burst cost one update)."""
        action = str(getattr(event, "action", ""))
        if action in _PRE_EDIT or not self._alive() or self._updating:
            return
        quiet = time.perf_counter() - self._last_update_end > DEBOUNCE_MS / 1e3
        if self.score_edits_at_once and action in _COMPLETED_EDIT and quiet and not self._timer.isActive():
            # one finished edit (a mouse release): score now, before the canvas repaint the
            # edit has queued, so the table follows the hand; a burst still goes to the timer
            self.update_now()
            return
        self._timer.start()

    @property
    def pixel_size_A(self) -> float | None:
        """The project's rule (:func:`~napari_atombench.core.io.resolve_pixel_size`): the image's
        (the dock's field writes it there), else the labels', else a prediction's."""
        return self._resolve_pixel_size()[0]

    def _resolve_pixel_size(self) -> tuple[float | None, str]:
        """(pixel size, disagreement message or "") - the message goes into the status, not a
        warning per live update."""
        predictions = [layer_pixel_size_A(layer) for layer in self.prediction_layers]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value, _ = resolve_pixel_size(("image", layer_pixel_size_A(self.image_layer)),
                                          ("labels", layer_pixel_size_A(self.truth_layer)),
                                          ("predictions", next((v for v in predictions if v), None)))
        return value, "; ".join(str(w.message) for w in caught)

    def _show_pixel_size(self) -> None:
        self.pixel_size.blockSignals(True)
        self.pixel_size.setValue(self.pixel_size_A or 0.0)
        self.pixel_size.blockSignals(False)

    def _on_pixel_size_edited(self, value: float) -> None:
        """The user's pixel size goes into the image layer (and the labels layer) metadata."""
        for layer in (self.image_layer, self.truth_layer):
            set_layer_pixel_size_A(layer, value)
        self.schedule_update()

    def update_now(self) -> None:
        """Score every prediction layer and update the overlays, the table and the inspector."""
        self._timer.stop()
        self._updating = True
        try:
            self._update()
        finally:
            self._updating = False
            self._last_update_end = time.perf_counter()

    def _update(self) -> None:
        truth_layer, predictions = self.truth_layer, self.prediction_layers
        pixel_size_A = self.pixel_size_A
        image = self.image_layer
        paper = self.paper_check.isChecked()
        self.radius_A.setEnabled(pixel_size_A is not None and not paper)
        self.radius_px.setEnabled(pixel_size_A is None and not paper)
        self.margin_px.setEnabled(image is not None)
        margin = self.margin_px.value() if image is not None else 0.0
        self._drop_stale_overlays(predictions if truth_layer is not None else [])
        self.results = {}
        if truth_layer is None or not predictions:
            set_message(self.status, "Add a labels Points layer and at least one prediction Points layer to compare.")
            self._set_table({})
            return
        options = dict(
            pixel_size_A=pixel_size_A,
            max_distance_A=self.radius_A.value(),
            max_distance_px=None if pixel_size_A is not None else self.radius_px.value(),
            paper_compatible=paper,
            border_margin_px=margin,
            image_shape=tuple(image.data.shape[-2:]) if image is not None else None,
        )
        errors = []
        try:
            truth = _positions(truth_layer)
        except ValueError as exc:
            return self._show_error(str(exc))
        active = self.viewer.layers.selection.active
        for layer in predictions:
            # a per-class prediction layer names its own labels (the same class of the labels)
            own = next((t for t in _points_layers(self.viewer) if t.name == layer.metadata.get("truth_layer")), None)
            try:
                own_truth = truth if own is None else _positions(own)
                comparison = self.cache.compare(layer.name, _positions(layer), own_truth, **options)
            except ValueError as exc:
                errors.append(str(exc))
                continue
            self.results[layer.name] = comparison
            self._write_overlays(layer, truth_layer if own is None else own, own_truth, comparison)
        self.cache.keep_only(self.results)
        if active is not None and self.viewer.layers.selection.active is not active:
            self.viewer.layers.selection.active = active  # new overlays must not steal the selection
        self._set_table({name: c.score for name, c in self.results.items()})
        if errors:
            return self._show_error("; ".join(errors))
        self._last_error = ""
        size = f"{pixel_size_A:g} Å/px" if pixel_size_A is not None else "unknown (radius in px, no Å, no pass/fail)"
        radius = next(iter(self.results.values())).score.max_distance_px if self.results else float("nan")
        self.status.setStyleSheet("")
        set_message(
            self.status,
            f"pixel size: {size}; radius {radius:.2f} px"
            + ("; paper-compatible counting" if paper else "")
            + (f"; border margin {margin:g} px" if margin else "")
            + (f"; {disagreement}" if (disagreement := self._resolve_pixel_size()[1]) else ""),
        )

    def _show_error(self, message: str) -> None:
        self.status.setStyleSheet("color: #ff6060")
        set_message(self.status, message)
        if message != self._last_error:  # live edits must not flood the notifications
            from napari.utils.notifications import show_warning

            show_warning(f"Compare to labels: {message}")
        self._last_error = message

    # --------------------------------------------------------- overlays
    def _style(self, kind: str, size: float) -> dict:
        colour = PALETTES["colour-blind safe" if self.colour_check.isChecked() else "standard"][kind]
        if kind == "FN":
            return dict(size=1.9 * size, face_color="transparent", border_color=colour, border_width=0.18, symbol="disc")
        if kind == "TP":
            return dict(size=size, face_color=colour, border_color="black", border_width=0.1, symbol="disc")
        return dict(size=1.5 * size, face_color=colour, border_color="black", border_width=0.1, symbol="diamond")

    def _write_overlays(self, pred_layer, truth_layer, truth: np.ndarray, comparison: Comparison) -> None:
        predicted = np.asarray(pred_layer.data, dtype=np.float64)
        data = {
            "TP": predicted[comparison.tp_pred_index],
            "FP": predicted[comparison.fp_index],
            "FN": truth[comparison.fn_index],
        }
        provenance = {
            "prediction_layer": pred_layer.name,
            "truth_layer": truth_layer.name,
            "max_distance_px": comparison.score.max_distance_px,
            "paper_compatible": comparison.score.paper_compatible,
        }
        overlays = self._overlays.setdefault(id(pred_layer), {})
        size = None
        for kind in KINDS:
            name = f"{pred_layer.name} {kind}"
            layer = overlays.get(kind)
            if layer is None or layer not in self.viewer.layers:
                if size is None:
                    size = float(np.atleast_1d(truth_layer.size).mean()) if len(truth) else points_size_px(truth)
                layer = self.viewer.add_points(
                    data[kind],
                    name=name,
                    metadata={OVERLAY_KEY: kind, "assigned_name": name, **provenance},
                    **self._style(kind, size),
                )
                overlays[kind] = layer
                continue
            if layer.metadata.get("assigned_name") == layer.name != name:  # prediction renamed
                layer.name = name
                layer.metadata["assigned_name"] = name
            layer.metadata.update(provenance)
            if len(layer.data) != len(data[kind]) or not np.array_equal(layer.data, data[kind]):
                layer.data = data[kind]

    def _legend_text(self) -> str:
        palette = PALETTES["colour-blind safe" if self.colour_check.isChecked() else "standard"]
        shapes = {"TP": "●", "FP": "◆", "FN": "○"}
        return "  ".join(f"<span style='color:{palette[k]}'>{shapes[k]}</span> {k}" for k in KINDS)

    def _apply_palette(self, *_args) -> None:
        self.legend.setText(self._legend_text())
        for overlays in self._overlays.values():
            for kind, layer in overlays.items():
                style = self._style(kind, 1.0)
                layer.face_color = style["face_color"]
                layer.current_face_color = style["face_color"]
                layer.border_color = style["border_color"]
                layer.current_border_color = style["border_color"]

    def _drop_stale_overlays(self, predictions: list) -> None:
        """Remove the overlays of predictions that are no longer compared."""
        keep = {id(layer) for layer in predictions}
        for key in [k for k in self._overlays if k not in keep]:
            for layer in self._overlays.pop(key).values():
                if layer in self.viewer.layers:
                    self.viewer.layers.remove(layer)

    # ------------------------------------------------------------ table
    def _set_table(self, scores: dict[str, Score]) -> None:
        selected = self._selected_prediction()
        table = scores_table(scores, key="prediction")
        default = self.truth_layer.name if self.truth_layer is not None else None
        own = {layer.name: layer.metadata.get("truth_layer") for layer in _points_layers(self.viewer)}
        table.insert(1, "labels", [own.get(name) or default for name in table["prediction"]] if len(table) else default)
        table.insert(2, "pixel_size_A", self.pixel_size_A)
        table.insert(3, "border_margin_px", self.margin_px.value() if self.image_layer is not None else 0.0)
        self.table = table
        widget = self.table_widget
        widget.blockSignals(True)
        widget.setRowCount(len(scores))
        by_name = {layer.name: layer for layer in self.prediction_layers}
        widget.setVerticalHeaderLabels([layer_display_name(by_name[n]) if n in by_name else n for n in scores])
        for row, name in enumerate(scores):
            widget.verticalHeaderItem(row).setToolTip(name)
        for row, score in enumerate(scores.values()):
            for column, (_header, field, fmt) in enumerate(COLUMNS):
                widget.setItem(row, column, self._cell(field, getattr(score, field), fmt))
        self._fit_table_height()
        widget.blockSignals(False)
        names = list(scores)
        self.inspect_combo.blockSignals(True)
        self.inspect_combo.clear()
        self.inspect_combo.addItems(names)
        self.inspect_combo.setCurrentIndex(names.index(selected) if selected in names else 0)
        self.inspect_combo.blockSignals(False)
        self._fill_inspector()

    def _fit_table_height(self) -> None:
        """As tall as its rows (up to six), so the failure list below gets the room."""
        widget = self.table_widget
        rows = min(max(widget.rowCount(), 1), 6)
        height = widget.horizontalHeader().height() + rows * widget.verticalHeader().defaultSectionSize()
        widget.setFixedHeight(height + widget.horizontalScrollBar().sizeHint().height() + 4)
        # wide enough for the row names and the pass criteria (the first KEY_COLUMNS) without scrolling
        names = min(widget.verticalHeader().sizeHint().width(), widget.verticalHeader().maximumWidth())
        key = sum(widget.columnWidth(c) for c in range(KEY_COLUMNS))
        widget.setMinimumWidth(names + key + 2 * widget.frameWidth() + widget.verticalScrollBar().sizeHint().width())

    def _cell(self, field: str, value, fmt: str) -> QTableWidgetItem:
        if field == "passes":
            text, colour = {True: ("pass", "#1b7a1b"), False: ("fail", "#b3261e"), None: ("n/a", None)}[value]
            item = QTableWidgetItem(text)
            if colour:
                item.setBackground(QBrush(QColor(colour)))
                item.setForeground(QBrush(QColor("white")))
            else:
                item.setToolTip("no pixel size: the RMSE criterion is in Å")
        elif value is None:
            item = QTableWidgetItem("—")
            item.setToolTip("no pixel size" if field == "rmse_A" and self.pixel_size_A is None else "no matched pair")
        else:
            item = QTableWidgetItem(format(value, fmt))
        item.setTextAlignment(int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter))
        return item

    def export_csv(self, path) -> None:
        """Write the metric table (one row per prediction layer) to ``path``."""
        atomic_write_text(path, self.table.to_csv(index=False))

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export metric table", "atombench-scores.csv", "CSV (*.csv)")
        if path:
            try:
                self.export_csv(path)
            except OSError as exc:
                from napari.utils.notifications import show_error

                show_error(f"Could not write {path}: {exc}")

    # ---------------------------------------------------------- cleanup
    def cleanup(self) -> None:
        """Stop listening to the viewer and its layers (called when the widget closes)."""
        for emitter in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            try:
                emitter.disconnect(self._on_layers_changed)
            except (TypeError, RuntimeError, ValueError):
                pass
        for layer in self._watched:
            self._disconnect_layer(layer)
        self._watched = []
        try:
            self._timer.stop()
        except RuntimeError:
            pass

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        self.cleanup()
        super().closeEvent(event)

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        # napari's dock "close" button takes the widget out of its dock (parent None)
        # without closing it: stop listening then, too
        if event.type() == QEvent.Type.ParentChange and self.parent() is None:
            self.cleanup()
        super().changeEvent(event)
