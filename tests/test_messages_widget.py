"""Issue 14 item 5: a long message in any dock wraps or is cut, never widens the window (real viewer, Xvfb)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui

#: what a missing-weights error looks like: one long path-like word and a long explanation
LONG = ("weights not found: /home/user/.cache/napari-atombench/weights/" + "x" * 220 + ".pt; "
        + "set ATOMBENCH_WEIGHTS_DIR or download them with `atombench weights fetch`; " * 5)


def _docks(viewer, monkeypatch):
    import napari_atombench.widgets.run_model as run_mod
    from napari_atombench.widgets.benchmark import BenchmarkWidget
    from napari_atombench.widgets.compare import CompareWidget
    from napari_atombench.widgets.labeling import LabelingWidget

    monkeypatch.setattr(run_mod, "show_error", lambda msg: None)
    run = run_mod.RunModelWidget(viewer)
    label = LabelingWidget(viewer)
    compare = CompareWidget(viewer)
    bench = BenchmarkWidget(viewer)
    return {
        "run": (run, run.status.native, lambda: _run_error(run, monkeypatch)),
        "label": (label, label._status.native, lambda: label._refine_failed(RuntimeError(LONG))),
        "compare": (compare, compare.status, lambda: compare._show_error(LONG)),
        "benchmark": (bench, bench.status, lambda: bench._error(LONG)),
    }


def _run_error(run, monkeypatch):
    import napari_atombench.widgets.run_model as run_mod

    def missing(*args, **kwargs):
        raise FileNotFoundError(LONG)

    monkeypatch.setattr(run_mod, "get_locator", missing)
    run.run()


@pytest.mark.parametrize("dock", ["run", "label", "compare", "benchmark"])
def test_long_message_never_widens_the_window(make_napari_viewer, qtbot, monkeypatch, dock):
    from qtpy.QtWidgets import QApplication

    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.zeros((64, 64), np.float32), name="img")
    window = viewer.window._qt_window
    window.resize(1600, 1000)
    widget, label, trigger = _docks(viewer, monkeypatch)[dock]
    viewer.window.add_dock_widget(widget, name=dock)
    QApplication.processEvents()
    width = window.width()
    trigger()
    qtbot.waitUntil(lambda: label.toolTip() == LONG or LONG in label.toolTip(), timeout=10_000)
    QApplication.processEvents()
    assert window.width() <= width
    assert len(label.text()) < len(LONG) and label.wordWrap()
    assert label.sizeHint().width() < 800
