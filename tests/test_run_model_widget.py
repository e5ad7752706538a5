"""The "Run atom-locating model" dock widget in a real viewer (Xvfb)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.gui
torch.set_num_threads(1)


def _wait(qtbot, widget, timeout=120_000):
    assert widget.worker is not None
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=timeout)


@pytest.fixture
def errors(monkeypatch):
    """Capture napari error notifications shown by the widget."""
    import napari_atombench.widgets.run_model as mod

    seen: list[str] = []
    monkeypatch.setattr(mod, "show_error", lambda msg: seen.append(str(msg)))
    return seen


def test_cubic_on_srtio3_adds_map_and_points(make_napari_viewer, qtbot, shared_dir, monkeypatch, errors):
    from napari_atombench.widgets.run_model import RunModelWidget

    monkeypatch.setenv("ATOMBENCH_NO_DOWNLOAD", "1")
    viewer = make_napari_viewer()
    viewer.open_sample("napari-atombench", "srtio3")
    widget = RunModelWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Run atom-locating model")
    widget.image.value = viewer.layers["srtio3_100"]
    widget.model.value = "atomnet-cubic"
    widget.weights.value = shared_dir / "weights" / "cubic-best_weights.pt"
    assert widget.threshold.enabled  # AtomNet has a threshold
    widget.run()
    _wait(qtbot, widget)
    assert errors == []
    points = viewer.layers["srtio3_100 atomnet-cubic"]
    prob = viewer.layers["srtio3_100 atomnet-cubic map"]
    assert prob.data.shape == (256, 256)
    assert 0 <= prob.data.min() and prob.data.max() <= 1
    assert len(points.data) > 100
    assert points.metadata["model"] == "atomnet-cubic"
    assert points.metadata["weights_sha256"].startswith("dc305d6f")
    assert points.metadata["image_layer"] == "srtio3_100"
    # the found columns sit on the labelled ones
    labels = viewer.layers["srtio3_100 labels"].data
    d = np.sqrt(((labels[:, None] - points.data[None]) ** 2).sum(-1)).min(axis=1)
    assert np.median(d) < 1.0
    widget.model.value = "atomsegnet-gaussianmask"
    assert not widget.threshold.enabled


def test_worker_errors_become_notifications(make_napari_viewer, qtbot, monkeypatch, tmp_path, errors):
    from napari_atombench.widgets.run_model import RunModelWidget

    monkeypatch.setenv("ATOMBENCH_NO_DOWNLOAD", "1")
    monkeypatch.delenv("ATOMBENCH_WEIGHTS_DIR", raising=False)
    monkeypatch.setattr("napari_atombench.models.registry.cache_dir", lambda: tmp_path)
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).random((64, 64)).astype(np.float32), name="img")
    widget = RunModelWidget(viewer)
    widget.image.value = viewer.layers["img"]
    widget.model.value = "atomnet-hexagonal"  # weights not available offline
    widget.run()
    _wait(qtbot, widget)
    assert len(errors) == 1 and "G-Si-DFT0-1-4-best_weights.pt" in errors[0]
    assert "ATOMBENCH_WEIGHTS_DIR" in errors[0]
    # a NaN image, with weights present
    nan = np.ones((64, 64), dtype=np.float32)
    nan[3, 3] = np.nan
    viewer.add_image(nan, name="nan")
    widget.image.value = viewer.layers["nan"]
    widget.model.value = "atomnet-cubic"
    widget.weights.value = tmp_path / "missing.pt"
    widget.run()
    _wait(qtbot, widget)
    assert len(errors) == 2 and "does not exist" in errors[1]
    assert [layer.name for layer in viewer.layers] == ["img", "nan"]  # nothing added


def test_cancel_stops_the_run_without_layers(make_napari_viewer, qtbot, shared_dir, monkeypatch, errors):
    import napari_atombench.widgets.run_model as mod
    from napari_atombench.widgets.run_model import RunModelWidget

    infos: list[str] = []
    monkeypatch.setattr(mod, "show_info", lambda msg: infos.append(str(msg)))
    viewer = make_napari_viewer()
    viewer.open_sample("napari-atombench", "srtio3")
    widget = RunModelWidget(viewer)
    widget.image.value = viewer.layers["srtio3_100"]
    widget.weights.value = shared_dir / "weights" / "cubic-best_weights.pt"
    widget.tile_size.value = 128
    monkeypatch.setattr(widget._cancel, "clear", lambda: None)  # keep the cancel request
    widget.cancel()  # what the Cancel button does
    widget.run()
    _wait(qtbot, widget)
    assert infos == ["atomnet-cubic: cancelled"] and errors == []
    assert widget.status.value == "cancelled"
    assert len(viewer.layers) == 2
