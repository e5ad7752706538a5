"""``atombench refine``: refine the positions of a labels file on an image file by peak fitting."""

from __future__ import annotations

import os
from pathlib import Path

from . import output_file


def register(subparsers) -> None:
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
    parser.set_defaults(func=run_refine)


def run_refine(args) -> int:
    result = refine_labels_file(args.image, args.labels, args.out, method=args.method, dark=args.dark)
    counts = ", ".join(f"{n} {status}" for status, n in result.counts().items())
    print(f"{len(result)} columns refined ({counts}); written to {args.out}")
    return 0


def refine_labels_file(
    image_path: str | os.PathLike,
    labels_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    method: str = "gaussian",
    dark: bool = False,
):
    """Read an image and a positions CSV, refine, write the refined CSV.

    The output keeps the input's feature columns (species...) and adds or
    replaces ``amplitude, sigma_px, background, uncertainty_px, status``;
    ``x_A, y_A`` are written when the image (or else the labels file) has a
    pixel size (:func:`~napari_atombench.core.io.resolve_pixel_size`; a disagreement is warned).

    Returns
    -------
    RefineResult
    """
    import pandas as pd

    from ..core.io import read_image, read_positions, resolve_pixel_size, write_positions
    from ..core.refine import refine_positions

    image, image_px, _ = read_image(image_path)
    table = read_positions(labels_path)
    pixel_size_A, _ = resolve_pixel_size((str(image_path), image_px), (str(labels_path), table.pixel_size_A))
    result = refine_positions(image, table.positions_rc, method, dark=dark)
    features = table.features.reset_index(drop=True).copy() if len(table.features.columns) else pd.DataFrame(index=range(len(result)))
    fit = result.features()
    for column in fit.columns:
        features[column] = fit[column].to_numpy()
    write_positions(out_path, result.positions_rc, pixel_size_A, features=features)
    return result
