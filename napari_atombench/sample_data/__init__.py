"""Bundled sample images (simulated, exact labels). See ``catalogue`` for what is here."""

from __future__ import annotations

from pathlib import Path

SAMPLE_DIR = Path(__file__).parent

#: name -> (image file, labels file, display name)
CATALOGUE = {
    "srtio3": ("srtio3_100.tif", "srtio3_100_labels.csv", "SrTiO3 [100] (simulated)"),
    "ws2": ("ws2_monolayer.tif", "ws2_monolayer_labels.csv", "WS2 monolayer (simulated)"),
}


def sample_paths(name: str) -> tuple[Path, Path]:
    """Paths of the image and labels of a bundled sample."""
    if name not in CATALOGUE:
        raise KeyError(f"unknown sample {name!r}; available: {', '.join(CATALOGUE)}")
    image, labels, _ = CATALOGUE[name]
    return SAMPLE_DIR / image, SAMPLE_DIR / labels
