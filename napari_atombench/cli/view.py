"""``atombench view``: napari with an image (or a bundled sample), a model run and the live comparison."""

from __future__ import annotations

from pathlib import Path

from ..models.registry import DEFAULT_MODEL
from . import UserError, check_input_file, output_file


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "view",
        help="open napari with an image (or a bundled sample), run a model, compare to labels",
        description="Open napari with an image and optional labels, run an atom-locating "
        "model on it and dock the live comparison. Without an image the bundled SrTiO3 "
        "sample (with exact labels) opens. With --screenshot no window is kept open: the "
        "viewer is drawn (under Xvfb when there is no display), saved as PNG, and closed.",
    )
    parser.add_argument("image", nargs="?", type=Path, help="image file; default: a bundled sample")
    parser.add_argument("--sample", default="srtio3", help="bundled sample to open (srtio3, ws2)")
    parser.add_argument("--labels", type=Path, help="labels CSV to open as a Points layer")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model to run (default: {DEFAULT_MODEL}, ours)")
    parser.add_argument("--no-model", action="store_true", help="only open the image and labels")
    parser.add_argument("--screenshot", type=output_file, help="save a PNG of the window and exit")
    parser.set_defaults(func=run_view)


def _check_view_args(args) -> None:
    """Errors found before a window opens (napari's own messages are multi-line or vague)."""
    from ..models.registry import resolve_model
    from ..sample_data import sample_paths

    if args.screenshot is not None and args.screenshot.suffix.lower() != ".png":
        raise UserError(f"--screenshot {args.screenshot}: the screenshot is a PNG; name it .png")
    for flag, path in (("image", args.image), ("--labels", args.labels)):
        check_input_file(flag, path)
    if args.image is None:
        sample_paths(args.sample)  # ValueError naming the known samples
    if not args.no_model:
        resolve_model(args.model)


def run_view(args) -> int:
    _check_view_args(args)
    from ..widgets.session import open_session, screenshot_display_or_reexec

    if (status := screenshot_display_or_reexec(args)) is not None:
        return status
    import napari

    viewer = napari.Viewer(title="atombench", show=True)
    if args.screenshot is not None:
        viewer.window.resize(1500, 950)
    open_session(
        viewer,
        image=args.image,
        sample=args.sample,
        labels=args.labels,
        model=None if args.no_model else args.model,
        wait=args.screenshot is not None,
    )
    if args.screenshot is not None:
        args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        from qtpy.QtWidgets import QApplication

        for _ in range(5):
            QApplication.processEvents()
        viewer.screenshot(str(args.screenshot), canvas_only=False)
        print(f"screenshot written to {args.screenshot}")
        viewer.close()
        return 0
    napari.run()
    return 0
