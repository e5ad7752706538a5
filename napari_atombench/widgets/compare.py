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

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from qtpy.QtCore import QEvent, Qt, QTimer
from qtpy.QtGui import QBrush, QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .._napari.layers import (
    OVERLAY_KEY,
    layer_display_name,
    layer_pixel_size_A,
    layer_role,
    points_size_px,
    set_layer_pixel_size_A,
)
from ..core.io import atomic_write_text
from ..core.metrics import Comparison, Score, scores_table
from ._compare_state import ComparisonCache
from ._worker import message_label, set_message

if TYPE_CHECKING:
    import napari

KINDS = ("TP", "FP", "FN")
#: overlay colours; the colour-blind-safe set is from Okabe & Ito's palette
PALETTES = {
    "standard": {"TP": "#22c322", "FP": "#ff2020", "FN": "#2a6bff"},
    "colour-blind safe": {"TP": "#0072b2", "FP": "#e69f00", "FN": "#cc79a7"},
}
#: (header, Score field, format) of the metric table
#: the pass criteria first, so they are visible in a narrow dock without scrolling
COLUMNS = [
    ("recall", "recall", ".3f"),
    ("precision", "precision", ".3f"),
    ("RMSE Å", "rmse_A", ".3f"),
    ("pass", "passes", ""),
    ("F1", "f1", ".3f"),
    ("RMSE px", "rmse_px", ".3f"),
    ("TP", "n_tp", "d"),
    ("FP", "n_fp", "d"),
    ("FN", "n_fn", "d"),
    ("labels", "n_truth", "d"),
    ("predicted", "n_pred", "d"),
]
#: recall, precision, RMSE Å, pass: always visible
KEY_COLUMNS = 4
HEADER_TIPS = [
    "ID-recall = TP / N labels",
    "ID-precision = TP / N predicted",
    "RMSE of matched pairs, Å",
    "pass: recall ≥ 0.90, precision ≥ 0.95, RMSE ≤ 0.3 Å",
    "F1 = harmonic mean of recall and precision",
    "RMSE of matched pairs, pixels",
    "true positives",
    "false positives: predictions with no label",
    "false negatives: labels with no prediction",
    "N labels (after the border filter)",
    "N predicted (after the border filter)",
]
NONE = "(none)"
#: short: pre-edit events are ignored, so a drag costs one update after the release
DEBOUNCE_MS = 20
#: Points data events sent BEFORE the data changes (and repeatedly during a drag)
_PRE_EDIT = ("adding", "removing", "changing")
#: failure cases listed per kind (a hopeless prediction must not make every edit slow)
MAX_CASES = 1000


def _points_layers(viewer) -> list:
    return [layer for layer in viewer.layers if layer_role(layer) in ("labels", "prediction", "points")]


def _positions(layer) -> np.ndarray:
    data = np.asarray(layer.data, dtype=np.float64)
    if data.ndim != 2 or (len(data) and data.shape[1] != 2):
        raise ValueError(f"layer {layer.name!r} has {layer.ndim}D points; comparing needs 2D (row, col) points")
    return data.reshape(-1, 2)


class CompareWidget(QWidget):
    """Dock widget "Compare to labels"."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
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
        # Points layers of unknown role present when the dock opens are compared; later
        # ones only when ticked (a scratch layer must not join the table)
        self._initial_points = {id(layer) for layer in _points_layers(napari_viewer)}

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
        self.image_combo = QComboBox()
        self.image_combo.setToolTip("The image: its pixel size converts the radius and RMSE to Å")
        self.truth_combo = QComboBox()
        self.truth_combo.setToolTip("The ground-truth (labels) Points layer")
        self.pred_list = QListWidget()
        self.pred_list.setToolTip("Prediction Points layers to score (tick to compare)")
        self.pred_list.setMaximumHeight(72)

        self.pixel_size = QDoubleSpinBox(decimals=4, minimum=0.0, maximum=100.0, singleStep=0.01, value=0.0)
        self.pixel_size.setSuffix(" Å/px")
        self.pixel_size.setSpecialValueText("unknown")
        self.pixel_size.setToolTip("Pixel size of the image (0: unknown); written to the image layer's metadata")
        self.pixel_size.valueChanged.connect(self._on_pixel_size_edited)
        self.radius_A = QDoubleSpinBox(decimals=2, minimum=0.01, maximum=20.0, singleStep=0.05, value=0.5)
        self.radius_A.setSuffix(" Å")
        self.radius_px = QDoubleSpinBox(decimals=2, minimum=0.1, maximum=500.0, singleStep=0.5, value=3.0)
        self.radius_px.setSuffix(" px")
        self.radius_px.setToolTip("Matching radius used when no pixel size is known")
        self.margin_px = QDoubleSpinBox(decimals=1, minimum=0.0, maximum=10000.0, singleStep=1.0, value=0.0)
        self.margin_px.setSuffix(" px")
        self.margin_px.setToolTip("Ignore labels and predictions closer than this to the image border")
        self.paper_check = QCheckBox("paper-compatible scoring")
        self.paper_check.setToolTip(
            "Count every (prediction, label) pair closer than √5 px as a TP, as the benchmark "
            "authors' notebooks do (many-to-many: precision can exceed 1)"
        )
        self.colour_check = QCheckBox("colour-blind-safe colours")
        self.legend = QLabel(self._legend_text())
        self.legend.setToolTip("TP: matched predictions; FP: predictions with no label; FN: labels with no prediction")

        form = QFormLayout()
        form.addRow("image", self.image_combo)
        form.addRow("pixel size", self.pixel_size)
        form.addRow("labels", self.truth_combo)
        form.addRow("predictions", self.pred_list)
        form.addRow("max distance", self.radius_A)
        form.addRow("… no pixel size", self.radius_px)
        form.addRow("border margin", self.margin_px)
        toggles = QHBoxLayout()
        toggles.addWidget(self.paper_check)
        toggles.addWidget(self.colour_check)
        form.addRow(toggles)
        form.addRow("overlays", self.legend)

        self.status = QLabel()
        message_label(self.status)

        self.table_widget = QTableWidget(0, len(COLUMNS))
        self.table_widget.setHorizontalHeaderLabels([c[0] for c in COLUMNS])
        for column, tip in enumerate(HEADER_TIPS):
            self.table_widget.horizontalHeaderItem(column).setToolTip(tip)
        self.table_widget.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table_widget.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)  # keeps pass/fail colours
        self.table_widget.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table_widget.verticalHeader().setMaximumWidth(200)  # rows are named by model; long names elided
        self.table_widget.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)

        self.inspect_combo = QComboBox()
        self.inspect_combo.setToolTip("Whose false positives and false negatives to list")
        self.inspect_combo.currentIndexChanged.connect(self._fill_inspector)
        self.inspect_label = QLabel()
        message_label(self.inspect_label)
        self.case_list = QListWidget()
        self.case_list.setToolTip("Click a false positive or false negative to centre the view on it")
        self.case_list.itemClicked.connect(lambda item: self.show_case(self.case_list.row(item)))
        self.case_list.currentRowChanged.connect(self.show_case)  # keyboard too
        self.prev_button = QPushButton("◀ previous")
        self.next_button = QPushButton("next ▶")
        self.prev_button.clicked.connect(lambda: self.step_case(-1))
        self.next_button.clicked.connect(lambda: self.step_case(+1))
        self.export_button = QPushButton("Export CSV…")
        self.export_button.clicked.connect(self._export_dialog)
        buttons = QHBoxLayout()
        buttons.addWidget(self.prev_button)
        buttons.addWidget(self.next_button)
        buttons.addStretch(1)
        buttons.addWidget(self.export_button)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.status)
        layout.addWidget(self.table_widget)
        inspect_row = QHBoxLayout()
        inspect_row.addWidget(QLabel("failure cases of"))
        inspect_row.addWidget(self.inspect_combo, 1)
        layout.addLayout(inspect_row)
        layout.addWidget(self.inspect_label)
        layout.addWidget(self.case_list)
        layout.addLayout(buttons)

        self.image_combo.currentIndexChanged.connect(self._on_choice_changed)
        self.truth_combo.currentIndexChanged.connect(self._on_choice_changed)
        self.pred_list.itemChanged.connect(self._on_pred_checked)
        for spin in (self.radius_A, self.radius_px, self.margin_px):
            spin.valueChanged.connect(self.schedule_update)
        self.paper_check.toggled.connect(self.schedule_update)
        self.colour_check.toggled.connect(self._apply_palette)

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
        if str(getattr(event, "action", "")) in _PRE_EDIT:
            return
        if self._alive() and not self._updating:
            self._timer.start()

    @property
    def pixel_size_A(self) -> float | None:
        """From the image layer's metadata, else from the labels layer's."""
        for layer in (self.image_layer, self.truth_layer):
            value = layer_pixel_size_A(layer)
            if value is not None:
                return value
        return None

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
            + (f"; border margin {margin:g} px" if margin else ""),
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

    # -------------------------------------------------------- inspector
    def _selected_prediction(self) -> str | None:
        name = self.inspect_combo.currentText()
        return name or None

    def _fill_inspector(self, *_args) -> None:
        name = self._selected_prediction()
        current = self.case_list.currentRow()
        self.case_list.blockSignals(True)
        self.case_list.clear()
        self._cases = []
        comparison = self.results.get(name) if name is not None else None
        if comparison is not None:
            pred_layer = next((lay for lay in self.prediction_layers if lay.name == name), None)
            predicted = np.asarray(pred_layer.data) if pred_layer is not None else np.zeros((0, 2))
            truth = np.asarray(self.truth_layer.data)
            self._cases = [("FP", int(i), predicted[i]) for i in comparison.fp_index[:MAX_CASES]] + [
                ("FN", int(i), truth[i]) for i in comparison.fn_index[:MAX_CASES]
            ]
            self.case_list.addItems(
                [f"{kind} #{index}  (row {rc[0]:.1f}, col {rc[1]:.1f})" for kind, index, rc in self._cases]
            )
            if self._cases and current >= 0:  # keep the place while the user edits
                self.case_list.setCurrentRow(min(current, len(self._cases) - 1))
        self.case_list.blockSignals(False)
        if comparison is not None:
            n_fp, n_fn = len(comparison.fp_index), len(comparison.fn_index)
            more = f" (the first {MAX_CASES} of each are listed)" if max(n_fp, n_fn) > MAX_CASES else ""
            self.inspect_label.setText(
                f"{n_fp} false positives, {n_fn} false negatives{more}: click one, or use "
                "previous / next, to centre the view on it"
            )
        else:
            self.inspect_label.setText("")
        for button in (self.prev_button, self.next_button):
            button.setEnabled(bool(self._cases))

    def step_case(self, step: int) -> None:
        """Go to the next (+1) or previous (-1) failure case, wrapping around."""
        if not self._cases:
            return
        row = self.case_list.currentRow()
        row = (row + step) % len(self._cases) if row >= 0 else (0 if step > 0 else len(self._cases) - 1)
        self.show_case(row)

    def show_case(self, row: int) -> None:
        """Centre and zoom the viewer on failure case ``row`` of the list."""
        if not 0 <= row < len(self._cases):
            return
        self.case_list.setCurrentRow(row)
        kind, _index, rc = self._cases[row]
        self._mark_case(kind, rc)
        camera = self._camera()
        camera.center = (float(rc[0]), float(rc[1]))
        camera.zoom = self._inspection_zoom()

    def _mark_case(self, kind: str, rc) -> None:
        """A large ring around the failure case on the canvas (one layer, moved from case to case)."""
        name = "failure case"
        point = np.asarray(rc, dtype=float).reshape(1, 2)
        marker = next((lay for lay in self.viewer.layers if lay.metadata.get(OVERLAY_KEY) == "case"), None)
        if marker is None:
            truth = np.asarray(self.truth_layer.data) if self.truth_layer is not None else np.zeros((0, 2))
            active = self.viewer.layers.selection.active
            self.viewer.add_points(point, name=name, size=6.0 * points_size_px(truth),  # 1.5 column spacings
                                   face_color="transparent", border_color="white", border_width=0.08,
                                   symbol="ring", metadata={OVERLAY_KEY: "case", "kind": kind})
            if active is not None:
                self.viewer.layers.selection.active = active
        else:
            marker.data = point
            marker.metadata["kind"] = kind

    def _camera(self):
        # napari 0.9 moved the camera to viewer.scene; older versions have viewer.camera
        scene = getattr(self.viewer, "scene", None)
        return scene.camera if scene is not None else self.viewer.camera

    def _inspection_zoom(self) -> float:
        """A zoom that shows about six column spacings around the case."""
        truth = np.asarray(self.truth_layer.data) if self.truth_layer is not None else np.zeros((0, 2))
        spacing = 4.0 * points_size_px(truth) if len(truth) >= 2 else 10.0  # size = spacing / 4
        window_px = max(6.0 * spacing, 16.0)
        try:
            canvas = min(self.viewer.window._qt_viewer.canvas.size)
        except Exception:  # no Qt canvas (headless model): a typical dock-side canvas
            canvas = 600
        return float(max(canvas / window_px, 0.01))

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
