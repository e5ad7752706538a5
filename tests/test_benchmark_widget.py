"""The Benchmark dock in a real viewer: load a 2-case dataset, run a test-double model, open a case."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark_doubles import FailingLocator, OracleLocator
from napari_atombench.core.dataset import Case, load_case, write_folder_dataset
from napari_atombench.core.simulate import SRTIO3_100, WS2_MONOLAYER, simulate_crystal

pytestmark = pytest.mark.gui


@pytest.fixture
def two_cases(tmp_path):
    cases = []
    for name, crystal in (("sto", SRTIO3_100), ("ws2", WS2_MONOLAYER)):
        sim = simulate_crystal(crystal, shape=(64, 64), peak_counts=200, seed=1)
        cases.append(Case(case=name, pixel_size_A=0.15, kind="simulated", material=crystal.name,
                          image=sim.image, truth_rc=sim.positions_rc))
    return write_folder_dataset(tmp_path / "two", cases)


def _wait(qtbot, worker):
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass


def _cell(widget, row, header):
    headers = [widget.table.horizontalHeaderItem(c).text().replace("\n", " ") for c in range(widget.table.columnCount())]
    return widget.table.item(row, headers.index(header))


def test_dock_runs_a_tiny_benchmark_and_opens_a_case(make_napari_viewer, qtbot, two_cases, tmp_path, monkeypatch):
    from napari_atombench.widgets.benchmark import PASS_COLOUR, BenchmarkWidget

    viewer = make_napari_viewer()
    widget = BenchmarkWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Benchmark")
    oracle = OracleLocator("oracle", jitter_px=0.5)
    sloppy = OracleLocator("sloppy", jitter_px=3.0)  # 0.45 Å off: fails the RMSE criterion
    for case in two_cases:
        data = load_case(case)
        oracle.register(data.image, data.truth_rc)
        sloppy.register(data.image, data.truth_rc)
    for locator in (oracle, sloppy, FailingLocator()):
        widget.add_locator(locator)

    widget.path.setText(two_cases.root)
    _wait(qtbot, widget.load_dataset())
    assert widget.table.rowCount() == 2
    assert float(_cell(widget, 0, "resol. pm").text()) > 0  # quality metrics filled in

    _wait(qtbot, widget.run())
    assert _cell(widget, 0, "oracle pass").text() == "pass"
    assert _cell(widget, 0, "oracle pass").background().color().rgba() == PASS_COLOUR.rgba()
    assert _cell(widget, 1, "sloppy pass").text() == "fail"
    assert _cell(widget, 0, "failing pass").text() == "error"
    assert "always fails" in _cell(widget, 0, "failing recall").toolTip()
    assert float(_cell(widget, 0, "oracle RMSE Å").text()) == pytest.approx(0.075, rel=1e-2)
    assert "oracle: 2/2 pass" in widget.status.text()

    assert widget.figure.axes[0].get_xlabel() == "recall"  # per-case recall/precision plot
    assert widget.plot_kind.currentText() == "recall vs precision"  # the selector names what is shown

    docked = []
    monkeypatch.setattr(viewer.window, "add_plugin_dock_widget", lambda *args, **kwargs: docked.append(args))
    widget.table.cellClicked.emit(1, 0)  # click the ws2 row
    assert docked == [("napari-atombench", "Compare to labels")]
    names = [layer.name for layer in viewer.layers]
    for expected in ("ws2", "ws2 labels", "ws2 oracle", "ws2 sloppy"):
        assert expected in names
    assert "ws2 failing" not in names  # no predictions from a failed case
    np.testing.assert_allclose(viewer.layers["ws2 labels"].data, load_case(two_cases["ws2"]).truth_rc, atol=1e-5)
    assert viewer.layers["ws2 oracle"].metadata["model"] == "oracle"

    assert viewer.layers.selection.active.name == "ws2 labels"  # what the compare dock reads

    written = widget.export_csv(tmp_path / "out.csv")
    assert written[0].read_text().count("\n") == 7  # header + 2 cases x 3 models
    assert widget.export_png(tmp_path / "plot.png").stat().st_size > 1000


def test_dock_series_run_draws_radar(make_napari_viewer, qtbot, tmp_path):
    from napari_atombench.widgets.benchmark import SOURCES, BenchmarkWidget

    viewer = make_napari_viewer()
    widget = BenchmarkWidget(viewer)
    widget.source.setCurrentText(SOURCES[2])
    widget.knobs.setText("resolution_pm=80:200")
    widget.points.setValue(3)
    _wait(qtbot, widget.load_dataset())
    assert widget.table.rowCount() == 3
    oracle = OracleLocator("oracle", jitter_px=0.5)
    for case in widget.dataset:
        oracle.register(case.image, case.truth_rc)
    widget.add_locator(oracle)
    _wait(qtbot, widget.run())
    assert widget.cutoffs is not None and widget.cutoffs.loc[0, "status"] == "none in range"
    assert widget.figure.axes and widget.figure.axes[0].name == "polar"
    assert widget.plot_kind.currentText() == "radar"
    assert "not used" in widget.path.placeholderText()  # no wei_atom.h5 placeholder for a simulated series
    widget.open_case(widget.dataset.cases[1].case)  # a series case opens with its predictions
    assert f"{widget.dataset.cases[1].case} oracle" in viewer.layers
    widget.plot_kind.setCurrentText("score vs knob")
    assert len(widget.figure.axes) == 3
    written = widget.export_csv(tmp_path / "series.csv")
    assert written[1].name == "series_cutoffs.csv"


def test_dock_reports_bad_input(make_napari_viewer, tmp_path, two_cases, monkeypatch):
    from napari_atombench.widgets.benchmark import BenchmarkWidget

    viewer = make_napari_viewer()
    widget = BenchmarkWidget(viewer)
    widget.dataset = two_cases
    def missing(*args, **kwargs):
        raise KeyError("no such widget")

    monkeypatch.setattr(viewer.window, "add_plugin_dock_widget", missing)
    widget.open_case("sto")  # without the compare widget: layers open, a notice, no crash
    assert "sto labels" in viewer.layers and widget._compare_warned
    widget.dataset = None
    assert widget.run() is None and "load a dataset" in widget.status.text()
    widget.path.setText(str(tmp_path))
    assert widget.load_dataset() is None and "no cases.csv" in widget.status.text()


def test_second_case_is_scored_against_its_own_labels(make_napari_viewer, qtbot, tmp_path):
    """Issue 14 item 1: opening case B after case A replaces A's layers and re-points Compare."""
    from napari_atombench._napari.layers import OVERLAY_KEY
    from napari_atombench.core.metrics import score_positions
    from napari_atombench.widgets.benchmark import BenchmarkWidget

    cases = []
    for name, crystal, pixel_size_A in (("sto", SRTIO3_100, 0.15), ("ws2", WS2_MONOLAYER, 0.12)):
        sim = simulate_crystal(crystal, shape=(64, 64), peak_counts=200, seed=1)
        cases.append(Case(case=name, pixel_size_A=pixel_size_A, kind="simulated", material=crystal.name,
                          image=sim.image, truth_rc=sim.positions_rc))
    dataset = write_folder_dataset(tmp_path / "two", cases)
    viewer = make_napari_viewer()
    widget = BenchmarkWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Benchmark")
    oracle = OracleLocator("oracle", jitter_px=0.3)
    for case in dataset:
        data = load_case(case)
        oracle.register(data.image, data.truth_rc)
    widget.add_locator(oracle)
    widget.path.setText(dataset.root)
    _wait(qtbot, widget.load_dataset())
    _wait(qtbot, widget.run())

    def own_layers():
        return [layer.name for layer in viewer.layers if OVERLAY_KEY not in layer.metadata]

    widget.open_case("sto")
    first = own_layers()
    assert first == ["sto", "sto labels", "sto oracle"]
    widget.open_case("ws2")
    assert own_layers() == ["ws2", "ws2 labels", "ws2 oracle"]  # replaced, not piled up
    _dock, compare = viewer.window.add_plugin_dock_widget("napari-atombench", "Compare to labels")
    compare.update_now()
    assert compare.truth_layer.name == "ws2 labels"
    assert compare.pixel_size_A == pytest.approx(0.12)
    assert [layer.name for layer in compare.prediction_layers] == ["ws2 oracle"]
    truth = load_case(dataset["ws2"]).truth_rc
    expected = score_positions(viewer.layers["ws2 oracle"].data, truth, pixel_size_A=0.12)
    assert compare.results["ws2 oracle"].score.recall == pytest.approx(expected.recall)
    assert expected.recall >= 0.9
    assert compare.table_widget.verticalHeaderItem(0).text() == "oracle"  # rows named by model


def _crowded_result(n_cases=40, models=("atombench", "atomnet-sim")):
    """A benchmark table whose cases crowd one corner of the recall-precision plot."""
    import pandas as pd

    rng = np.random.default_rng(5)
    rows = [dict(case=f"case_{k:02d}", model=m, recall=0.95 + 0.04 * rng.random(), precision=0.96 + 0.03 * rng.random(),
                 rmse_A=0.1, passes=True, error="") for k in range(n_cases) for m in models]
    return pd.DataFrame(rows)


def test_case_labels_in_the_plot_never_overlap(make_napari_viewer):
    from types import SimpleNamespace

    from matplotlib.text import Annotation

    from napari_atombench.widgets.benchmark import BenchmarkWidget

    viewer = make_napari_viewer()
    widget = BenchmarkWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Benchmark")
    widget.result = SimpleNamespace(table=_crowded_result(), predictions={})
    widget.draw_plot()
    renderer = widget.figure.canvas.get_renderer()
    labels = [t for ax in widget.figure.axes for t in ax.texts if isinstance(t, Annotation)]
    shown = [t.get_window_extent(renderer) for t in labels if t.get_visible()]
    assert len(labels) == 80 and 3 <= len(shown) < 80  # crowded: some hidden, some still named
    for i, box in enumerate(shown):
        assert not any(box.overlaps(other) for other in shown[i + 1:])
    hidden = len(labels) - len(shown)
    assert (str(hidden) in widget.canvas.toolTip()) == bool(hidden)


def test_case_and_two_models_scores_visible_at_1600_px(make_napari_viewer, qtbot, two_cases):
    """Item 15: at 1600 x 1000 the dock shows the case and more than two score columns."""
    from napari_atombench.widgets.benchmark import BenchmarkWidget

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-atombench", "Benchmark")
    assert isinstance(widget, BenchmarkWidget)
    for name in ("atombench", "atomnet-sim"):
        oracle = OracleLocator(name, jitter_px=0.5)
        for case in two_cases:
            data = load_case(case)
            oracle.register(data.image, data.truth_rc)
        widget.add_locator(oracle)
    widget.path.setText(two_cases.root)
    _wait(qtbot, widget.load_dataset())
    _wait(qtbot, widget.run())
    qtbot.wait(50)
    table = widget.table
    right_edges = np.cumsum([table.columnWidth(c) for c in range(table.columnCount())])
    visible = int(np.sum(right_edges <= table.viewport().width()))
    assert visible >= 1 + 4, f"only {visible} columns fit in {table.viewport().width()} px"
