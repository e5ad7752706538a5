"""The reader, writer and sample data through a real napari viewer (runs under Xvfb)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_atombench.core.io import read_positions, write_positions

pytestmark = pytest.mark.gui


def test_manifest_is_valid():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-atombench")
    assert manifest.name == "napari-atombench"
    assert {s.key for s in manifest.contributions.sample_data} == {"srtio3", "ws2"}


def test_open_sample_in_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-atombench", "srtio3")
    names = [layer.name for layer in viewer.layers]
    assert names == ["srtio3_100", "srtio3_100 labels"]
    image, labels = viewer.layers
    assert image.data.shape == (256, 256)
    assert image.metadata["pixel_size_A"] == pytest.approx(0.15)
    assert tuple(image.scale) == (1.0, 1.0)  # scale stays in pixels
    assert len(labels.data) == 181
    assert set(labels.features["species"]) == {"Sr", "TiO"}


def test_reader_opens_tiff_with_pixel_size_and_csv_as_points(make_napari_viewer, tmp_path):
    image = (np.random.default_rng(1).random((32, 48)) * 100).astype(np.float32)
    tif = tmp_path / "scan.tif"
    tifffile.imwrite(tif, image, imagej=True, resolution=(40.0, 40.0), metadata={"unit": "nm"})
    csv = tmp_path / "scan_labels.csv"
    write_positions(csv, [[3.0, 40.0], [30.0, 2.0]], pixel_size_A=0.25, features={"species": ["A", "B"]})

    viewer = make_napari_viewer()
    viewer.open(str(tif), plugin="napari-atombench")
    viewer.open(str(csv), plugin="napari-atombench")
    layer_image, layer_points = viewer.layers
    np.testing.assert_array_equal(layer_image.data, image)
    assert layer_image.metadata["pixel_size_A"] == pytest.approx(0.25)
    assert layer_points._type_string == "points"
    np.testing.assert_allclose(layer_points.data, [[3.0, 40.0], [30.0, 2.0]])  # (row, col)
    assert list(layer_points.features["species"]) == ["A", "B"]


def test_reader_opens_stack_as_3d_layer(make_napari_viewer, tmp_path):
    path = tmp_path / "stack.npy"
    np.save(path, np.zeros((4, 16, 16), dtype=np.float32))
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-atombench")
    assert viewer.layers[0].data.shape == (4, 16, 16)


def test_reader_declines_foreign_csv(tmp_path):
    from napari_atombench._napari.reader import get_reader

    other = tmp_path / "table.csv"
    other.write_text("temperature,pressure\n1,2\n")
    assert get_reader(str(other)) is None
    assert get_reader(str(tmp_path / "movie.avi")) is None


def test_writer_saves_points_layer_as_labels_csv(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-atombench", "ws2")
    labels = viewer.layers["ws2_monolayer labels"]
    labels.data = np.vstack([labels.data, [[100.5, 50.25]]])  # a user adds a point
    out = tmp_path / "saved.csv"
    labels.save(str(out), plugin="napari-atombench")
    assert out.exists()
    table = read_positions(out)
    np.testing.assert_allclose(table.positions_rc, labels.data, atol=1e-6)
    assert table.pixel_size_A == pytest.approx(0.15)
    header = out.read_text().splitlines()[0].split(",")
    assert header[:4] == ["x_px", "y_px", "x_A", "y_A"] and "species" in header
