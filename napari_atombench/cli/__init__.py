"""The ``atombench`` command line.

Each subcommand (or small group) is a module of this package whose
``register(subparsers)`` adds its parser and sets ``func``; :data:`COMMANDS`
lists them in help order. This module holds what they share: the argparse
types (:func:`number`, :func:`integer`, :func:`output_file`...), :class:`UserError`
and :func:`main`.

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
import importlib
import logging
import math
import pickle
import re
import sys
import warnings
from pathlib import Path
from typing import Callable, Sequence

from .. import __version__


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


def check_input_file(flag: str, path: Path | None) -> None:
    """UserError naming ``flag`` when ``path`` is given but is not an existing file."""
    if path is not None and not path.is_file():
        raise UserError(f"{flag} {path}: {'is a folder' if path.is_dir() else 'no such file'}")


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


#: Subcommand modules, in the order their commands appear in --help (imported when the
#: parser is built, so that importing this package stays light).
COMMANDS = ("view", "info", "locate", "models", "score", "refine", "simulate", "train", "finetune", "classify",
            "benchmark", "dataset")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="atombench",
        description="Label, locate and benchmark atom columns in HR-STEM images.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        importlib.import_module(f"{__name__}.{module}").register(subparsers)
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
