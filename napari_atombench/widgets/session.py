"""The main job in one call: open an image (or a sample), run a model, compare to labels.

Used by ``atombench view`` and so by ``make run``. It drives the plugin's own dock
widgets (Run atom-locating model, Compare to labels) exactly as a user would, so
what the command shows is what the GUI does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..models.registry import DEFAULT_MODEL  # the one default: CLI, session and docks

__all__ = ["DEFAULT_MODEL", "XVFB_SCREEN", "open_session", "screenshot_display_or_reexec"]

#: Virtual screen for headless screenshots: room for the viewer and its docks at 1600x1000.
XVFB_SCREEN = "-screen 0 1600x1000x24"
#: Set in the child started under xvfb-run, so it never starts another one.
_UNDER_XVFB = "ATOMBENCH_UNDER_XVFB"


def _has_display(env) -> bool:
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def screenshot_display_or_reexec(args) -> int | None:
    """Make sure ``atombench view`` has a display; without one, rerun it under ``xvfb-run``.

    Qt's xcb platform aborts the process (SIGABRT) when there is no X server, and
    ``QT_QPA_PLATFORM=offscreen`` cannot draw napari's image layers, so a headless
    ``--screenshot`` runs the same command again inside a virtual X server.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``view`` arguments (image, sample, labels, model, no_model, screenshot).

    Returns
    -------
    int or None
        ``None`` when a display exists (go on in this process); otherwise the exit
        status of the command rerun under ``xvfb-run``.

    Raises
    ------
    OSError
        One line saying how to get a display, when none can be had.
    """
    if _has_display(os.environ):
        return None
    if args.screenshot is None:
        raise OSError("no display (DISPLAY and WAYLAND_DISPLAY are unset): run it on a desktop, "
                      "over `ssh -X`, or add --screenshot PNG to draw headless under Xvfb")
    xvfb_run = shutil.which("xvfb-run")
    if xvfb_run is None or os.environ.get(_UNDER_XVFB):
        raise OSError("--screenshot without a display needs xvfb-run (Debian/Ubuntu: apt-get install xvfb) "
                      "or a display (set DISPLAY); QT_QPA_PLATFORM=offscreen cannot draw image layers")
    command = [xvfb_run, "-a", "-s", XVFB_SCREEN, sys.executable, "-m", "napari_atombench.cli", "view"]
    command += _view_argv(args)
    return subprocess.run(command, env={**os.environ, _UNDER_XVFB: "1"}).returncode


def _view_argv(args) -> list[str]:
    """The ``view`` options of ``args`` again, as command-line words."""
    argv = [] if args.image is None else [str(Path(args.image).resolve())]
    argv += ["--sample", args.sample]
    if args.labels is not None:
        argv += ["--labels", str(Path(args.labels).resolve())]
    argv += ["--no-model"] if args.no_model else ["--model", args.model]
    argv += ["--screenshot", str(Path(args.screenshot).resolve())]
    return argv


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
        # tabbed with the Run dock and raised: each shows all of itself on a 1600x1000 screen
        dock, compare_widget = viewer.window.add_plugin_dock_widget("napari-atombench", "Compare to labels",
                                                                    tabify=True)
        widgets["compare"] = compare_widget
        compare_widget.update_now()
        dock.raise_()

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
