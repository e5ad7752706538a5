"""The Benchmark dock's controls and layout (built once; the behaviour lives in benchmark.py)."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from ..core.benchmark import DEFAULT_KNOBS
from ._worker import message_label

#: where cases come from (the dock's "dataset" selector)
SOURCES = ("Folder dataset", "wei_atom.h5", "Simulated series")
#: the plots of a case benchmark (a series has its own: radar, score vs knob)
CASE_PLOTS = ("recall vs precision",)


def build_ui(w) -> None:
    """Create the controls of BenchmarkWidget ``w`` as its attributes, lay them out, connect them."""
    layout = QVBoxLayout(w)
    form = QFormLayout()
    w.source = QComboBox()
    w.source.addItems(SOURCES)
    w.source.currentTextChanged.connect(w._on_source_changed)
    form.addRow("dataset", w.source)
    path_row = QHBoxLayout()
    w.path = QLineEdit()
    w.path.setPlaceholderText("folder with cases.csv")
    browse = QPushButton("…")
    browse.setMaximumWidth(30)
    browse.clicked.connect(w._browse)
    path_row.addWidget(w.path)
    path_row.addWidget(browse)
    form.addRow("path", path_row)
    w.knobs = QLineEdit("resolution_pm, pixel_size_pm")
    w.knobs.setToolTip("knob[=start:end], comma separated; defaults: "
                          + ", ".join(f"{k}={a:g}:{b:g}" for k, (a, b) in DEFAULT_KNOBS.items()))
    w.material = QComboBox()
    w.material.addItems(["srtio3", "ws2", "srtio3 + ws2"])
    w.points = QSpinBox()
    w.points.setRange(2, 30)
    w.points.setValue(6)
    form.addRow("knobs", w.knobs)
    form.addRow("material", w.material)
    form.addRow("points", w.points)
    w.kind = QComboBox()
    w.kind.addItem("all kinds")
    w.kind.currentTextChanged.connect(lambda _: w._fill_table())
    form.addRow("show", w.kind)
    layout.addLayout(form)
    w.load_button = QPushButton("Load dataset")
    w.load_button.clicked.connect(w.load_dataset)
    layout.addWidget(w.load_button)

    layout.addWidget(QLabel("models"))
    w.models = QListWidget()
    w.models.setMaximumHeight(90)
    layout.addWidget(w.models)
    run_row = QHBoxLayout()
    w.run_button = QPushButton("Run")
    w.run_button.clicked.connect(w.run)
    w.cancel_button = QPushButton("Cancel")
    w.cancel_button.setEnabled(False)
    w.cancel_button.clicked.connect(w.cancel)
    run_row.addWidget(w.run_button)
    run_row.addWidget(w.cancel_button)
    layout.addLayout(run_row)
    w.progress = QProgressBar()
    w.progress.setFormat("%v / %m")
    layout.addWidget(w.progress)
    w.status = QLabel("Load a dataset, tick models, press Run.")
    message_label(w.status)
    layout.addWidget(w.status)

    _build_results(w, layout)


def _build_results(w, layout) -> None:
    """The case table, the plot and the export buttons."""
    splitter = QSplitter(Qt.Orientation.Vertical)
    w.table = QTableWidget()
    w.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    w.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
    w.table.cellClicked.connect(lambda row, _col: w.open_case(w.table.item(row, 0).text()))
    splitter.addWidget(w.table)
    plot_box = QWidget()
    plot_layout = QVBoxLayout(plot_box)
    plot_layout.setContentsMargins(0, 0, 0, 0)
    w.plot_kind = QComboBox()
    w.plot_kind.addItems(CASE_PLOTS)
    w.plot_kind.currentTextChanged.connect(lambda _: w.draw_plot())
    plot_layout.addWidget(w.plot_kind)
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

    w.figure = Figure(figsize=(5, 4), layout="constrained")
    w.canvas = FigureCanvasQTAgg(w.figure)
    w.canvas.setMinimumHeight(220)
    plot_layout.addWidget(w.canvas)
    splitter.addWidget(plot_box)
    splitter.setStretchFactor(0, 3)
    splitter.setStretchFactor(1, 2)
    w.table.setMinimumHeight(140)
    layout.addWidget(splitter, stretch=1)

    export_row = QHBoxLayout()
    w.export_csv_button = QPushButton("Export CSV")
    w.export_csv_button.clicked.connect(lambda: w._ask_export("csv"))
    w.export_png_button = QPushButton("Export PNG")
    w.export_png_button.clicked.connect(lambda: w._ask_export("png"))
    export_row.addWidget(w.export_csv_button)
    export_row.addWidget(w.export_png_button)
    layout.addLayout(export_row)
    w._on_source_changed(w.source.currentText())
