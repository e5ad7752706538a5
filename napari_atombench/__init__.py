"""napari-atombench: label, refine, locate and benchmark atom columns in HR-STEM images."""

from .core.io import LabelTable, as_image_2d, read_image, read_positions, write_positions

__version__ = "0.1.0"

__all__ = [
    "LabelTable",
    "as_image_2d",
    "read_image",
    "read_positions",
    "write_positions",
]
