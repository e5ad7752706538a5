"""Screenshot of "Adapt model to labels" on an inverted-contrast simulated SrTiO3 image:
labels of one corner region, adapted model run on the whole image, split into classes,
Compare dock with one row per class (run under Xvfb: xvfb-run -a -s "-screen 0 1600x1000x24" python ...)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

from napari_atombench.core import simulate as sim

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parents[1] / "images" / "adapt-dock.png")
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 100


def settle(n: int = 10) -> None:
    for _ in range(n):
        QApplication.processEvents()


s = sim.simulate("srtio3_100", shape=(256, 256), pixel_size_pm=20, resolution_pm=90, dose_e_per_A2=2e3, seed=5,
                 rotation_deg=7)
viewer = napari.Viewer(title="atombench", show=True)
viewer.window._qt_window.resize(1600, 1000)
img = viewer.add_image(-s.image, name="inverted sto", metadata={"pixel_size_A": 0.2})
viewer.add_points(s.positions_rc, name="inverted sto labels", size=3, face_color="yellow",
                  metadata={"role": "ground truth"})
inside = (s.positions_rc < 127.5).all(axis=1)
hand = viewer.add_points(s.positions_rc[inside], name="hand (region)", size=3, face_color="#ffb000")
viewer.add_shapes([np.array([[-0.5, -0.5], [127.5, 127.5]])], shape_type="rectangle", name="region",
                  edge_color="#ffb000", face_color="transparent", edge_width=1.5)
dock, widget = viewer.window.add_plugin_dock_widget("napari-atombench", "Adapt model to labels")
widget.image.value = img
widget.labels.value = viewer.layers["hand (region)"]
widget.region.value = viewer.layers["region"]
widget.steps.value = STEPS
widget.save.value = False
worker = widget.adapt()
while not widget.adapt_button.enabled:  # the worker re-enables the button when done
    QApplication.processEvents()
    time.sleep(0.05)
settle()
widget.split_layer.value = viewer.layers["inverted sto atombench adapted"]
widget.split_reference.value = viewer.layers["inverted sto labels"]
widget.n_classes.value = "2"  # Sr and Ti-O (the O columns are too weak to be labelled)
widget.split()
for layer in list(viewer.layers):
    if layer.name in ("inverted sto labels", "hand (region)", "inverted sto atombench adapted") or layer.name.endswith(
            (" TP", " FP", " FN")) and "class" not in layer.name:
        layer.visible = False
compare = widget.compare_widget
compare.update_now()
settle()
viewer.reset_view()
settle()
OUT.parent.mkdir(parents=True, exist_ok=True)
viewer.screenshot(str(OUT), canvas_only=False)
print(widget.status.value)
print(compare.table.to_string())
print(f"wrote {OUT}")
viewer.close()
