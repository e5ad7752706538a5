"""napari sample data: simulated images with exact labels, bundled with the package."""

from __future__ import annotations

from ..core.io import read_image, read_positions
from ..sample_data import CATALOGUE, sample_paths
from .layers import image_layer_kwargs, labels_layer_kwargs


def load_sample(name: str) -> list[tuple]:
    """Image layer plus its labels Points layer for a bundled sample."""
    image_path, labels_path = sample_paths(name)
    image, pixel_size_A, metadata = read_image(image_path)
    layer_name = image_path.stem
    labels = read_positions(labels_path)
    metadata["sample"] = CATALOGUE[name][2]
    return [
        (image, image_layer_kwargs(layer_name, pixel_size_A, metadata), "image"),
        (
            labels.positions_rc,
            labels_layer_kwargs(
                f"{layer_name} labels",
                labels.positions_rc,
                pixel_size_A=pixel_size_A,
                features=labels.features,
                metadata={"source_path": str(labels_path), "role": "ground truth"},
            ),
            "points",
        ),
    ]


def srtio3_sample() -> list[tuple]:
    return load_sample("srtio3")


def ws2_sample() -> list[tuple]:
    return load_sample("ws2")
