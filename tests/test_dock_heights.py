"""Docks on a 1600x1000 screen: stacked docks scroll instead of making the window taller than
the screen, the metric table stays in view, and the main job shows Run and Compare as tabs."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui

#: room for the window's title bar and a desktop panel on a 1000 px tall screen
MAX_WINDOW_MIN_HEIGHT_PX = 900


def _fully_visible(widget) -> bool:
    return widget.height() > 0 and widget.visibleRegion().boundingRect().height() == widget.height()


@pytest.mark.parametrize("beside", ["Run atom-locating model", "Label atom columns", "Adapt model to labels", "Benchmark"])
def test_two_docks_stacked_fit_the_screen_and_keep_the_table_in_view(make_napari_viewer, beside):
    from qtpy.QtWidgets import QApplication

    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    viewer.add_image(np.zeros((64, 64), np.float32), name="img", metadata={"pixel_size_A": 0.1})
    truth = np.array([[10.0, 10.0], [30.0, 30.0], [50.0, 20.0]])
    viewer.add_points(truth, name="img labels", metadata={"role": "labels"})
    viewer.add_points(truth + 0.2, name="img atombench", metadata={"role": "prediction", "model": "atombench"})
    viewer.window.add_plugin_dock_widget("napari-atombench", beside)  # stacked, as the Plugins menu docks it
    _, compare = viewer.window.add_plugin_dock_widget("napari-atombench", "Compare to labels")
    compare.update_now()
    window.resize(1600, 1000)
    QApplication.processEvents()
    # before the dock bodies scrolled, Run + Compare asked for a 1334 px tall window
    assert window.minimumSizeHint().height() <= MAX_WINDOW_MIN_HEIGHT_PX
    assert window.height() <= 1000
    assert _fully_visible(compare.table_widget)  # the key numbers need no scrolling
    assert compare.table_widget.rowCount() == 1


def test_a_dock_alone_does_not_scroll(make_napari_viewer, qtbot):
    """A scroll area would make a body with word-wrapped labels as tall as its preferred height."""
    from qtpy.QtWidgets import QApplication

    from napari_atombench.widgets._scroll import _VerticalScroll

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    _, widget = viewer.window.add_plugin_dock_widget("napari-atombench", "Benchmark")  # the tallest dock
    QApplication.processEvents()
    (area,) = [a for a in widget.findChildren(_VerticalScroll)]
    assert area.widget().layout().hasHeightForWidth()
    # the layout settles over a few event-loop passes; before the fix the bar stayed
    qtbot.waitUntil(lambda: not area.verticalScrollBar().isVisible(), timeout=3000)
    assert area.widget().height() == area.viewport().height()


def test_main_job_shows_run_and_compare_as_tabs(make_napari_viewer):
    from qtpy.QtWidgets import QApplication, QDockWidget

    from napari_atombench.widgets.session import open_session

    viewer = make_napari_viewer(show=True)
    widgets = open_session(viewer, sample="srtio3", model="atombench", wait=True)
    QApplication.processEvents()
    window = viewer.window._qt_window
    docks = {dock.widget(): dock for dock in window.findChildren(QDockWidget)}
    run_dock = next(d for w, d in docks.items() if w is widgets["run"].native)
    compare_dock = next(d for w, d in docks.items() if w is widgets["compare"])
    assert compare_dock in window.tabifiedDockWidgets(run_dock)
    assert _fully_visible(widgets["compare"].table_widget)
    assert widgets["compare"].table_widget.rowCount() == 1
