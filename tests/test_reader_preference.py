"""File > Open / drag-and-drop use our reader for our image formats (issue 14 item 12)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

pytestmark = pytest.mark.gui


@pytest.fixture
def tif_with_pixel_size(tmp_path):
    path = tmp_path / "scan.tif"
    image = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    tifffile.imwrite(path, image, imagej=True, resolution=(1 / 0.021, 1 / 0.021), metadata={"unit": "nm"})
    return path


def _no_dialog(monkeypatch):
    """Record reader dialogs instead of blocking on them; the user 'chooses' napari's builtin reader."""
    asked = []

    def choose(self):
        asked.append(self)
        return "napari builtins", False

    monkeypatch.setattr("napari._qt.dialogs.qt_reader_dialog.QtReaderDialog.get_user_choices", choose)
    return asked


def test_manifest_activation_makes_our_reader_the_default(make_napari_viewer):
    import npe2

    from napari_atombench._napari import reader_preference

    make_napari_viewer()  # resets napari's settings
    manifest = npe2.PluginManager.instance().get_manifest("napari-atombench")
    module, _, name = manifest.on_activate.partition(":")
    assert getattr(__import__(module, fromlist=[name]), name) is reader_preference.prefer_our_reader
    from napari.settings import get_settings

    added = reader_preference.prefer_our_reader()
    assert set(added) == set(reader_preference.PREFERRED_PATTERNS) and "*.tif" in added
    assert get_settings().plugins.extension2reader["*.tif"] == "napari-atombench"
    assert "*.csv" not in get_settings().plugins.extension2reader


def test_file_open_keeps_the_pixel_size(make_napari_viewer, tif_with_pixel_size, monkeypatch):
    from napari_atombench._napari.layers import layer_pixel_size_A
    from napari_atombench._napari.reader_preference import prefer_our_reader

    viewer = make_napari_viewer()
    asked = _no_dialog(monkeypatch)
    prefer_our_reader()
    viewer.window._qt_viewer._qt_open([str(tif_with_pixel_size)], stack=False)  # File > Open and drops
    assert not asked
    assert len(viewer.layers) == 1
    assert layer_pixel_size_A(viewer.layers[0]) == pytest.approx(0.21)


def test_a_users_own_reader_choice_is_kept(make_napari_viewer, tif_with_pixel_size, monkeypatch):
    from napari.settings import get_settings

    from napari_atombench._napari.reader_preference import prefer_our_reader

    viewer = make_napari_viewer()
    get_settings().plugins.extension2reader = {"*.tif": "napari"}
    assert "*.tif" not in prefer_our_reader()
    assert get_settings().plugins.extension2reader["*.tif"] == "napari"
    asked = _no_dialog(monkeypatch)
    viewer.window._qt_viewer._qt_open([str(tif_with_pixel_size)], stack=False)
    assert not asked and "pixel_size_A" not in viewer.layers[0].metadata
