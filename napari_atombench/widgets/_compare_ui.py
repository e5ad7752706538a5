"""The Compare dock's controls and layout (built once; the behaviour lives in compare.py)."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QPushButton,
    QTableWidget,
    QVBoxLayout,
)

from ._compare_state import COLUMNS, HEADER_TIPS
from ._worker import message_label


def build_ui(w) -> None:
    """Create the controls of CompareWidget ``w`` as its attributes, lay them out, connect them."""
    _build_results(w, _build_inputs(w))


def _build_inputs(w) -> QFormLayout:
    """The layers and the matching options."""
    w.image_combo = QComboBox()
    w.image_combo.setToolTip("The image: its pixel size converts the radius and RMSE to Å")
    w.truth_combo = QComboBox()
    w.truth_combo.setToolTip("The ground-truth (labels) Points layer")
    w.pred_list = QListWidget()
    w.pred_list.setToolTip("Prediction Points layers to score (tick to compare)")
    w.pred_list.setMaximumHeight(72)

    w.pixel_size = QDoubleSpinBox(decimals=4, minimum=0.0, maximum=100.0, singleStep=0.01, value=0.0)
    w.pixel_size.setSuffix(" Å/px")
    w.pixel_size.setSpecialValueText("unknown")
    w.pixel_size.setToolTip("Pixel size of the image (0: unknown); written to the image layer's metadata")
    w.pixel_size.valueChanged.connect(w._on_pixel_size_edited)
    w.radius_A = QDoubleSpinBox(decimals=2, minimum=0.01, maximum=20.0, singleStep=0.05, value=0.5)
    w.radius_A.setSuffix(" Å")
    w.radius_px = QDoubleSpinBox(decimals=2, minimum=0.1, maximum=500.0, singleStep=0.5, value=3.0)
    w.radius_px.setSuffix(" px")
    w.radius_px.setToolTip("Matching radius used when no pixel size is known")
    w.margin_px = QDoubleSpinBox(decimals=1, minimum=0.0, maximum=10000.0, singleStep=1.0, value=0.0)
    w.margin_px.setSuffix(" px")
    w.margin_px.setToolTip("Ignore labels and predictions closer than this to the image border")
    w.paper_check = QCheckBox("paper-compatible scoring")
    w.paper_check.setToolTip(
        "Count every (prediction, label) pair closer than √5 px as a TP, as the benchmark "
        "authors' notebooks do (many-to-many: precision can exceed 1)"
    )
    w.colour_check = QCheckBox("colour-blind-safe colours")
    w.legend = QLabel(w._legend_text())
    w.legend.setToolTip("TP: matched predictions; FP: predictions with no label; FN: labels with no prediction")

    form = QFormLayout()
    form.addRow("image", w.image_combo)
    form.addRow("pixel size", w.pixel_size)
    form.addRow("labels", w.truth_combo)
    form.addRow("predictions", w.pred_list)
    form.addRow("max distance", w.radius_A)
    form.addRow("… no pixel size", w.radius_px)
    form.addRow("border margin", w.margin_px)
    toggles = QHBoxLayout()
    toggles.addWidget(w.paper_check)
    toggles.addWidget(w.colour_check)
    form.addRow(toggles)
    form.addRow("overlays", w.legend)

    return form


def _build_results(w, form) -> None:
    """The status, the metric table, the failure-case inspector; then the whole layout."""
    w.status = QLabel()
    message_label(w.status)

    w.table_widget = QTableWidget(0, len(COLUMNS))
    w.table_widget.setHorizontalHeaderLabels([c[0] for c in COLUMNS])
    for column, tip in enumerate(HEADER_TIPS):
        w.table_widget.horizontalHeaderItem(column).setToolTip(tip)
    w.table_widget.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    w.table_widget.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)  # keeps pass/fail colours
    w.table_widget.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    w.table_widget.verticalHeader().setMaximumWidth(200)  # rows are named by model; long names elided
    w.table_widget.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)

    w.inspect_combo = QComboBox()
    w.inspect_combo.setToolTip("Whose false positives and false negatives to list")
    w.inspect_combo.currentIndexChanged.connect(w._fill_inspector)
    w.inspect_label = QLabel()
    message_label(w.inspect_label)
    w.case_list = QListWidget()
    w.case_list.setToolTip("Click a false positive or false negative to centre the view on it")
    w.case_list.itemClicked.connect(lambda item: w.show_case(w.case_list.row(item)))
    w.case_list.currentRowChanged.connect(w.show_case)  # keyboard too
    w.prev_button = QPushButton("◀ previous")
    w.next_button = QPushButton("next ▶")
    w.prev_button.clicked.connect(lambda: w.step_case(-1))
    w.next_button.clicked.connect(lambda: w.step_case(+1))
    w.export_button = QPushButton("Export CSV…")
    w.export_button.clicked.connect(w._export_dialog)
    buttons = QHBoxLayout()
    buttons.addWidget(w.prev_button)
    buttons.addWidget(w.next_button)
    buttons.addStretch(1)
    buttons.addWidget(w.export_button)

    layout = QVBoxLayout(w)
    layout.addLayout(form)
    layout.addWidget(w.status)
    layout.addWidget(w.table_widget)
    inspect_row = QHBoxLayout()
    inspect_row.addWidget(QLabel("failure cases of"))
    inspect_row.addWidget(w.inspect_combo, 1)
    layout.addLayout(inspect_row)
    layout.addWidget(w.inspect_label)
    layout.addWidget(w.case_list)
    layout.addLayout(buttons)

    w.image_combo.currentIndexChanged.connect(w._on_choice_changed)
    w.truth_combo.currentIndexChanged.connect(w._on_choice_changed)
    w.pred_list.itemChanged.connect(w._on_pred_checked)
    for spin in (w.radius_A, w.radius_px, w.margin_px):
        spin.valueChanged.connect(w.schedule_update)
    w.paper_check.toggled.connect(w.schedule_update)
    w.colour_check.toggled.connect(w._apply_palette)

