"""Screenshot of "Compare to labels" on the SrTiO3 sample (run under Xvfb: xvfb-run -a python ...)."""

from __future__ import annotations

import sys
from pathlib import Path

import napari
import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication

from napari_atombench.core.perturb import perturb_positions

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parents[1] / "images" / "compare-widget.png")


def settle(n: int = 10) -> None:
    for _ in range(n):
        QApplication.processEvents()


viewer = napari.Viewer(title="atombench", show=True)
viewer.window._qt_window.resize(1580, 960)
viewer.open_sample("napari-atombench", "srtio3")
image, labels = viewer.layers
fake = perturb_positions(labels.data, jitter_px=0.6, miss_fraction=0.03, spurious_fraction=0.03, shape=image.data.shape, seed=3)
viewer.add_points(fake.positions_rc, name="srtio3_100 my model", size=float(np.mean(labels.size)), face_color="#ff00ff")
dock, widget = viewer.window.add_plugin_dock_widget("napari-atombench", "Compare to labels")
viewer.window._qt_window.resizeDocks([dock], [660], Qt.Orientation.Horizontal)
widget.update_now()
settle()
viewer.reset_view()
settle()
OUT.parent.mkdir(parents=True, exist_ok=True)
viewer.screenshot(str(OUT), canvas_only=False)
widget.show_case(0)  # the first false positive, centred and zoomed
settle()
zoomed = OUT.with_name(OUT.stem + "-inspect.png")
viewer.screenshot(str(zoomed), canvas_only=False)
print(widget.table.to_string())
print(f"wrote {OUT} and {zoomed}")
viewer.close()
