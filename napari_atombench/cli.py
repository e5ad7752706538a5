"""The ``atombench`` command line.

Each subcommand is a ``_add_<name>(subparsers)`` function that registers its
parser and sets ``func``; :data:`COMMANDS` lists them in help order.

Errors a user can fix (bad file, bad option) are printed as ONE line,
``atombench <command>: error: <what>: <why>``, and exit with 2; :func:`main`
is the one place that turns the expected error classes (:data:`USER_ERRORS`)
into that line. ``atombench --debug ...`` re-raises them instead, with the
traceback. Anything else (``TypeError``, ``IndexError``...) is a bug and is
never dressed up as a user error. Numeric options are checked by argparse
types (:func:`number`, :func:`integer`): finite and in range, or exit 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import pickle
import re
import sys
import warnings
from pathlib import Path
from typing import Callable, Sequence

from . import __version__
from .models.registry import DEFAULT_MODEL


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback."""


#: What a subcommand raises for bad files or options (h5py raises KeyError for a
#: missing or corrupt object, torch RuntimeError/UnpicklingError/EOFError for a
#: file that is not a checkpoint, numpy MemoryError for a declared size too big).
USER_ERRORS = (UserError, ValueError, OSError, EOFError, csv.Error, KeyError, MemoryError,
               pickle.UnpicklingError)

#: Pixel sizes outside this range (Å/px) are typos, not microscopes.
PIXEL_SIZE_RANGE_A = (1e-3, 100.0)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block) and exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite float in ``[low, high]`` (ends open when asked)."""
    lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
    span = f"{lo}{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}{hi}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        below = low is not None and (value <= low if low_open else value < low)
        above = high is not None and (value >= high if high_open else value > high)
        if not math.isfinite(value) or below or above:
            raise argparse.ArgumentTypeError(f"{text!r} is out of range: give a finite number in {span}")
        return value

    return parse


def integer(low: int = 1, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in ``[low, high]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low or (high is not None and value > high):
            span = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"{text!r} is out of range: give an integer {span}")
        return value

    return parse


#: ``--pixel-size-A``: positive Å per pixel within :data:`PIXEL_SIZE_RANGE_A`.
pixel_size_A = number(*PIXEL_SIZE_RANGE_A)
#: A distance or radius: finite and > 0.
positive = number(0.0, low_open=True)
#: A margin or offset: finite and >= 0.
non_negative = number(0.0)


def device_name(text: str) -> str:
    """An argparse type: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (availability is checked later)."""
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text.lower()):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}: use auto, cpu, cuda, cuda:N or mps")
    return text.lower()


def output_file(text: str) -> Path:
    """An argparse type for a file to write: not an existing folder."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder: give a file name")
    return path


def _one_line(exc: BaseException) -> str:
    """``exc`` as one line: OSErrors as ``<file>: <why>``, whitespace runs collapsed."""
    if isinstance(exc, OSError) and exc.strerror:
        where = exc.filename2 if exc.filename2 is not None else exc.filename
        text = f"{where}: {exc.strerror.lower()}" if where is not None else exc.strerror
    elif isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    elif isinstance(exc, MemoryError):
        text = f"out of memory ({exc or 'the input is too large'})"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


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


def _add_dataset(subparsers) -> None:
    parser = subparsers.add_parser("dataset", help="inspect a benchmark dataset (wei_atom.h5 or a cases.csv folder)")
    info = parser.add_subparsers(dest="action", metavar="ACTION", required=True).add_parser(
        "info", help="print groups, counts, dtypes, metadata columns, kinds and materials")
    info.add_argument("path", type=Path)
    info.set_defaults(func=_run_dataset_info)


def _run_dataset_info(args) -> int:
    from .core.dataset import dataset_info

    if not args.path.exists():
        raise FileNotFoundError(f"no such file or folder: {args.path}")
    text, readable = dataset_info(args.path)
    print(text)
    return 0 if readable else 1


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
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model to run (default: {DEFAULT_MODEL}, ours)")
    parser.add_argument("--no-model", action="store_true", help="only open the image and labels")
    parser.add_argument("--screenshot", type=output_file, help="save a PNG of the window and exit")
    parser.set_defaults(func=_run_view)


def _check_view_args(args) -> None:
    """Errors found before a window opens (napari's own messages are multi-line or vague)."""
    from .models.registry import get_spec
    from .sample_data import sample_paths

    if args.screenshot is not None and args.screenshot.suffix.lower() != ".png":
        raise UserError(f"--screenshot {args.screenshot}: the screenshot is a PNG; name it .png")
    for flag, path in (("image", args.image), ("--labels", args.labels)):
        if path is not None and not path.is_file():
            raise UserError(f"{flag} {path}: {'is a folder' if path.is_dir() else 'no such file'}")
    if args.image is None:
        sample_paths(args.sample)  # ValueError naming the known samples
    if not args.no_model:
        get_spec(args.model)


def _run_view(args) -> int:
    _check_view_args(args)
    from .widgets.session import open_session, screenshot_display_or_reexec

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
    parser.add_argument("--pixel-size-A", type=pixel_size_A, help="Å per pixel")
    radius = parser.add_mutually_exclusive_group()
    radius.add_argument("--max-distance-A", type=positive, default=0.5, help="matching radius in Å (default 0.5)")
    radius.add_argument("--max-distance-px", type=positive, help="matching radius in pixels")
    parser.add_argument("--paper-compatible", action="store_true", help="the benchmark notebooks' counting")
    parser.add_argument("--image-shape", type=int, nargs=2, metavar=("ROWS", "COLS"),
                        help="image size; --paper-compatible needs it (its 1 %% edge rule)")
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    parser.set_defaults(func=_run_score)


def _run_score(args) -> int:
    from .core.io import read_positions, resolve_pixel_size
    from .core.metrics import score_positions

    predicted, truth = read_positions(args.predicted), read_positions(args.truth)
    pixel_size_A, _ = resolve_pixel_size(("--pixel-size-A", args.pixel_size_A), (str(args.truth), truth.pixel_size_A),
                                         (str(args.predicted), predicted.pixel_size_A))
    score = score_positions(
        predicted.positions_rc,
        truth.positions_rc,
        pixel_size_A=pixel_size_A,
        max_distance_A=args.max_distance_A,
        max_distance_px=args.max_distance_px,
        paper_compatible=args.paper_compatible,
        image_shape=tuple(args.image_shape) if args.image_shape else None,
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
    parser.add_argument("--out", type=output_file, required=True, help="output CSV")
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
    parser.add_argument("--out-image", type=output_file, required=True)
    parser.add_argument("--out-labels", type=output_file, required=True)
    parser.add_argument("--size", type=integer(8, MAX_SIMULATED_SIDE_PX), nargs="+", default=[256],
                        help="rows [cols] in pixels")
    for knob, kind, default in _SIMULATE_KNOBS:
        parser.add_argument("--" + knob.replace("_", "-"), dest=knob, type=kind, default=default)
    parser.add_argument("--species", nargs="+", help="render and label only these species")
    parser.add_argument("--uint16", action="store_true", help="store the image as uint16 counts")
    parser.set_defaults(func=_run_simulate)


#: Largest simulated side (px): 16384² float64 scratch arrays already take GBs.
MAX_SIMULATED_SIDE_PX = 16384
_finite, _fraction = number(), number(0.0, 1.0)
#: (keyword of core.simulate.simulate, type, CLI default or None for the simulator's default);
#: the simulator checks the physics (e.g. positive pixel size), the types finiteness and range.
_SIMULATE_KNOBS = [
    ("pixel_size_pm", positive, None), ("resolution_pm", positive, None), ("contrast", _finite, None),
    ("background", _finite, None), ("background_gradient", _finite, None), ("dose_e_per_A2", positive, None),
    ("psnr_db", _finite, None), ("read_noise", non_negative, None), ("random_drift", non_negative, None),
    ("flyback_error", non_negative, None), ("line_jitter", non_negative, None), ("z_exponent", _finite, None),
    ("mode", str, None), ("rotation_deg", _finite, None), ("vacancy_fraction", _fraction, None),
    ("substitution_fraction", _fraction, None), ("boundary", str, None), ("boundary_rotation_deg", _finite, None),
    ("boundary_crystal", str, None), ("adatoms_per_nm2", non_negative, None), ("amorphous", _fraction, None),
    ("label_min_weight", non_negative, None), ("seed", integer(0), None),
]


def _run_simulate(args) -> int:
    from .core.simulate import CRYSTALS, write_simulation

    knobs = {k: getattr(args, k) for k, _, _ in _SIMULATE_KNOBS if getattr(args, k) is not None}
    if args.species:
        known = sorted({name for *_, name in CRYSTALS[args.crystal].basis}) if args.crystal != "none" else []
        unknown = sorted(set(args.species) - set(known))
        if unknown:
            raise UserError(f"--species {' '.join(unknown)}: not in {args.crystal} (its species: {', '.join(known)})")
        knobs["species"] = args.species
    if len(args.size) > 2:
        raise UserError(f"--size takes ROWS [COLS], not {len(args.size)} numbers")
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
    parser.add_argument("--steps", type=integer(1), default=1000)
    parser.add_argument("--out", type=output_file, required=True, help="checkpoint file (.pt)")
    parser.add_argument("--quick", action="store_true", help="at most 5 steps on tiny 32² crops (tests)")
    parser.add_argument("--resume", type=Path, help="continue from this checkpoint")
    parser.add_argument("--device", type=device_name, default="auto")
    parser.add_argument("--seed", type=integer(0), default=0)
    parser.add_argument("--batch-size", type=integer(1), default=8)
    parser.add_argument("--crop", type=integer(16), default=128, help="training crop side in pixels")
    parser.add_argument("--pool-size", type=integer(1), default=2000, help="simulated scenes generated up front")
    parser.add_argument("--lr", type=positive, default=2e-3)
    parser.add_argument("--threads", type=integer(1), help="torch CPU threads")
    parser.add_argument("--max-minutes", type=positive, help="stop (and checkpoint) after this wall time")
    parser.add_argument("--base-channels", type=integer(1), default=16, help="atombench_unet width")
    parser.add_argument("--native-pixel-size", type=pixel_size_A, nargs=2, metavar=("MIN_A", "MAX_A"),
                        help="simulate scenes at pixel sizes in this range (Å) and resample them to the "
                        "trained sampling, as inference does (default: the trained pixel size ± 25 %%)")
    parser.add_argument("--normalize-window", type=integer(3), metavar="PX",
                        help="atombench_unet: standardise inference inputs in a sliding window of this side "
                        "(use the crop size); default: whole image")
    parser.add_argument("--resolution-pm", type=positive, nargs=2, metavar=("MIN_PM", "MAX_PM"),
                        help="probe FWHM range (pm), log-uniform, capped where labelled columns would merge "
                        "(default: uniform 60-125 pm)")
    parser.add_argument("--modalities", action="store_true",
                        help="v3 recipe: add ABF, iDPC-like, low-dose light-element, nanoparticle and thick-support "
                        "scenes and JPEG/low-pass/row-offset artefacts (label policy: docs/models.md)")
    parser.add_argument("--pool-workers", type=integer(1), default=1,
                        help="processes generating the --modalities pool (same pool for any number)")
    parser.add_argument("--export-weights", type=output_file, help="also write fp16 weights + JSON record here")
    parser.set_defaults(func=_run_train)


def _run_train(args) -> int:
    from .models.train import TrainConfig, export_weights, train

    for flag, pair in (("--native-pixel-size", args.native_pixel_size), ("--resolution-pm", args.resolution_pm)):
        if pair and pair[0] > pair[1]:
            raise UserError(f"{flag} {pair[0]:g} {pair[1]:g}: give MIN then MAX")
    if args.resume is not None and not args.resume.is_file():
        raise UserError(f"--resume {args.resume}: {'is a folder' if args.resume.is_dir() else 'no such file'}")
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


def _add_finetune(subparsers) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="adapt a model to one image from hand labels of a region",
        description="Fine-tune an atombench model on the labels of one region of an image (every column in "
        "the region labelled; the rest of the image is not used as negatives) and write the adapted "
        "weights (.pt with its card) for `atombench locate --weights`.",
    )
    parser.add_argument("image", type=Path)
    parser.add_argument("labels", type=Path, help="positions CSV (x_px,y_px) of every column in the region")
    parser.add_argument("--out", type=output_file, required=True, help="adapted weights file (.pt)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model to start from (atombench family; default {DEFAULT_MODEL})")
    parser.add_argument("--weights", type=Path, help="start from this checkpoint instead (e.g. an adapted .pt)")
    parser.add_argument("--region", type=non_negative, nargs=4, metavar=("R0", "C0", "R1", "C1"),
                        help="labelled box in pixels, end exclusive (default: the labels' bounding box)")
    parser.add_argument("--steps", type=integer(1), default=300, help="most training steps (default 300)")
    parser.add_argument("--pixel-size-A", dest="pixel_size_A", type=pixel_size_A, help="override the file's pixel size (Å/px)")
    parser.add_argument("--contrast", choices=("auto", "bright", "dark"), default="auto",
                        help="column polarity rule, kept in the adapted model's card (default auto)")
    parser.add_argument("--seed", type=integer(0), default=0)
    parser.add_argument("--threads", type=integer(1), help="torch CPU threads while training")
    parser.add_argument("--device", type=device_name, default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda, mps")
    parser.set_defaults(func=_run_finetune)


def _run_finetune(args) -> int:
    from .core.io import read_image, read_positions, resolve_pixel_size
    from .models.finetune import finetune, save_adapted_weights

    if args.out.suffix not in (".pt", ".pth"):
        raise UserError(f"--out {args.out}: adapted weights must be a .pt or .pth file")
    image, image_px, _ = read_image(args.image)
    labels_table = read_positions(args.labels)
    labels = labels_table.positions_rc
    pixel_size_A, _ = resolve_pixel_size(("--pixel-size-A", args.pixel_size_A), (str(args.image), image_px),
                                         (str(args.labels), labels_table.pixel_size_A))
    last = [-1]

    def progress(done: int, total: int) -> None:
        if done * 10 // total != last[0]:
            last[0] = done * 10 // total
            print(f"step {done}/{total}", flush=True)

    from .models.registry import get_locator

    base = get_locator(args.model, weights=args.weights, device=args.device, contrast=args.contrast)
    result = finetune(base, image, labels, region=args.region, steps=args.steps,
                      pixel_size_A=pixel_size_A, weights=args.weights,
                      image_name=args.image.name, seed=args.seed, device=args.device, threads=args.threads,
                      progress=progress)
    save_adapted_weights(result, args.out)
    card = result.card
    print(f"validation F1 {card['validation_f1_before']:.3f} -> {card['validation_f1']:.3f} on "
          f"{card['n_labels_validation']} held-out labels; {card['steps']} steps kept of {card['steps_run']} run "
          f"({card['stopped']}), {card['seconds']:.0f} s; written to {args.out}")
    return 0


def _add_classify(subparsers) -> None:
    parser = subparsers.add_parser(
        "classify",
        help="sort atom columns into sublattices by intensity",
        description="Classify columns by a Gaussian mixture of a per-column feature (class count by BIC "
        "unless given) and write the positions CSV with a 'class' column (0 = dimmest).",
    )
    parser.add_argument("image", type=Path)
    parser.add_argument("positions", type=Path, help="positions CSV (x_px,y_px)")
    parser.add_argument("--out", type=output_file, required=True, help="output CSV with a 'class' column")
    parser.add_argument("--n-classes", default="auto", help="number of classes or 'auto' (BIC; default)")
    parser.add_argument("--feature", choices=["integrated_intensity", "peak", "sigma"], default="integrated_intensity")
    parser.add_argument("--max-classes", type=integer(1), default=5, help="largest class count 'auto' tries")
    parser.add_argument("--contrast", choices=("auto", "bright", "dark"), default="auto",
                        help="column polarity (dark: ABF/BF, mirrored before measuring; default auto)")
    parser.set_defaults(func=_run_classify)


def _run_classify(args) -> int:
    from .core.classify import classify_columns
    from .core.io import read_image, read_positions, resolve_pixel_size, write_positions

    n_classes = args.n_classes
    if n_classes != "auto":
        try:
            n_classes = int(n_classes)
        except ValueError:
            raise UserError(f"--n-classes must be an integer or 'auto'; got {args.n_classes!r}") from None
    image, image_px, _ = read_image(args.image)
    table = read_positions(args.positions)
    pixel_size_A, _ = resolve_pixel_size((str(args.image), image_px), (str(args.positions), table.pixel_size_A))
    result = classify_columns(image, table.positions_rc, n_classes, args.feature, max_classes=args.max_classes,
                              contrast=args.contrast)
    write_positions(args.out, table.positions_rc, pixel_size_A=pixel_size_A,
                    features={"class": result.classes})
    for k in range(result.n_classes):
        print(f"class {k}: {result.counts[k]} columns, mean {args.feature} {result.means[k, 0]:.4g} "
              f"± {result.stds[k, 0]:.3g}")
    print(f"{result.n_classes} classes ({'BIC' if args.n_classes == 'auto' else 'given'}, "
          f"{result.contrast_used} columns); written to {args.out}")
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
    _add_finetune,
    _add_classify,
    _add_benchmark,
    _add_robustness,
    _add_dataset,
]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="atombench",
        description="Label, locate and benchmark atom columns in HR-STEM images.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in COMMANDS:
        register(subparsers)
    for sub in subparsers.choices.values():  # `atombench CMD ... --debug` works too
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # a bad option: one line, SystemExit(2)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if not args.debug:  # a reader's log line would make an error two lines; its error says it
        logging.getLogger("tifffile").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        if not args.debug:  # a warning is one line too, not Python's file:line + source listing
            warnings.showwarning = lambda message, category, *_a, **_k: print(
                f"atombench {args.command}: warning: {_one_line(message)}", file=sys.stderr)
        return _dispatch(args)


def _dispatch(args) -> int:
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        if args.debug:
            raise
        print(f"atombench {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
