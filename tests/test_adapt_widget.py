"""The "Adapt model to labels" dock in a real viewer (Xvfb): label a region, adapt, run,
compare; split into classes and compare per class."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_atombench.core import simulate as sim

pytestmark = pytest.mark.gui
torch.set_num_threads(1)


@pytest.fixture
def errors(monkeypatch):
    import napari_atombench.widgets.adapt as mod

    seen: list[str] = []
    monkeypatch.setattr(mod, "show_error", lambda msg: seen.append(str(msg)))
    return seen


def test_label_region_adapt_run_compare_and_split(make_napari_viewer, qtbot, monkeypatch, tmp_path, errors):
    from napari_atombench.widgets.adapt import AdaptWidget

    monkeypatch.setenv("ATOMBENCH_USER_MODELS_DIR", str(tmp_path))
    s = sim.simulate("srtio3_100", shape=(160, 160), pixel_size_pm=20, resolution_pm=90, dose_e_per_A2=2e3, seed=3,
                     rotation_deg=5)
    image = -s.image  # inverted contrast: unseen by the shipped model
    viewer = make_napari_viewer()
    img = viewer.add_image(image, name="sto", metadata={"pixel_size_A": 0.2})
    viewer.add_points(s.positions_rc, name="sto labels", metadata={"role": "ground truth"})
    region = (-0.5, -0.5, 79.5, 79.5)  # pixel edges: the rectangle covers pixels 0..79
    inside = (s.positions_rc < 79.5).all(axis=1)
    hand = viewer.add_points(s.positions_rc[inside], name="hand (region)")
    viewer.add_shapes([np.array([[region[0], region[1]], [region[2], region[3]]])], shape_type="rectangle",
                      name="region")
    _, widget = viewer.window.add_plugin_dock_widget("napari-atombench", "Adapt model to labels")
    assert isinstance(widget, AdaptWidget)
    widget.image.value = img
    widget.labels.value = hand
    widget.region.value = viewer.layers["region"]
    widget.steps.value = 40
    worker = widget.adapt()
    assert worker is not None
    qtbot.waitUntil(lambda: widget.adapt_button.enabled, timeout=300_000)
    assert errors == []
    name = "sto atombench adapted"
    adapted = viewer.layers[name]
    card = adapted.metadata["adapted"]
    assert card["region_rc"] == [0, 0, 80, 80] and card["n_labels"] == int(inside.sum())
    assert (tmp_path / "sto-atombench-adapted.pt").is_file()
    compare = widget.compare_widget
    assert compare.truth_layer.name == "sto labels"
    assert list(compare.results) == [name]
    assert compare.results[name].score.f1 >= 0.9

    # split the adapted columns into sublattices, scored per class against the labels' classes
    widget.split_layer.value = adapted
    widget.split_reference.value = viewer.layers["sto labels"]
    added = widget.split()
    assert [layer.name for layer in added] == [f"{name} class 0", f"{name} class 1"]
    assert "sto labels class 0" in viewer.layers and "sto labels class 1" in viewer.layers
    assert sorted(compare.results) == [f"{name} class 0", f"{name} class 1"]
    assert list(compare.table["labels"]) == ["sto labels class 0", "sto labels class 1"]
    # dark columns are mirrored to bright before measuring: the brighter class 1 is the heavy Sr sublattice
    sr = s.positions_rc[s.species == "Sr"]
    truth1 = np.asarray(viewer.layers["sto labels class 1"].data)
    assert len(truth1) == len(sr)
    for layer in added:
        assert compare.results[layer.name].score.f1 >= 0.9
        assert compare.results[layer.name].score.n_truth == len(viewer.layers[layer.metadata["truth_layer"]].data)


@pytest.mark.parametrize("dock", ["Run model", "Label atom columns"])
def test_label_and_run_docks_split_into_classes_scored_per_class(make_napari_viewer, dock):
    """The same "Split into classes" controls sit in the Label and Run docks: a prediction
    and its labels are split alike and the Compare dock shows one row per class."""
    s = sim.simulate("srtio3_100", shape=(160, 160), pixel_size_pm=15, resolution_pm=80, dose_e_per_A2=1e4, seed=2)
    viewer = make_napari_viewer()
    viewer.add_image(s.image, name="sto", metadata={"pixel_size_A": 0.15})
    labels = viewer.add_points(s.positions_rc, name="sto labels", metadata={"role": "ground truth"})
    rng = np.random.default_rng(0)
    pred = viewer.add_points(s.positions_rc + rng.normal(0, 0.2, s.positions_rc.shape), name="sto model",
                             metadata={"role": "prediction"})
    names = {"Run model": "Run atom-locating model", "Label atom columns": "Label atom columns"}
    _, widget = viewer.window.add_plugin_dock_widget("napari-atombench", names[dock])
    splitter = widget.splitter
    splitter.layer.value = pred
    splitter.reference.value = labels
    added = splitter.split()
    assert [layer.name for layer in added] == ["sto model class 0", "sto model class 1"]
    compare = splitter.compare_widget
    assert sorted(compare.results) == ["sto model class 0", "sto model class 1"]
    sr = (s.species == "Sr").sum()
    assert len(viewer.layers["sto labels class 1"].data) == sr  # Sr: the brighter class
    for layer in added:
        assert compare.results[layer.name].score.f1 == 1.0
        assert compare.results[layer.name].score.n_truth == len(viewer.layers[layer.metadata["truth_layer"]].data)
