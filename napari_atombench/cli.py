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
        help="open napari with an image (or a bundled sample), run a model, compare to labels",
        description="Open napari with an image and optional labels, run an atom-locating "
        "model on it and dock the live comparison. Without an image the bundled SrTiO3 "
        "sample (with exact labels) opens. With --screenshot no window is kept open: the "
        "viewer is drawn (under Xvfb when there is no display), saved as PNG, and closed.",
    )
    parser.add_argument("image", nargs="?", type=Path, help="image file; default: a bundled sample")
    parser.add_argument("--sample", default="srtio3", help="bundled sample to open (srtio3, ws2)")
    parser.add_argument("--labels", type=Path, help="labels CSV to open as a Points layer")
    parser.add_argument("--model", default="atombench", help="model to run (default: atombench, ours)")
    parser.add_argument("--no-model", action="store_true", help="only open the image and labels")
    parser.add_argument("--screenshot", type=Path, help="save a PNG of the window and exit")
    parser.set_defaults(func=_run_view)


def _run_view(args) -> int:
    import napari

    from ._napari.session import open_session

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


def _add_score(subparsers) -> None:
    parser = subparsers.add_parser(
        "score",
        help="score predicted positions against labels (recall, precision, RMSE, pass)",
        description="Score predicted atom-column positions against labels, both CSV files. "
        "Default: one-to-one matching within 0.5 Å (3 px without a pixel size). The pixel "
        "size comes from --pixel-size-A, else from the x_A/y_A columns of the labels or "
        "prediction file. With --paper-compatible, TPs are counted as in the benchmark "
        "authors' notebooks (every pair closer than sqrt(5) px, many-to-many).",
    )
    parser.add_argument("predicted", type=Path, metavar="PRED.csv")
    parser.add_argument("truth", type=Path, metavar="TRUTH.csv")
    parser.add_argument("--pixel-size-A", type=float, help="Å per pixel")
    radius = parser.add_mutually_exclusive_group()
    radius.add_argument("--max-distance-A", type=float, default=0.5, help="matching radius in Å (default 0.5)")
    radius.add_argument("--max-distance-px", type=float, help="matching radius in pixels")
    parser.add_argument("--paper-compatible", action="store_true", help="the benchmark notebooks' counting")
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    parser.set_defaults(func=_run_score)


def _run_score(args) -> int:
    from .core.io import read_positions
    from .core.metrics import score_positions

    predicted, truth = read_positions(args.predicted), read_positions(args.truth)
    pixel_size_A = next(
        (p for p in (args.pixel_size_A, truth.pixel_size_A, predicted.pixel_size_A) if p is not None), None
    )
    score = score_positions(
        predicted.positions_rc,
        truth.positions_rc,
        pixel_size_A=pixel_size_A,
        max_distance_A=args.max_distance_A,
        max_distance_px=args.max_distance_px,
        paper_compatible=args.paper_compatible,
    )
    if args.json:
        print(json.dumps(score.as_dict()))
    else:
        for key, value in score.as_dict().items():
            print(f"{key:>17}: {f'{value:.4f}' if isinstance(value, float) else value}")
    return 0


def _add_refine(subparsers) -> None:
    parser = subparsers.add_parser(
        "refine",
        help="refine atom-column positions by peak fitting",
        description="Refine the positions of a labels CSV on an image and write them, with "
        "the per-column fit results (amplitude, sigma_px, background, uncertainty_px, "
        "status), to a new CSV.",
    )
    parser.add_argument("image", type=Path)
    parser.add_argument("labels", type=Path, help="positions CSV (x_px,y_px...)")
    parser.add_argument("--method", choices=["gaussian", "joint", "com"], default="gaussian",
                        help="Gaussian fit, Gaussian with overlapping columns fitted jointly, or centre of mass")
    parser.add_argument("--dark", action="store_true", help="dark columns on a bright background (ABF)")
    parser.add_argument("--out", type=Path, required=True, help="output CSV")
    parser.set_defaults(func=_run_refine)


def _run_refine(args) -> int:
    from .core.refine_files import refine_labels_file

    result = refine_labels_file(args.image, args.labels, args.out, method=args.method, dark=args.dark)
    counts = ", ".join(f"{n} {status}" for status, n in result.counts().items())
    print(f"{len(result)} columns refined ({counts}); written to {args.out}")
    return 0


def _add_benchmark(subparsers) -> None:
    from .bench_cli import add_benchmark_arguments, run_benchmark_cli

    parser = subparsers.add_parser(
        "benchmark",
        help="score models on a dataset (folder with cases.csv or wei_atom.h5) -> CSV",
        description="Run one or more locators over every case of a dataset and write one row per "
        "(case, model): scores, image-quality metrics, seconds and any error.",
    )
    add_benchmark_arguments(parser)
    parser.set_defaults(func=run_benchmark_cli)


def _add_robustness(subparsers) -> None:
    from .bench_cli import add_robustness_arguments, run_robustness_cli

    parser = subparsers.add_parser(
        "robustness",
        help="find where models fail along simulated degradation series; radar plot",
        description="Score models along simulated SrTiO3 [100] / WS2 series, find each model's "
        "cutoff per knob (first failure of recall >= 0.9, precision >= 0.95, RMSE <= 0.3 A) "
        "and draw the radar and score-vs-knob plots.",
    )
    add_robustness_arguments(parser)
    parser.set_defaults(func=run_robustness_cli)


def _add_locate(subparsers) -> None:
    from .models.commands import add_locate

    add_locate(subparsers)


def _add_models(subparsers) -> None:
    from .models.commands import add_models

    add_models(subparsers)


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
    parser.add_argument("--native-pixel-size", type=float, nargs=2, metavar=("MIN_A", "MAX_A"),
                        help="simulate scenes at pixel sizes in this range (Å) and resample them to the "
                        "trained sampling, as inference does (default: the trained pixel size ± 25 %%)")
    parser.add_argument("--normalize-window", type=int, metavar="PX",
                        help="atombench_unet: standardise inference inputs in a sliding window of this side "
                        "(use the crop size); default: whole image")
    parser.add_argument("--resolution-pm", type=float, nargs=2, metavar=("MIN_PM", "MAX_PM"),
                        help="probe FWHM range (pm), log-uniform, capped where labelled columns would merge "
                        "(default: uniform 60-125 pm)")
    parser.add_argument("--modalities", action="store_true",
                        help="v3 recipe: add ABF, iDPC-like, low-dose light-element, nanoparticle and thick-support "
                        "scenes and JPEG/low-pass/row-offset artefacts (label policy: docs/models.md)")
    parser.add_argument("--pool-workers", type=int, default=1,
                        help="processes generating the --modalities pool (same pool for any number)")
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
        native_pixel_size_A=tuple(args.native_pixel_size) if args.native_pixel_size else None,
        normalize_window_px=args.normalize_window,
        resolution_pm=tuple(args.resolution_pm) if args.resolution_pm else None,
        modalities=args.modalities, pool_workers=args.pool_workers,
    )
    summary = train(config, args.out, resume=args.resume, log=lambda m: print(m, flush=True))
    if args.export_weights is not None:
        export_weights(args.out, args.export_weights, card={"command": "atombench " + " ".join(sys.argv[1:])})
    print(f"checkpoint {summary['checkpoint']} at step {summary['step']} ({summary['wall_s']:.0f} s)")
    return 0


#: Subcommand registrars, in the order they appear in --help.
COMMANDS: list[Callable] = [
    _add_view,
    _add_info,
    _add_locate,
    _add_models,
    _add_score,
    _add_refine,
    _add_simulate,
    _add_train,
    _add_benchmark,
    _add_robustness,
]


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
