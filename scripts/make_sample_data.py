"""Regenerate the bundled sample data in napari_atombench/sample_data/.

Run: python scripts/make_sample_data.py

Each recipe is exactly an ``atombench simulate`` command line, e.g.::

    atombench simulate srtio3_100 --out-image srtio3_100.tif --out-labels srtio3_100_labels.csv \
        --pixel-size-pm 15 --resolution-pm 80 --dose-e-per-A2 8889 --background 0.05 \
        --species Sr TiO --seed 100 --uint16
"""

from __future__ import annotations

from napari_atombench.cli import main
from napari_atombench.sample_data import sample_paths

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
    for name, recipe in RECIPES.items():
        image_path, labels_path = sample_paths(name)
        argv = ["simulate", *recipe, "--out-image", str(image_path), "--out-labels", str(labels_path), *COMMON]
        if main(argv) != 0:
            raise SystemExit(f"simulating {name} failed")


if __name__ == "__main__":
    main_()
