"""The main job (`atombench view` / `make run`): image, model run, live comparison."""

from __future__ import annotations

import pytest

from napari_atombench._napari.session import open_session

pytestmark = pytest.mark.gui


def test_session_runs_model_and_docks_comparison(make_napari_viewer, shared_dir, monkeypatch):
    monkeypatch.setenv("ATOMBENCH_WEIGHTS_DIR", str(shared_dir / "weights"))
    viewer = make_napari_viewer()
    widgets = open_session(viewer, sample="srtio3", model="atomnet-cubic", wait=True)
    names = [layer.name for layer in viewer.layers]
    assert "srtio3_100 atomnet-cubic" in names
    assert "srtio3_100 atomnet-cubic TP" in names
    prediction = viewer.layers["srtio3_100 atomnet-cubic"]
    assert len(prediction.data) > 100
    table = widgets["compare"].table  # the metric table as a DataFrame
    assert len(table) == 1
    assert 0 < int(table["n_tp"].iloc[0]) <= 181


def test_session_without_model_only_opens_data(make_napari_viewer):
    viewer = make_napari_viewer()
    assert open_session(viewer, sample="ws2", model=None) == {}
    assert [layer.name for layer in viewer.layers] == ["ws2_monolayer", "ws2_monolayer labels"]


def test_session_unknown_model_is_reported(make_napari_viewer, monkeypatch):
    from napari_atombench._napari import session

    errors = []
    monkeypatch.setattr("napari.utils.notifications.show_error", errors.append)
    viewer = make_napari_viewer()
    assert session.open_session(viewer, model="no-such-model") == {}
    assert errors and "no-such-model" in errors[0]
