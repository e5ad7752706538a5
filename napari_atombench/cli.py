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


def _add_simulate(subparsers) -> None:
    from .core.simulate import CRYSTALS

    parser = subparsers.add_parser(
        "simulate",
        help="simulate an HR-STEM image with exact labels (TIFF + labels CSV)",
        description="Simulate an image of a crystal projection; knobs in physical units.",
    )
    parser.add_argument("crystal", choices=sorted(CRYSTALS) + ["none"], help="crystal ('none': single atoms only)")
    parser.add_argument("--out-image", type=Path, required=True)
    parser.add_argument("--out-labels", type=Path, required=True)
    parser.add_argument("--size", type=int, nargs="+", default=[256], help="rows [cols] in pixels")
    for knob, kind, default in _SIMULATE_KNOBS:
        flag = "--" + knob.replace("_", "-")
        if kind is bool:
            parser.add_argument(flag, dest=knob, action="store_true")
        else:
            parser.add_argument(flag, dest=knob, type=kind, default=default)
    parser.add_argument("--species", nargs="+", help="render and label only these species")
    parser.add_argument("--uint16", action="store_true", help="store the image as uint16 counts")
    parser.set_defaults(func=_run_simulate)


#: (keyword of core.simulate.simulate, type, CLI default or None for the simulator's default)
_SIMULATE_KNOBS = [
    ("pixel_size_pm", float, None), ("resolution_pm", float, None), ("contrast", float, None),
    ("background", float, None), ("background_gradient", float, None), ("dose_e_per_A2", float, None),
    ("psnr_db", float, None), ("read_noise", float, None), ("random_drift", float, None),
    ("flyback_error", float, None), ("line_jitter", float, None), ("z_exponent", float, None),
    ("mode", str, None), ("rotation_deg", float, None), ("vacancy_fraction", float, None),
    ("substitution_fraction", float, None), ("boundary", str, None), ("boundary_rotation_deg", float, None),
    ("boundary_crystal", str, None), ("adatoms_per_nm2", float, None), ("amorphous", float, None),
    ("label_min_weight", float, None), ("seed", int, None),
]


def _run_simulate(args) -> int:
    from .core.simulate import write_simulation

    knobs = {k: getattr(args, k) for k, _, _ in _SIMULATE_KNOBS if getattr(args, k) is not None}
    if args.species:
        knobs["species"] = args.species
    size = args.size if len(args.size) == 2 else [args.size[0], args.size[0]]
    crystal = None if args.crystal == "none" else args.crystal
    sim = write_simulation(args.out_image, args.out_labels, crystal, shape=tuple(size), uint16=args.uint16, **knobs)
    print(f"{args.out_image}: {sim.image.shape}, {len(sim.positions_rc)} columns -> {args.out_labels}")
    return 0


def _add_train(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model architecture on simulated images",
        description="Train ARCH (atombench_unet, resatomsegnet_s2, atomsegnet, unet, nestedunet) on "
        "simulated images generated on the fly; checkpoints are resumable.",
    )
    parser.add_argument("arch")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--out", type=Path, required=True, help="checkpoint file (.pt)")
    parser.add_argument("--quick", action="store_true", help="at most 5 steps on tiny 32² crops (tests)")
    parser.add_argument("--resume", type=Path, help="continue from this checkpoint")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128, help="training crop side in pixels")
    parser.add_argument("--pool-size", type=int, default=2000, help="simulated scenes generated up front")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--max-minutes", type=float, help="stop (and checkpoint) after this wall time")
    parser.add_argument("--base-channels", type=int, default=16, help="atombench_unet width")
    parser.add_argument("--export-weights", type=Path, help="also write fp16 weights + JSON record here")
    parser.set_defaults(func=_run_train)


def _run_train(args) -> int:
    from .models.train import TrainConfig, export_weights, train

    if args.quick:
        args.steps, args.crop, args.pool_size, args.batch_size = min(args.steps, 5), 32, 4, 2
    config = TrainConfig(
        architecture=args.arch, steps=args.steps, batch_size=args.batch_size, crop_px=args.crop,
        pool_size=args.pool_size, lr=args.lr, seed=args.seed, device=args.device, threads=args.threads,
        max_minutes=args.max_minutes, checkpoint_every=50, log_every=1 if args.quick else 10,
        arch_kwargs={"base_channels": args.base_channels, "depth": 3} if args.arch == "atombench_unet" else {},
    )
    summary = train(config, args.out, resume=args.resume, log=lambda m: print(m, flush=True))
    if args.export_weights is not None:
        export_weights(args.out, args.export_weights, card={"command": "atombench " + " ".join(sys.argv[1:])})
    print(f"checkpoint {summary['checkpoint']} at step {summary['step']} ({summary['wall_s']:.0f} s)")
    return 0


def _add_locate(subparsers) -> None:
    parser = subparsers.add_parser(
        "locate",
        help="find atom columns with a model and write a positions CSV",
        description="Run a registered model on an image (default: our 'atombench' model, offline).",
    )
    parser.add_argument("image", type=Path)
    parser.add_argument("--model", default="atombench")
    parser.add_argument("--pixel-size-A", dest="pixel_size_A", type=float, help="override the file's pixel size")
    parser.add_argument("--weights", type=Path, help="checkpoint to use instead of the registered weights")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, help="positions CSV (default: IMAGE_<model>.csv)")
    parser.set_defaults(func=_run_locate)


def _run_locate(args) -> int:
    from .core.io import read_image, write_positions
    from .models.ours import get_locator

    image, pixel_size_A, _ = read_image(args.image)
    pixel_size_A = args.pixel_size_A or pixel_size_A
    locator = get_locator(args.model, args.weights, args.device)
    result = locator.locate(image, pixel_size_A)
    out = args.out or args.image.with_name(f"{args.image.stem}_{args.model}.csv")
    write_positions(out, result.positions_rc, pixel_size_A)
    print(f"{len(result.positions_rc)} columns -> {out}")
    return 0


#: Subcommand registrars, in the order they appear in --help.
COMMANDS: list[Callable] = [_add_view, _add_info, _add_simulate, _add_train, _add_locate]


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
