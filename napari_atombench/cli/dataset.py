"""``atombench dataset info``: what a wei_atom.h5 / cases.csv folder holds."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("dataset", help="inspect a benchmark dataset (wei_atom.h5 or a cases.csv folder)")
    info = parser.add_subparsers(dest="action", metavar="ACTION", required=True).add_parser(
        "info", help="print groups, counts, dtypes, metadata columns, kinds and materials")
    info.add_argument("path", type=Path)
    info.set_defaults(func=run_dataset_info)


def run_dataset_info(args) -> int:
    from ..core.dataset import dataset_info

    if not args.path.exists():
        raise FileNotFoundError(f"no such file or folder: {args.path}")
    text, readable = dataset_info(args.path)
    print(text)
    return 0 if readable else 1
