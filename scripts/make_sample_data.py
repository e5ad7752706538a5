"""Regenerate the simulated samples in the top-level sample_data/ folder.

That folder is a folder dataset: ``cases.csv`` (the catalogue, also read by
File ▸ Open Sample) names each image and labels file; this script rewrites
the images and labels of the simulated cases listed in ``RECIPES`` and leaves
``cases.csv`` and any other case alone.

Run: python scripts/make_sample_data.py

Each recipe is exactly an ``atombench simulate`` command line, e.g.::

    atombench simulate srtio3_100 --out-image srtio3_100.tif --out-labels srtio3_100_labels.csv \
        --pixel-size-pm 15 --resolution-pm 80 --dose-e-per-A2 8889 --background 0.05 \
        --species Sr TiO --seed 100 --uint16
"""

from __future__ import annotations

from pathlib import Path

from napari_atombench.cli import main
from napari_atombench.sample_data import SAMPLE_DIR, sample_paths

#: the source tree's folder, never an installed copy
SOURCE_DIR = Path(__file__).resolve().parents[1] / "sample_data"

#: 200 counts at the brightest column peak over a background of 10 counts, 0.15 Å/px,
#: 0.8 Å probe. HAADF: pure O columns are ~7 % of Sr (Z^1.7) and vanish in the noise,
#: so only cation columns are rendered and labelled.
COMMON = ["--pixel-size-pm", "15", "--resolution-pm", "80", "--dose-e-per-A2", "8888.889",
          "--background", "0.05", "--uint16", "--size", "256"]
RECIPES = {
    "srtio3": ["srtio3_100", "--species", "Sr", "TiO", "--seed", "100"],
    "ws2": ["ws2", "--rotation-deg", "8", "--seed", "200"],
}


def main_() -> None:
    if SAMPLE_DIR != SOURCE_DIR:
        raise SystemExit(f"napari_atombench reads its samples from {SAMPLE_DIR}, not {SOURCE_DIR}: "
                         f"run this script with the source tree on PYTHONPATH (or an editable install)")
    for name, recipe in RECIPES.items():
        image_path, labels_path = sample_paths(name)
        argv = ["simulate", *recipe, "--out-image", str(image_path), "--out-labels", str(labels_path), *COMMON]
        if main(argv) != 0:
            raise SystemExit(f"simulating {name} failed")


if __name__ == "__main__":
    main_()
