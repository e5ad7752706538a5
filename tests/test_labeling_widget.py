"""The "Label atom columns" dock widget in a real viewer (runs under Xvfb)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from scipy.spatial import cKDTree

from napari_atombench.core.io import read_positions
from napari_atombench.core.simulate import SRTIO3_100, simulate_crystal

pytestmark = pytest.mark.gui


@pytest.fixture(autouse=True)
def _autosave_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("ATOMBENCH_AUTOSAVE_DIR", str(tmp_path / "autosave-cache"))


@pytest.fixture
def image_file(tmp_path):
    sim = simulate_crystal(SRTIO3_100, shape=(192, 192), species=("Sr", "TiO"), seed=4)
    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, sim.image, imagej=True, resolution=(1 / 0.015, 1 / 0.015), metadata={"unit": "nm"})
    return path, sim


def _widget(viewer):
    from napari_atombench.widgets.labeling import LabelingWidget

    widget = LabelingWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Label atom columns")
    return widget


def _wait_refined(qtbot, widget, method):
    worker = widget.refine(method)
    assert worker is not None
    qtbot.waitUntil(lambda: not widget.busy, timeout=30000)
    return worker


def test_widget_opens_from_the_plugin_menu(make_napari_viewer):
    from napari_atombench.widgets.labeling import LabelingWidget

    viewer = make_napari_viewer()
    viewer.open_sample("napari-atombench", "ws2")
    _, widget = viewer.window.add_plugin_dock_widget("napari-atombench", "Label atom columns")
    assert isinstance(widget, LabelingWidget)
    assert widget.image_layer.name == "ws2_monolayer"
    assert widget.labels_layer().name == "ws2_monolayer labels"


def test_seed_snap_refine_save(make_napari_viewer, qtbot, image_file, tmp_path):
    path, sim = image_file
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-atombench")
    widget = _widget(viewer)
    assert widget.image_layer.name == "scan"

    # seed: creates "<image> labels" with one point per column
    layer = widget.seed()
    assert layer.name == "scan labels"
    distance, _ = cKDTree(layer.data).query(sim.positions_rc)
    assert np.mean(distance < 2.0) >= 0.98
    assert set(layer.features["status"]) == {"unrefined"}

    # a click 2.5 px off an unlabelled column lands on it (snap on add)
    target = sim.positions_rc[len(sim.positions_rc) // 2]
    layer.data = layer.data[np.hypot(*(layer.data - target).T) > 3]  # forget that column
    n_before = len(layer.data)
    layer.add(target + [2.0, -1.5])
    assert len(layer.data) == n_before + 1
    assert np.hypot(*(layer.data[-1] - target)) < 0.7
    assert layer.features["status"].iloc[-1] == "unrefined"

    # refine in a worker: positions move in place, features set, colours by status
    before = np.array(layer.data)
    _wait_refined(qtbot, widget, "gaussian")
    assert len(layer.data) == len(before)
    for column in ("amplitude", "sigma_px", "background", "uncertainty_px", "status"):
        assert column in layer.features.columns
    assert (layer.features["status"] == "converged").mean() > 0.9
    distance, _ = cKDTree(sim.positions_rc).query(layer.data)
    assert np.median(distance) < 0.3
    assert not np.allclose(layer.data, before)
    assert np.allclose(layer.face_color[0], [0.18, 0.8, 0.25, 1.0], atol=0.05)  # converged = green

    # undo restores the positions before the refinement
    widget.undo()
    np.testing.assert_allclose(layer.data, before)
    _wait_refined(qtbot, widget, "joint")
    assert (layer.features["status"] == "converged").mean() > 0.9

    # review filter: a point on an (unrendered) oxygen site, i.e. background, is doubtful
    sr = sim.positions_rc[sim.species == "Sr"]
    oxygen_site = sr[np.argmin(np.hypot(*(sr - 96.0).T))] + [0.0, 0.5 * 3.905 / 0.15]
    layer.data = np.vstack([layer.data, [oxygen_site]])
    _wait_refined(qtbot, widget, "gaussian")
    assert widget.select_doubtful() >= 1
    assert len(layer.data) - 1 in layer.selected_data

    # save with features, reload through core
    out = widget.save_labels(str(tmp_path / "labels.csv"))
    table = read_positions(out)
    np.testing.assert_allclose(table.positions_rc, layer.data, atol=1e-5)
    assert table.pixel_size_A == pytest.approx(0.15)
    assert {"status", "amplitude", "uncertainty_px"} <= set(table.features.columns)


def test_cancel_leaves_labels_unchanged(make_napari_viewer, qtbot, image_file, monkeypatch):
    import time

    from napari_atombench.widgets import labeling

    real = labeling.refine_positions

    def wait_for_cancel(image, positions, method, *, dark, progress, cancelled):
        deadline = time.monotonic() + 10
        while not cancelled() and time.monotonic() < deadline:  # the user is slower than the worker
            time.sleep(0.01)
        return real(image, positions, method, dark=dark, progress=progress, cancelled=cancelled)

    monkeypatch.setattr(labeling, "refine_positions", wait_for_cancel)
    path, sim = image_file
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-atombench")
    widget = _widget(viewer)
    layer = widget.seed()
    before = np.array(layer.data)
    worker = widget.refine("gaussian")
    widget.cancel()
    qtbot.waitUntil(lambda: not widget.busy, timeout=30000)
    assert worker is not None
    np.testing.assert_array_equal(layer.data, before)
    assert "cancelled" in widget._status.value


def test_autosave_and_restore(make_napari_viewer, qtbot, image_file):
    path, sim = image_file
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-atombench")
    widget = _widget(viewer)
    layer = widget.seed()
    layer.add([50.0, 60.0])
    autosave = widget.autosave_path()
    assert autosave == path.with_name("scan.tif.atombench-labels.csv")  # sidecar next to the image
    qtbot.waitUntil(autosave.exists, timeout=5000)  # debounced write, no explicit call
    qtbot.waitUntil(lambda: len(read_positions(autosave)) == len(layer.data), timeout=5000)
    saved = np.array(layer.data)

    # the session ends; the same image is opened again in a new viewer
    viewer.layers.clear()
    viewer.open(str(path), plugin="napari-atombench")
    assert widget._restore_button.enabled
    restored = widget.restore_autosave()
    assert restored.name == "scan labels"
    np.testing.assert_allclose(restored.data, saved, atol=1e-5)
    assert "status" in restored.features.columns


def test_autosave_of_image_without_file_goes_to_cache(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    sim = simulate_crystal(SRTIO3_100, shape=(128, 128), species=("Sr",), seed=2)
    viewer.add_image(sim.image, name="in memory")
    widget = _widget(viewer)
    widget.seed()
    path = widget.autosave_now()
    assert path is not None and path.parent == tmp_path / "autosave-cache"
    assert len(read_positions(path)) == len(widget.labels_layer().data)


def test_refine_without_labels_reports_error(make_napari_viewer):
    from napari_atombench.widgets.labeling import LabelingWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((32, 32), dtype=np.float32), name="blank")
    widget = LabelingWidget(viewer)
    assert widget.refine() is None
    assert widget.seed() is None  # no periodic structure: an error notification, no crash



def test_pixel_size_field_reads_and_writes_the_layer(make_napari_viewer, image_file):
    """Issue 14 item 3: the Label dock shows the image's pixel size and the user can set one."""
    path, _sim = image_file
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-atombench")
    viewer.add_image(np.zeros((32, 32), np.float32), name="raw")  # a .npy-like image: no pixel size
    widget = _widget(viewer)
    widget._image_combo.value = "scan"
    assert widget._pixel_size.value == pytest.approx(0.15)  # 0.015 nm from the TIFF
    widget._image_combo.value = "raw"
    assert widget._pixel_size.value == 0
    widget._pixel_size.value = 0.094
    assert viewer.layers["raw"].metadata["pixel_size_A"] == pytest.approx(0.094)
    widget._image_combo.value = "scan"
    widget._image_combo.value = "raw"
    assert widget._pixel_size.value == pytest.approx(0.094)


def test_dumbbell_separation_shown_overridable_and_snap_keeps_the_column(make_napari_viewer):
    """Issue 14 item 4: separation shown and overridable; a click never snaps onto the pair partner."""
    from test_peaks_refine import _dumbbells

    image, truth = _dumbbells()
    viewer = make_napari_viewer()
    viewer.add_image(image, name="si")
    widget = _widget(viewer)
    widget._image_combo.value = "si"
    pair_px = np.median(cKDTree(truth).query(truth, k=2)[0][:, 1])
    separation = widget.separation_px()
    assert 0.8 * pair_px <= separation <= 1.1 * pair_px
    assert f"{separation:.1f} px (estimated" in widget._separation_info.value
    layer = widget.labels_layer(create=True)
    rng = np.random.default_rng(1)
    inside = truth[(truth > 20).all(axis=1) & (truth < np.array(image.shape) - 20).all(axis=1)]
    wrong = 0
    for column in inside[rng.choice(len(inside), 40, replace=False)]:
        angle = rng.uniform(0, 2 * np.pi)
        click = column + 0.3 * pair_px * np.array([np.sin(angle), np.cos(angle)])  # a sloppy click
        layer.add(click)
        snapped = layer.data[-1]
        wrong += int(np.argmin(np.hypot(*(truth - snapped).T)) != np.argmin(np.hypot(*(truth - column).T)))
    assert wrong == 0
    widget._separation.value = 20.0  # the user's value wins
    assert widget.separation_px() == 20.0 and "20.0 px (yours)" in widget._separation_info.value


def test_undo_covers_hand_edits_in_order(make_napari_viewer, qtbot, image_file):
    """Issue 14 item 13: seed, hand add, hand move, hand delete, refine - undone one by one, in order."""
    path, _sim = image_file
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-atombench")
    widget = _widget(viewer)
    widget._snap.value = False
    layer = widget.seed()
    states = [np.array(layer.data)]
    layer.add([50.0, 50.0])  # hand add
    states.append(np.array(layer.data))
    moved = np.array(layer.data)
    moved[0] += [1.5, -1.0]
    layer.data = moved  # hand move (what a drag writes)
    states.append(np.array(layer.data))
    layer.selected_data = {1, 2}
    layer.remove_selected()  # hand delete
    states.append(np.array(layer.data))
    _wait_refined(qtbot, widget, "gaussian")
    assert not np.array_equal(layer.data, states[-1])
    for expected in reversed(states):
        widget.undo()
        np.testing.assert_array_equal(layer.data, expected)
    widget.undo()  # before the seed: empty
    assert len(layer.data) == 0


def test_labels_csv_opened_with_file_open_is_the_image_labels(make_napari_viewer, tmp_path, image_file):
    """Issue 14 items 11, 12: <image>_labels.csv from File > Open is used by the dock; the colours have a legend."""
    from napari_atombench.core.io import write_positions

    path, sim = image_file
    csv = write_positions(tmp_path / "scan_labels.csv", sim.positions_rc, 0.15)
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-atombench")
    viewer.open(str(csv), plugin="napari-atombench")
    widget = _widget(viewer)
    widget._image_combo.value = "scan"
    assert widget.labels_layer() is viewer.layers["scan_labels"]
    n = len(viewer.layers["scan_labels"].data)
    assert widget.seed() is viewer.layers["scan_labels"]  # seeds join it, no second labels layer
    assert "scan labels" not in viewer.layers and len(viewer.layers["scan_labels"].data) >= n
    assert "converged" in widget._legend.value and "fell back" in widget._legend.value
    widget._colour_by.value = "uncertainty_px"
    assert "viridis" in widget._legend.value


def test_refine_reasons_in_features_status_and_csv(make_napari_viewer, qtbot, image_file, tmp_path):
    from napari_atombench.widgets._state import refine_summary

    path, sim = image_file
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-atombench")
    widget = _widget(viewer)
    layer = widget.seed()
    # points between columns (no column there) cannot converge: they fall back or are rejected
    sr = sim.positions_rc[sim.species == "Sr"]
    centre = sr[np.argmin(np.hypot(*(sr - 96.0).T))]
    empty_sites = centre + np.array([[0.0, 0.5], [0.5, 0.0], [-0.5, 0.0]]) * 3.905 / 0.15
    layer.data = np.vstack([layer.data, empty_sites])
    _wait_refined(qtbot, widget, "gaussian")

    features = layer.features
    assert "reason" in features.columns
    failed = (features["status"] != "converged").to_numpy()
    assert failed[-3:].any()
    assert (features["reason"][failed] != "").all() and (features["reason"][~failed] == "").all()
    status_text = widget._status.native.toolTip()  # the label shows it wrapped, the tooltip all of it
    assert status_text == refine_summary(features["status"], features["reason"])
    for reason in set(features["reason"][failed]):
        assert reason in status_text

    layer.add(sim.positions_rc[0] + 0.3)  # a hand-added point has no reason yet
    assert layer.features["reason"].iloc[-1] == ""
    out = widget.save_labels(str(tmp_path / "labels.csv"))
    table = read_positions(out)
    assert list(table.features["reason"].fillna("")) == list(layer.features["reason"])


def test_plugin_docked_label_dock_snaps_clicks(make_napari_viewer, image_file):
    """Regression: docks get napari's viewer proxy; through it the labels layer was a new wrapper
    each time, so ``layer is self.labels_layer()`` failed and no click was ever snapped."""
    path, sim = image_file
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-atombench")
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-atombench", "Label atom columns")
    layer = widget.seed()
    target = sim.positions_rc[len(sim.positions_rc) // 2]
    layer.data = layer.data[np.hypot(*(layer.data - target).T) > 3]
    layer.add(target + [2.0, -1.5])
    assert np.hypot(*(layer.data[-1] - target)) < 0.7
