"""The first hour of a microscopist on a real dev image, every dock in one real viewer (issue 14).

open (File > Open path) -> pixel size -> seed -> add (snapped) / move / delete -> refine with
all three methods -> undo -> save -> run two shipped models -> compare (the table equals
core.metrics on the same inputs) -> benchmark two cases one after the other (each scored
against its own labels).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from qtpy.QtCore import Qt
from scipy.spatial import cKDTree

from napari_atombench.core.io import read_positions
from napari_atombench.core.metrics import score_positions

pytestmark = pytest.mark.gui

PIXEL_SIZE_A = 0.094  # si110_dumbbells (cases.csv); the .npy carries none


def _wait_worker(qtbot, worker, timeout=300_000):
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=timeout):
        pass
    qtbot.wait(20)


def _scores_in(compare, prediction, truth_rc, pixel_size_A):
    """What core.metrics says for the dock's inputs and options."""
    image = compare.image_layer
    return score_positions(np.asarray(prediction.data), truth_rc, pixel_size_A=pixel_size_A,
                           max_distance_A=compare.radius_A.value(), paper_compatible=compare.paper_check.isChecked(),
                           border_margin_px=compare.margin_px.value() if image is not None else 0.0,
                           image_shape=tuple(image.data.shape[-2:]) if image is not None else None)


def _label_and_save(viewer, qtbot, image, tmp_path):
    from napari_atombench.widgets._state import refine_hint, refine_summary

    _dock, label = viewer.window.add_plugin_dock_widget("napari-atombench", "Label atom columns")
    label._image_combo.value = image.name
    label._pixel_size.value = PIXEL_SIZE_A
    assert image.metadata["pixel_size_A"] == pytest.approx(PIXEL_SIZE_A)
    layer = label.seed()
    seeds = np.array(layer.data)
    truth = read_positions(image.metadata["source_path"].replace(".npy", "_labels.csv")).positions_rc
    distance, _ = cKDTree(seeds).query(truth)
    assert np.mean(distance < 2.0) > 0.8  # the seeds find the published columns

    # add a forgotten column by a click 1.5 px off: it snaps onto the column's peak
    well_seeded = truth[distance < 1.0]
    forgotten = well_seeded[np.argmin(np.hypot(*(well_seeded - np.array(image.data.shape) / 2).T))]
    near = np.hypot(*(layer.data - forgotten).T) <= 3
    removed_seed = np.array(layer.data)[near][0]  # the column's peak as the seeding found it
    layer.data = layer.data[~near]
    click = removed_seed + [1.0, -1.1]
    layer.add(click)
    snapped = layer.data[-1]
    assert not np.allclose(snapped, click)  # it was snapped...
    # ...onto the same column (on this noisy 8-bit image the snapped peak is ~2 px from the seeded one)
    assert np.hypot(*(snapped - removed_seed)) < 0.25 * label.separation_px()
    moved = np.array(layer.data)
    moved[0] += [0.7, -0.4]
    layer.data = moved  # a drag
    layer.selected_data = {1}
    layer.remove_selected()
    edited = np.array(layer.data)

    for method, recorded in (("gaussian", "gaussian"), ("joint", "gaussian_joint"), ("com", "center_of_mass")):
        _wait_worker(qtbot, label.refine(method))
        features = layer.features
        hint = refine_hint(recorded, features["status"], features["reason"])
        expected = " | ".join(filter(None, [hint, refine_summary(features["status"], features["reason"])]))
        assert label._status.native.toolTip() == expected
        # si110 dumbbells share their window with the partner column: the dock says to fit them together
        assert bool(hint) == (method == "gaussian")
        assert layer.metadata["refinement"]["method"] == recorded
        # si110 columns that still fall back each say why
        failed = (features["status"] != "converged").to_numpy()
        assert (features["reason"][failed] != "").all() and np.isfinite(layer.data).all()
        assert not np.array_equal(layer.data, edited)
        label.undo()
        np.testing.assert_array_equal(layer.data, edited)
    _wait_worker(qtbot, label.refine("gaussian"))
    out = label.save_labels(str(tmp_path / "si110_mine.csv"))
    saved = read_positions(out)
    np.testing.assert_allclose(saved.positions_rc, layer.data, atol=1e-4)
    assert saved.pixel_size_A == pytest.approx(PIXEL_SIZE_A)
    assert {"status", "reason", "uncertainty_px"} <= set(saved.features.columns)
    layer.visible = False
    return layer


def test_first_hour_on_si110_dumbbells(make_napari_viewer, qtbot, experimental_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ATOMBENCH_AUTOSAVE_DIR", str(tmp_path / "autosave"))
    if not (experimental_dir / "si110_dumbbells.npy").exists():
        pytest.skip(f"si110_dumbbells.npy is not in {experimental_dir}")
    from napari_atombench._napari.reader_preference import prefer_our_reader

    # a copy: the Label dock autosaves beside the image, and ../shared is read-only for us
    work = tmp_path / "data"
    work.mkdir()
    for suffix in (".npy", "_labels.csv"):
        shutil.copy(experimental_dir / f"si110_dumbbells{suffix}", work / f"si110_dumbbells{suffix}")
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    prefer_our_reader()
    viewer.window._qt_viewer._qt_open([str(work / "si110_dumbbells.npy")], stack=False)
    image = viewer.layers["si110_dumbbells"]
    _label_and_save(viewer, qtbot, image, tmp_path)

    _dock, run = viewer.window.add_plugin_dock_widget("napari-atombench", "Run atom-locating model")
    run.image.value = image
    for model in ("atombench", "atomnet-sim"):
        run.model.value = model
        _wait_worker(qtbot, run.run())
        assert viewer.layers[f"si110_dumbbells {model}"].metadata["pixel_size_A"] == pytest.approx(PIXEL_SIZE_A)
        assert "columns:" in run.status.value

    # *.csv has no default reader (most CSVs are not position tables): File > Open asks, we choose ours
    viewer.window._qt_viewer._qt_open([str(work / "si110_dumbbells_labels.csv")], stack=False, plugin="napari-atombench")
    truth = viewer.layers["si110_dumbbells_labels"]
    _dock, compare = viewer.window.add_plugin_dock_widget("napari-atombench", "Compare to labels")
    predictions = [viewer.layers[f"si110_dumbbells {m}"] for m in ("atombench", "atomnet-sim")]
    compare.set_layers(image=image, truth=truth, predictions=predictions)
    assert compare.pixel_size_A == pytest.approx(PIXEL_SIZE_A)
    for row, prediction in enumerate(predictions):
        expected = _scores_in(compare, prediction, np.asarray(truth.data), PIXEL_SIZE_A)
        assert compare.results[prediction.name].score == expected
        headers = [compare.table_widget.horizontalHeaderItem(c).text() for c in range(compare.table_widget.columnCount())]
        assert compare.table_widget.item(row, headers.index("recall")).text() == f"{expected.recall:.3f}"
        assert compare.table_widget.item(row, headers.index("RMSE Å")).text() == f"{expected.rmse_A:.3f}"

    _benchmark_two_cases(viewer, qtbot, experimental_dir, tmp_path)


def _benchmark_two_cases(viewer, qtbot, experimental_dir, tmp_path):
    folder = tmp_path / "two-cases"
    folder.mkdir()
    rows = ["case,image,labels,pixel_size_A,kind"]
    pixel_sizes = {"si110_dumbbells": PIXEL_SIZE_A, "batio3_100": 0.35592}
    for case, pixel in pixel_sizes.items():
        for suffix in (".npy", "_labels.csv"):
            shutil.copy(experimental_dir / f"{case}{suffix}", folder / f"{case}{suffix}")
        rows.append(f"{case},{case}.npy,{case}_labels.csv,{pixel},experimental")
    (folder / "cases.csv").write_text("\n".join(rows) + "\n")
    _dock, bench = viewer.window.add_plugin_dock_widget("napari-atombench", "Benchmark")
    bench.path.setText(str(folder))
    _wait_worker(qtbot, bench.load_dataset())
    for i in range(bench.models.count()):
        item = bench.models.item(i)
        item.setCheckState(Qt.CheckState.Checked if item.text() == "atombench" else Qt.CheckState.Unchecked)
    _wait_worker(qtbot, bench.run())
    for case, pixel in pixel_sizes.items():
        bench.open_case(case)
        _dock, compare = viewer.window.add_plugin_dock_widget("napari-atombench", "Compare to labels")
        compare.update_now()
        assert compare.truth_layer.name == f"{case} labels"
        assert [layer.name for layer in compare.prediction_layers] == [f"{case} atombench"]
        own = read_positions(folder / f"{case}_labels.csv").positions_rc
        prediction = viewer.layers[f"{case} atombench"]
        assert compare.results[prediction.name].score == _scores_in(compare, prediction, own, pixel)
        row = bench.result.table.set_index(["case", "model"]).loc[(case, "atombench")]
        assert row["recall"] == pytest.approx(score_positions(prediction.data, own, pixel_size_A=pixel).recall)
