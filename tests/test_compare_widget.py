"""The "Compare to labels" dock widget in a real viewer (runs under Xvfb)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_atombench.core.metrics import score_positions
from napari_atombench.core.perturb import perturb_positions
from napari_atombench.widgets.compare import OVERLAY_KEY, PALETTES, CompareWidget

pytestmark = pytest.mark.gui

# three labels far apart; the prediction hits two of them and has one stray point
TRUTH = np.array([[10.0, 10.0], [10.0, 40.0], [40.0, 10.0]])
PRED = np.array([[10.2, 10.0], [10.0, 40.3], [30.0, 30.0]])


def _table_cell(widget, row: int, header: str) -> str:
    headers = [widget.table_widget.horizontalHeaderItem(c).text() for c in range(widget.table_widget.columnCount())]
    return widget.table_widget.item(row, headers.index(header)).text()


@pytest.fixture
def small_case(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((50, 50), np.float32), name="img", metadata={"pixel_size_A": 0.1})
    truth = viewer.add_points(TRUTH, name="img labels", size=3)
    pred = viewer.add_points(PRED, name="img model", size=3)
    widget = CompareWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return viewer, widget, truth, pred


def test_widget_docks_from_manifest_and_scores_the_sample(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-atombench", "srtio3")
    image, labels = viewer.layers
    fake = perturb_positions(labels.data, jitter_px=0.5, miss_fraction=0.03, spurious_fraction=0.02, seed=1)
    viewer.add_points(fake.positions_rc, name="srtio3_100 model")
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-atombench", "Compare to labels")
    assert isinstance(widget, CompareWidget)
    assert widget.truth_layer is labels and widget.image_layer is image
    widget.update_now()
    expected = score_positions(fake.positions_rc, labels.data, pixel_size_A=0.15)
    assert widget.table_widget.rowCount() == 1
    assert _table_cell(widget, 0, "TP") == str(expected.n_tp)
    assert _table_cell(widget, 0, "FN") == str(expected.n_fn)
    assert _table_cell(widget, 0, "recall") == f"{expected.recall:.3f}"
    assert _table_cell(widget, 0, "RMSE Å") == f"{expected.rmse_A:.3f}"
    overlays = {layer.name: layer for layer in viewer.layers if OVERLAY_KEY in layer.metadata}
    assert set(overlays) == {"srtio3_100 model TP", "srtio3_100 model FP", "srtio3_100 model FN"}
    assert len(overlays["srtio3_100 model TP"].data) == expected.n_tp
    assert len(overlays["srtio3_100 model FN"].data) == expected.n_fn
    assert overlays["srtio3_100 model FN"].metadata["truth_layer"] == "srtio3_100 labels"
    # the user's selected layer is not taken over by the new overlays
    assert viewer.layers.selection.active.name == "srtio3_100 model"


def test_moving_adding_deleting_points_updates_table_and_overlays_live(small_case, qtbot):
    viewer, widget, truth, pred = small_case
    tp, fp, fn = (viewer.layers[f"img model {kind}"] for kind in ("TP", "FP", "FN"))
    assert (len(tp.data), len(fp.data), len(fn.data)) == (2, 1, 1)
    assert _table_cell(widget, 0, "TP") == "2" and _table_cell(widget, 0, "pass") == "fail"

    # move the stray prediction onto the missed label: nothing pressed, the table follows
    moved = pred.data.copy()
    moved[2] = [40.1, 10.0]
    pred.data = moved
    qtbot.waitUntil(lambda: _table_cell(widget, 0, "TP") == "3", timeout=3000)
    assert _table_cell(widget, 0, "FP") == "0" and _table_cell(widget, 0, "pass") == "pass"
    assert (len(tp.data), len(fp.data), len(fn.data)) == (3, 0, 0)

    # add a spurious point
    pred.add([[25.0, 25.0]])
    qtbot.waitUntil(lambda: _table_cell(widget, 0, "FP") == "1", timeout=3000)
    np.testing.assert_allclose(fp.data, [[25.0, 25.0]])

    # delete a matched prediction: its label becomes a FN
    pred.selected_data = {0}
    pred.remove_selected()
    qtbot.waitUntil(lambda: _table_cell(widget, 0, "FN") == "1", timeout=3000)
    np.testing.assert_allclose(fn.data, [TRUTH[0]])

    # editing the labels is watched too
    truth.add([[45.0, 45.0]])
    qtbot.waitUntil(lambda: _table_cell(widget, 0, "labels") == "4", timeout=3000)


def test_renaming_a_prediction_renames_its_overlays(small_case, qtbot):
    viewer, widget, truth, pred = small_case
    pred.name = "img better model"
    qtbot.waitUntil(lambda: "img better model FP" in viewer.layers, timeout=3000)
    assert "img model FP" not in viewer.layers
    assert widget.table_widget.verticalHeaderItem(0).text() == "img better model"


def test_export_writes_the_table_as_csv(small_case, tmp_path):
    viewer, widget, truth, pred = small_case
    viewer.add_points(TRUTH + 0.1, name="img other model", metadata={"role": "prediction"})
    widget.update_now()
    out = tmp_path / "scores.csv"
    widget.export_csv(out)
    table = pd.read_csv(out)
    assert table["prediction"].tolist() == ["img model", "img other model"]
    assert table["n_tp"].tolist() == [2, 3]
    assert table["labels"].tolist() == ["img labels", "img labels"]
    expected = score_positions(PRED, TRUTH, pixel_size_A=0.1)
    assert table.loc[0, "recall"] == pytest.approx(expected.recall)
    assert table.loc[0, "rmse_A"] == pytest.approx(expected.rmse_A)
    assert table.loc[1, "passes"]


def test_failure_cases_centre_and_zoom_the_view(small_case):
    viewer, widget, truth, pred = small_case
    assert widget.case_list.count() == 2  # one FP, one FN
    camera = widget._camera()
    camera.zoom = 0.5
    widget.step_case(+1)
    np.testing.assert_allclose(camera.center[-2:], PRED[2])  # the FP
    assert camera.zoom > 0.5
    widget.step_case(+1)
    np.testing.assert_allclose(camera.center[-2:], TRUTH[2])  # the FN
    widget.step_case(+1)  # wraps around
    np.testing.assert_allclose(camera.center[-2:], PRED[2])
    widget.step_case(-1)
    np.testing.assert_allclose(camera.center[-2:], TRUTH[2])
    widget.case_list.setCurrentRow(0)  # picking an entry in the list
    np.testing.assert_allclose(camera.center[-2:], PRED[2])
    marker = viewer.layers["failure case"]  # the selected case is marked on the canvas
    np.testing.assert_allclose(marker.data, [PRED[2]])
    widget.step_case(+1)
    np.testing.assert_allclose(marker.data, [TRUTH[2]])
    assert widget.prediction_layers == [pred]  # the marker is not a prediction


def test_paper_compatible_toggle_and_colour_blind_palette(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((100, 100)), name="image")  # paper scoring's 1 % edge rule needs the size
    viewer.add_points([[50.0, 50.0], [50.0, 53.0]], name="labels", metadata={"pixel_size_A": 0.1})
    viewer.add_points([[50.0, 51.5], [70.0, 70.0]], name="model")
    widget = CompareWidget(viewer)
    widget.radius_A.setValue(0.2)  # 2 px
    widget.update_now()
    assert _table_cell(widget, 0, "TP") == "1" and _table_cell(widget, 0, "recall") == "0.500"
    widget.paper_check.setChecked(True)
    widget.update_now()
    # the paper's way one prediction between two labels counts twice
    assert _table_cell(widget, 0, "TP") == "2" and _table_cell(widget, 0, "recall") == "1.000"
    assert not widget.radius_A.isEnabled()
    assert len(viewer.layers["model TP"].data) == 1  # the point is drawn once

    fp = viewer.layers["model FP"]
    np.testing.assert_allclose(fp.face_color[0], _rgba(PALETTES["standard"]["FP"]))
    assert PALETTES["standard"]["FP"] in widget.legend.text()  # the overlay colours are explained
    widget.colour_check.setChecked(True)
    np.testing.assert_allclose(fp.face_color[0], _rgba(PALETTES["colour-blind safe"]["FP"]))
    assert PALETTES["colour-blind safe"]["FP"] in widget.legend.text()
    # points that appear later get the new colour too
    viewer.layers["model"].add([[80.0, 80.0]])
    widget.update_now()
    assert len(fp.data) == 2
    np.testing.assert_allclose(fp.face_color, [_rgba(PALETTES["colour-blind safe"]["FP"])] * 2)


def _rgba(hex_colour: str) -> list[float]:
    return [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)] + [1.0]


def test_without_pixel_size_the_radius_is_in_px_and_pass_is_unknown(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_points(TRUTH, name="labels")
    viewer.add_points(PRED, name="model")
    widget = CompareWidget(viewer)
    widget.update_now()
    assert widget.pixel_size_A is None and widget.radius_px.isEnabled() and not widget.radius_A.isEnabled()
    assert _table_cell(widget, 0, "RMSE Å") == "—" and _table_cell(widget, 0, "pass") == "n/a"
    widget.radius_px.setValue(0.25)  # only the 0.2 px pair is left
    widget.update_now()
    assert _table_cell(widget, 0, "TP") == "1"


def test_unchecking_or_deleting_a_prediction_removes_its_overlays(small_case):
    viewer, widget, truth, pred = small_case
    assert "img model TP" in viewer.layers
    widget.set_predictions([])
    widget.update_now()
    assert not any(OVERLAY_KEY in layer.metadata for layer in viewer.layers)
    assert widget.table_widget.rowCount() == 0
    widget.set_predictions([pred])
    widget.update_now()
    assert "img model FN" in viewer.layers
    viewer.layers.remove(pred)
    widget.update_now()
    assert not any(OVERLAY_KEY in layer.metadata for layer in viewer.layers)
    assert "labels Points layer and at least one prediction" in widget.status.text()


def test_bad_layers_are_a_message_not_a_crash(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_points(TRUTH, name="labels")
    viewer.add_points(np.zeros((0, 2)), name="empty model")
    widget = CompareWidget(viewer)
    widget.update_now()
    assert _table_cell(widget, 0, "recall") == "0.000" and _table_cell(widget, 0, "precision") == "1.000"
    viewer.add_points(np.ones((3, 3)), name="3d model", metadata={"role": "prediction"})
    widget.update_now()
    assert "3D points" in widget.status.text()
    assert widget.table_widget.rowCount() == 1  # the 2D prediction is still scored


def test_closing_stops_listening(small_case):
    viewer, widget, truth, pred = small_case
    widget.close()
    assert widget._watched == []
    pred.add([[1.0, 1.0]])
    assert not widget._timer.isActive()


def test_removing_the_dock_stops_listening(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_points(TRUTH, name="labels")
    pred = viewer.add_points(PRED, name="model")
    dock, widget = viewer.window.add_plugin_dock_widget("napari-atombench", "Compare to labels")
    assert pred in widget._watched
    viewer.window.remove_dock_widget(dock)
    assert widget._watched == []
    pred.add([[1.0, 1.0]])
    assert not widget._timer.isActive()


def test_five_models_key_columns_visible_at_1600px_rows_named_by_model(make_napari_viewer, qtbot):
    """Issue 14 item 6: recall, precision, RMSE Å and pass need no scrolling; rows are named by model."""
    from qtpy.QtWidgets import QApplication

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    viewer.add_image(np.zeros((50, 50), np.float32), name="si110_dumbbells", metadata={"pixel_size_A": 0.094})
    viewer.add_points(TRUTH, name="si110_dumbbells labels", metadata={"role": "labels"})
    models = ["atombench", "atomnet-cubic", "atomnet-hexagonal", "atomsegnet-gaussianmask", "atomnet-sim"]
    for k, model in enumerate(models):
        viewer.add_points(PRED + 0.05 * k, name=f"si110_dumbbells {model}",
                          metadata={"model": model, "role": "prediction"})
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-atombench", "Compare to labels")
    widget.update_now()
    QApplication.processEvents()
    table = widget.table_widget
    assert [table.verticalHeaderItem(r).text() for r in range(table.rowCount())] == models
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    viewport = table.viewport().width()
    for header in ("recall", "precision", "RMSE Å", "pass"):
        column = headers.index(header)
        left = table.columnViewportPosition(column)
        assert 0 <= left and left + table.columnWidth(column) <= viewport, header
    # model names are not cut
    header_view = table.verticalHeader()
    for row, model in enumerate(models):
        assert header_view.fontMetrics().horizontalAdvance(model) <= header_view.width()


def test_new_points_layers_are_not_ticked_unless_predictions(small_case):
    """Issue 14 item 10: a scratch or labels layer added later is not scored; a model's output is."""
    viewer, widget, truth, pred = small_case
    viewer.add_points(TRUTH + 1.0, name="scratch")
    viewer.add_points(TRUTH, name="other labels", metadata={"role": "labels"})
    viewer.add_points(PRED, name="img atombench", metadata={"role": "prediction", "model": "atombench"})
    widget.update_now()
    assert [layer.name for layer in widget.prediction_layers] == ["img model", "img atombench"]
    assert "scratch TP" not in viewer.layers and "other labels FP" not in viewer.layers
    assert widget.truth_layer is truth
