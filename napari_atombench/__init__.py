"""napari-atombench: label, refine, locate and benchmark atom columns in HR-STEM images."""

from .core.io import LabelTable, as_image_2d, read_image, read_positions, write_positions
from .core.match import match_positions
from .core.metrics import Score, compare_positions, score_positions

__version__ = "0.1.0"

__all__ = [
    "LabelTable",
    "Score",
    "as_image_2d",
    "compare_positions",
    "match_positions",
    "read_image",
    "read_positions",
    "score_positions",
    "write_positions",
]
