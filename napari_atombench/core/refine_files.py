"""Refine the positions of a labels file on an image file (the ``atombench refine`` command)."""

from __future__ import annotations

import os

import pandas as pd

from .io import read_image, read_positions, write_positions
from .refine import RefineResult, refine_positions

__all__ = ["refine_labels_file"]


def refine_labels_file(
    image_path: str | os.PathLike,
    labels_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    method: str = "gaussian",
    dark: bool = False,
) -> RefineResult:
    """Read an image and a positions CSV, refine, write the refined CSV.

    The output keeps the input's feature columns (species...) and adds or
    replaces ``amplitude, sigma_px, background, uncertainty_px, status``;
    ``x_A, y_A`` are written when the image (or else the labels file) has a
    pixel size.

    Returns
    -------
    RefineResult
    """
    image, pixel_size_A, _ = read_image(image_path)
    table = read_positions(labels_path)
    result = refine_positions(image, table.positions_rc, method, dark=dark)
    features = table.features.reset_index(drop=True).copy() if len(table.features.columns) else pd.DataFrame(index=range(len(result)))
    fit = result.features()
    for column in fit.columns:
        features[column] = fit[column].to_numpy()
    write_positions(out_path, result.positions_rc, pixel_size_A or table.pixel_size_A, features=features)
    return result
