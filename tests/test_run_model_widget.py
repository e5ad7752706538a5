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
    widget.model.value = "atomnet-cubic"
    widget.run()
    widget.cancel()  # what the Cancel button does, before the first tile is done
    _wait(qtbot, widget)
    assert infos == ["atomnet-cubic: cancelled"] and errors == []
    assert widget.status.value == "cancelled"
    assert len(viewer.layers) == 2


class _FakeLocator:
    """Records what it was given; finds the two brightest pixels."""

    name = "fake"

    def __init__(self, seen):
        self.seen = seen

    def locate(self, image, pixel_size_A=None, *, progress=None, cancelled=None):
        from napari_atombench.models.base import LocateResult

        self.seen.append(pixel_size_A)
        for done in range(1, 4):
            progress(done, 3)
        flat = np.argsort(image, axis=None)[-2:]
        positions = np.column_stack(np.unravel_index(flat, image.shape)).astype(float)
        return LocateResult(positions, np.asarray(image, np.float32), {"model": self.name})


@pytest.fixture
def fake_model(monkeypatch):
    import napari_atombench.widgets.run_model as mod

    seen: list = []
    monkeypatch.setattr(mod, "get_locator", lambda *args, **kwargs: _FakeLocator(seen))
    return seen


def test_default_model_pixel_size_field_progress_and_rerun(make_napari_viewer, qtbot, fake_model, monkeypatch):
    """Issue 14 items 3, 7, 10: one default; pixel size read, set, written back, warned;
    progress in the dock; re-running replaces the layers; a second map starts hidden."""
    import napari_atombench.widgets.run_model as mod
    from napari_atombench._napari.session import DEFAULT_MODEL
    from napari_atombench.models import registry

    warnings: list[str] = []
    monkeypatch.setattr(mod, "show_warning", lambda msg: warnings.append(str(msg)))
    viewer = make_napari_viewer()
    image = np.zeros((32, 32), np.float32)
    image[5, 7], image[20, 9] = 1.0, 2.0
    viewer.add_image(image, name="img")  # a .npy: no pixel size
    widget = mod.RunModelWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.model.value == DEFAULT_MODEL == registry.DEFAULT_MODEL
    assert widget.pixel_size.value == 0 and "no pixel size" in widget.pixel_size_warning.value
    widget.run()
    _wait(qtbot, widget)
    assert fake_model == [None] and any("no pixel size" in w for w in warnings)
    assert widget.progress.value == widget.progress.max == 3  # progress shown in the dock itself

    widget.pixel_size.value = 0.094
    assert viewer.layers["img"].metadata["pixel_size_A"] == pytest.approx(0.094)  # written back
    assert widget.pixel_size_warning.value == ""
    n_layers = len(viewer.layers)
    widget.run()
    _wait(qtbot, widget)
    assert fake_model[-1] == pytest.approx(0.094)
    assert len(viewer.layers) == n_layers  # replaced, no "[1]" copies
    assert viewer.layers["img fake"].metadata["pixel_size_A"] == pytest.approx(0.094)

    viewer.add_image(image, name="img2", metadata={"pixel_size_A": 0.2})
    widget.image.value = viewer.layers["img2"]
    assert widget.pixel_size.value == pytest.approx(0.2)  # read from the layer
    widget.run()
    _wait(qtbot, widget)
    assert viewer.layers["img fake map"].visible and not viewer.layers["img2 fake map"].visible


def test_contrast_selector_reaches_the_model_and_its_decision_is_shown_and_kept(make_napari_viewer, qtbot,
                                                                                monkeypatch):
    """Issue 17: auto/bright/dark passed to get_locator; contrast_used in the status and the layer."""
    import napari_atombench.widgets.run_model as mod
    from napari_atombench.core.simulate import SRTIO3_100, simulate_crystal

    sim = simulate_crystal(SRTIO3_100, shape=(160, 160), species=("Sr", "TiO"), seed=2)
    viewer = make_napari_viewer()
    viewer.add_image(sim.image.max() - sim.image, name="abf", metadata={"pixel_size_A": 0.15})  # dark columns
    requested: list = []
    real_get_locator = mod.get_locator
    monkeypatch.setattr(mod, "get_locator", lambda *a, **k: requested.append(k.get("contrast")) or real_get_locator(*a, **k))
    widget = mod.RunModelWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.contrast.value == "auto"
    for choice, expected in (("auto", "dark"), ("bright", "bright")):
        widget.contrast.value = choice
        widget.run()
        _wait(qtbot, widget)
        layer = viewer.layers[f"abf {widget.model.value}"]
        assert requested[-1] == choice
        assert layer.metadata["contrast_used"] == expected and layer.metadata["contrast"] == choice
        assert f"columns: {expected}" in widget.status.value
        if choice == "auto":  # who decided: our model's vote, or the image's skewness for the others
            how = "by the model" if layer.metadata["contrast_from"] == "model" else "on the image"
            assert f"columns: dark (decided {how})" in widget.status.value


def test_light_columns_box_reaches_the_model_and_is_shown_and_kept(make_napari_viewer, qtbot, monkeypatch):
    """v3 light-columns input: the box is offered for our models only, passed to get_locator when
    ticked, and the model's choice is in the status and the layer's metadata."""
    import napari_atombench.widgets.run_model as mod
    from napari_atombench.core.simulate import simulate

    viewer = make_napari_viewer()
    viewer.add_image(simulate("srtio3_100", shape=(96, 96), seed=3).image, name="img",
                     metadata={"pixel_size_A": 0.2})
    requested: list = []
    real_get_locator = mod.get_locator
    monkeypatch.setattr(mod, "get_locator",
                        lambda *a, **k: requested.append(k.get("light_columns")) or real_get_locator(*a, **k))
    widget = mod.RunModelWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.model.value == "atombench" and not widget.light_columns.native.isHidden()
    assert not widget.light_columns.value
    widget.model.value = "atomnet-cubic"
    assert widget.light_columns.native.isHidden() and "light_columns" not in widget._options()
    widget.model.value = "atombench"
    for ticked in (False, True):
        widget.light_columns.value = ticked
        widget.run()
        _wait(qtbot, widget)
        assert requested[-1] is (True if ticked else None)
        assert viewer.layers["img atombench"].metadata["light_columns"] is ticked
        assert ("light columns counted too" in widget.status.value) is ticked
