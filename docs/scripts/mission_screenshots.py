"""The first hour of a microscopist, by hand in a real viewer, with screenshots of each dock.

Run under Xvfb at 1600 x 1000 from the repository root::

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/scripts/mission_screenshots.py [DATA_DIR] [OUT_DIR]

DATA_DIR holds si110_dumbbells.npy / _labels.csv and batio3_100.npy / _labels.csv
(default ../shared/data/experimental); OUT_DIR defaults to docs/images. Prints the
numbers each dock shows.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import napari
import numpy as np
from qtpy.QtCore import QEventLoop, Qt
from qtpy.QtWidgets import QApplication

DATA = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/experimental")
OUT = Path(sys.argv[2] if len(sys.argv) > 2 else Path(__file__).parents[1] / "images")
OUT.mkdir(parents=True, exist_ok=True)


def settle(n: int = 10) -> None:
    for _ in range(n):
        QApplication.processEvents()


def wait(worker) -> None:
    """Process events until the worker's finished signal (queued, so it cannot have been missed)."""
    if worker is None:
        raise SystemExit("a dock did not start its job")
    loop = QEventLoop()
    worker.finished.connect(loop.quit)
    loop.exec()
    settle()


def shot(name: str, dock) -> Path:
    window = viewer.window._qt_window
    window.resizeDocks([dock], [620], Qt.Orientation.Horizontal)
    settle()
    path = OUT / name
    viewer.screenshot(str(path), canvas_only=False)
    print("screenshot", path)
    return path


# work on copies: the Label dock autosaves beside the image, and DATA is the team's read-only folder
WORK = Path(tempfile.mkdtemp(prefix="atombench-mission-data-"))
for suffix in (".npy", "_labels.csv"):
    shutil.copy(DATA / f"si110_dumbbells{suffix}", WORK / f"si110_dumbbells{suffix}")

viewer = napari.Viewer(title="atombench", show=True)
viewer.window._qt_window.resize(1600, 1000)
viewer.open(str(WORK / "si110_dumbbells.npy"), plugin="napari-atombench")
image = viewer.layers["si110_dumbbells"]

# label: pixel size, seed, refine
label_dock, label = viewer.window.add_plugin_dock_widget("napari-atombench", "Label atom columns")
label._image_combo.value = image.name
label._pixel_size.value = 0.094
layer = label.seed()
print("label:", label._status.value, "|", label._separation_info.value)
wait(label.refine("gaussian"))
print("label after refine:", label._status.value)
viewer.reset_view()
shot("mission-label.png", label_dock)
viewer.window.remove_dock_widget(label_dock)

# run two models
run_dock, run = viewer.window.add_plugin_dock_widget("napari-atombench", "Run atom-locating model")
run.image.value = image
for model in ("atombench", "atomnet-sim"):
    run.model.value = model
    wait(run.run())
    print("run", model, ":", run.status.value)
layer.visible = False
shot("mission-run.png", run_dock)
viewer.window.remove_dock_widget(run_dock)

# compare to the published labels
viewer.open(str(WORK / "si110_dumbbells_labels.csv"), plugin="napari-atombench")
truth = viewer.layers["si110_dumbbells_labels"]
compare_dock, compare = viewer.window.add_plugin_dock_widget("napari-atombench", "Compare to labels")
compare.set_layers(image=image, truth=truth,
                   predictions=[viewer.layers[f"si110_dumbbells {m}"] for m in ("atombench", "atomnet-sim")])
print(compare.table[["prediction", "recall", "precision", "rmse_A", "passes"]].to_string())
shot("mission-compare.png", compare_dock)
viewer.window.remove_dock_widget(compare_dock)

# benchmark two cases, one after the other
for lay in list(viewer.layers):
    viewer.layers.remove(lay)
folder = Path(tempfile.mkdtemp(prefix="atombench-mission-"))
rows = ["case,image,labels,pixel_size_A,kind"]
for case, pixel in (("si110_dumbbells", 0.094), ("batio3_100", 0.35592)):
    for suffix in (".npy", "_labels.csv"):
        shutil.copy(DATA / f"{case}{suffix}", folder / f"{case}{suffix}")
    rows.append(f"{case},{case}.npy,{case}_labels.csv,{pixel},experimental")
(folder / "cases.csv").write_text("\n".join(rows) + "\n")
bench_dock, bench = viewer.window.add_plugin_dock_widget("napari-atombench", "Benchmark")
bench.path.setText(str(folder))
wait(bench.load_dataset())
for i in range(bench.models.count()):
    item = bench.models.item(i)
    item.setCheckState(Qt.CheckState.Checked if item.text() == "atombench" else Qt.CheckState.Unchecked)
wait(bench.run())
print("benchmark:", bench.status.text())
for case in ("si110_dumbbells", "batio3_100"):
    bench.open_case(case)
    settle()
    _dock, compare = viewer.window.add_plugin_dock_widget("napari-atombench", "Compare to labels")
    compare.update_now()
    print("case", case, "layers", [lay.name for lay in viewer.layers],
          compare.table[["prediction", "labels", "recall", "precision", "rmse_A", "passes"]].to_string())
viewer.reset_view()
bench_dock.raise_()  # the benchmark table and plot, not the Compare tab opened for the last case
shot("mission-benchmark.png", bench_dock)
viewer.close()
