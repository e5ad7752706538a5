"""The main job in one call: open an image (or a sample), run a model, compare to labels.

Used by ``atombench view`` and so by ``make run``. It drives the plugin's own dock
widgets (Run atom-locating model, Compare to labels) exactly as a user would, so
what the command shows is what the GUI does.
"""

from __future__ import annotations

from pathlib import Path

from ..models.registry import DEFAULT_MODEL  # the one default: CLI, session and docks

__all__ = ["DEFAULT_MODEL", "open_session"]


def open_session(
    viewer,
    *,
    image: Path | None = None,
    sample: str = "srtio3",
    labels: Path | None = None,
    model: str | None = DEFAULT_MODEL,
    wait: bool = False,
) -> dict:
    """Fill ``viewer`` with an image, its labels, a model's predictions and the comparison.

    Parameters
    ----------
    viewer : napari.Viewer
    image : path, optional
        Image file; without it the bundled ``sample`` opens (with its labels).
    sample : str
        Bundled sample name (``srtio3`` or ``ws2``).
    labels : path, optional
        Labels CSV to open beside the image.
    model : str or None
        Registry name of the model to run; ``None`` runs none.
    wait : bool
        Block (processing Qt events) until the model has finished, e.g. before a
        screenshot.

    Returns
    -------
    dict
        The docked widgets by name.
    """
    if image is None:
        viewer.open_sample("napari-atombench", sample)
    else:
        viewer.open(str(image), plugin="napari-atombench")
    if labels is not None:
        viewer.open(str(labels), plugin="napari-atombench")
    viewer.reset_view()
    widgets: dict = {}
    if model is None:
        return widgets

    from napari.utils.notifications import show_error

    from ..models.registry import REGISTRY

    if model not in REGISTRY:
        show_error(f"unknown model {model!r}; registered: {', '.join(REGISTRY)}")
        return widgets
    _, run_widget = viewer.window.add_plugin_dock_widget("napari-atombench", "Run atom-locating model")
    widgets["run"] = run_widget
    run_widget.model.value = model

    def compare(*_):
        _, compare_widget = viewer.window.add_plugin_dock_widget("napari-atombench", "Compare to labels")
        widgets["compare"] = compare_widget
        compare_widget.update_now()

    worker = run_widget.run()
    if worker is None:
        return widgets
    if wait:
        from qtpy.QtCore import QEventLoop

        loop = QEventLoop()
        worker.finished.connect(loop.quit)
        loop.exec()
        compare()
    else:
        worker.returned.connect(compare)
    return widgets
