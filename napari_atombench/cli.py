"""The ``atombench`` command line.

Each subcommand is a ``_add_<name>(subparsers)`` function that registers its
parser and sets ``func``; :data:`COMMANDS` lists them in help order. Errors a
user can fix (bad file, bad option) are printed as one line and exit with 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

from . import __version__


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback."""


def _add_info(subparsers) -> None:
    parser = subparsers.add_parser("info", help="show an image's shape, pixel size and metadata")
    parser.add_argument("image", type=Path)
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    parser.set_defaults(func=_run_info)


def _run_info(args) -> int:
    from .core.io import read_image

    image, pixel_size_A, metadata = read_image(args.image, allow_stack=True, nan_policy="replace")
    info = {
        "path": str(args.image),
        "shape": list(image.shape),
        "pixel_size_A": pixel_size_A,
        "min": float(image.min()),
        "max": float(image.max()),
        **{k: v for k, v in metadata.items() if k not in ("source_path",)},
    }
    if args.json:
        print(json.dumps(info, default=str))
    else:
        for key, value in info.items():
            print(f"{key:>22}: {value}")
    return 0


def _add_view(subparsers) -> None:
    parser = subparsers.add_parser(
        "view",
        help="open napari with an image (or a bundled sample) and its labels",
        description="Open napari with an image and optional labels. Without an image the "
        "bundled SrTiO3 sample opens. With --screenshot no window is kept open: the "
        "viewer is drawn (under Xvfb when there is no display), saved as PNG, and closed.",
    )
    parser.add_argument("image", nargs="?", type=Path, help="image file; default: a bundled sample")
    parser.add_argument("--sample", default="srtio3", help="bundled sample to open (srtio3, ws2)")
    parser.add_argument("--labels", type=Path, help="labels CSV to open as a Points layer")
    parser.add_argument("--screenshot", type=Path, help="save a PNG of the window and exit")
    parser.set_defaults(func=_run_view)


def _run_view(args) -> int:
    import napari

    viewer = napari.Viewer(title="atombench", show=True)
    if args.image is None:
        viewer.open_sample("napari-atombench", args.sample)
    else:
        viewer.open(str(args.image), plugin="napari-atombench")
    if args.labels is not None:
        viewer.open(str(args.labels), plugin="napari-atombench")
    viewer.reset_view()
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


def _add_locate(subparsers) -> None:
    from .models.commands import add_locate

    add_locate(subparsers)


def _add_models(subparsers) -> None:
    from .models.commands import add_models

    add_models(subparsers)


#: Subcommand registrars, in the order they appear in --help.
COMMANDS: list[Callable] = [_add_view, _add_info, _add_locate, _add_models]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="atombench",
        description="Label, locate and benchmark atom columns in HR-STEM images.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in COMMANDS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (UserError, ValueError, FileNotFoundError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"atombench {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
