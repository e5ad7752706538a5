"""Compare dock: live updates re-score only what changed and equal a full recompute
(issue 14 item 14); layers reach plugin docks through napari's proxies (regression)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atombench.core.metrics import compare_positions
from napari_atombench.core.perturb import perturb_positions
from napari_atombench.widgets.compare import CompareWidget

pytestmark = pytest.mark.gui

PIXEL_SIZE_A = 0.15


def _lattice(n_side=20, spacing=8.0):
    rows, cols = np.divmod(np.arange(n_side * n_side), n_side)
    return (np.stack([rows, cols], axis=1) + 1.0) * spacing, (int((n_side + 2) * spacing),) * 2


def _expected(widget, pred_layer, truth):
    return compare_positions(np.asarray(pred_layer.data), truth, pixel_size_A=PIXEL_SIZE_A,
                             max_distance_A=widget.radius_A.value(), max_distance_px=None,
                             paper_compatible=widget.paper_check.isChecked(),
                             border_margin_px=widget.margin_px.value(), image_shape=widget.image_layer.data.shape)


def test_random_edits_rescore_only_the_edited_layer_and_equal_a_full_recompute(make_napari_viewer, qtbot):
    truth, shape = _lattice()
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros(shape, np.float32), name="img", metadata={"pixel_size_A": PIXEL_SIZE_A})
    viewer.add_points(truth, name="img labels", size=3)
    preds = [viewer.add_points(perturb_positions(truth, jitter_px=0.6, miss_fraction=0.05, spurious_fraction=0.05,
                                                 shape=shape, seed=k).positions_rc,
                               name=f"img model {k}", size=3, metadata={"role": "prediction"}) for k in range(3)]
    widget = CompareWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.update_now()
    rng = np.random.default_rng(7)
    for step in range(12):
        layer = preds[rng.integers(len(preds))]
        data = np.asarray(layer.data).copy()
        kind = step % 3
        if kind == 0:
            data[rng.integers(len(data))] += rng.normal(0, 2.5, 2)
        elif kind == 1:
            data = np.vstack([data, rng.random((1, 2)) * shape])
        else:
            data = np.delete(data, rng.integers(len(data)), axis=0)
        computed_before = widget.cache.computed
        layer.data = data  # like a mouse edit: a data event, then the debounced update
        qtbot.waitUntil(lambda: widget.cache.computed > computed_before, timeout=5000)
        qtbot.wait(2 * 20)
        assert widget.cache.computed == computed_before + 1  # only the edited layer was re-scored
        for pred in preds:
            expected = _expected(widget, pred, truth)
            got = widget.results[pred.name]
            assert got.score == expected.score
            for attribute in ("tp_pred_index", "fp_index", "fn_index"):
                np.testing.assert_array_equal(getattr(got, attribute), getattr(expected, attribute))
    # an option change re-scores every layer
    computed_before = widget.cache.computed
    widget.radius_A.setValue(widget.radius_A.value() * 0.6)
    widget.update_now()
    assert widget.cache.computed == computed_before + len(preds)
    assert all(widget.results[p.name].score == _expected(widget, p, truth).score for p in preds)


def test_a_single_finished_edit_is_scored_before_the_canvas_repaints(make_napari_viewer, qtbot):
    """Mouse release -> table without waiting for the debounce timer (the repaint the edit
    queues takes most of a second for 10^4 points under software OpenGL); a burst of edits
    right after it still goes through the timer and ends in one update."""
    truth, shape = _lattice(8)
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros(shape, np.float32), name="img", metadata={"pixel_size_A": PIXEL_SIZE_A})
    viewer.add_points(truth, name="img labels", size=3)
    pred = viewer.add_points(truth + 0.2, name="img model", size=3, metadata={"role": "prediction"})
    widget = CompareWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.update_now()
    qtbot.wait(50)
    pred.data = np.asarray(pred.data)[1:]  # no event loop turn between the edit and the check
    assert widget.results["img model"].score.n_pred == len(truth) - 1
    assert widget.results["img model"].score == _expected(widget, pred, truth).score
    computed = widget.cache.computed
    widget.schedule_update()  # an update already pending (the timer runs only in the event loop)
    pred.data = np.asarray(pred.data)[1:]  # edits while it is pending: a burst, one update later
    pred.data = np.asarray(pred.data)[1:]
    assert widget._timer.isActive() and widget.cache.computed == computed
    qtbot.waitUntil(lambda: widget.cache.computed == computed + 1, timeout=5000)
    assert widget.results["img model"].score.n_pred == len(truth) - 3


def test_a_drag_in_progress_does_not_rescore(make_napari_viewer, qtbot):
    truth, shape = _lattice(6)
    viewer = make_napari_viewer()
    viewer.add_points(truth, name="labels", size=3, metadata={"role": "labels"})
    pred = viewer.add_points(truth + 0.3, name="model", size=3, metadata={"role": "prediction"})
    widget = CompareWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.update_now()
    computed = widget.cache.computed
    pred.events.data(value=pred.data, action="changing", data_indices=(0,), vertex_indices=((),))
    qtbot.wait(100)
    assert widget.cache.computed == computed and not widget._timer.isActive()


def test_set_predictions_with_real_layers_on_a_plugin_dock_behind_proxies(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-atombench", "srtio3")
    labels = viewer.layers[1]
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-atombench", "Compare to labels")
    from napari.utils._proxies import PublicOnlyProxy

    # layers a plugin adds through the viewer it was handed come back as napari proxies, with their own id()
    plugin_viewer = PublicOnlyProxy(viewer)
    models = [plugin_viewer.add_points(labels.data + 0.2 * k, name=f"srtio3_100 m{k}",
                                       metadata={"role": "prediction"}) for k in (1, 2)]
    real = viewer.layers[models[1].name]
    assert type(models[1]).__name__ == "PublicOnlyProxy" and id(models[1]) != id(real)
    widget.set_predictions([models[1]])
    assert [layer.name for layer in widget.prediction_layers] == [models[1].name]
    widget.update_now()
    assert list(widget.results) == [models[1].name]


def test_pixel_size_follows_the_one_rule_and_says_when_sources_disagree(make_napari_viewer):
    truth, shape = _lattice(6)
    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros(shape, np.float32), name="img")
    labels = viewer.add_points(truth, name="img labels", metadata={"role": "labels"})
    viewer.add_points(truth + 0.3, name="img model", metadata={"role": "prediction", "pixel_size_A": 0.2})
    widget = CompareWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.update_now()
    assert widget.pixel_size_A == pytest.approx(0.2)  # only the prediction knows it
    labels.metadata["pixel_size_A"] = 0.25
    widget.update_now()
    assert widget.pixel_size_A == pytest.approx(0.25)  # labels before predictions
    assert "labels says 0.25" in widget.status.toolTip() and "predictions says 0.2" in widget.status.toolTip()
    image.metadata["pixel_size_A"] = 0.25
    labels.metadata["pixel_size_A"] = 0.25
    widget.update_now()
    assert widget.pixel_size_A == pytest.approx(0.25) and "predictions says 0.2" in widget.status.toolTip()
