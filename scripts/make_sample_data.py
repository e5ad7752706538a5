"""Regenerate the bundled sample data in napari_atombench/sample_data/.

Run: python scripts/make_sample_data.py
"""

from __future__ import annotations

import json

import tifffile

from napari_atombench.core.io import write_positions
from napari_atombench.core.simulate import SRTIO3_100, WS2_MONOLAYER, simulate_crystal
from napari_atombench.sample_data import SAMPLE_DIR, sample_paths

RECIPES = {
    # HAADF: pure O columns are ~7 % of Sr (Z^1.7) and vanish in the noise, so only
    # cation columns are rendered and labelled.
    "srtio3": dict(crystal=SRTIO3_100, species=("Sr", "TiO"), rotation_deg=0.0, seed=100),
    "ws2": dict(crystal=WS2_MONOLAYER, species=None, rotation_deg=8.0, seed=200),
}


def main() -> None:
    for name, recipe in RECIPES.items():
        recipe = dict(recipe)
        crystal = recipe.pop("crystal")
        sim = simulate_crystal(crystal, shape=(256, 256), pixel_size_A=0.15, resolution_A=0.8, **recipe)
        image_path, labels_path = sample_paths(name)
        pixels_per_nm = 10.0 / sim.pixel_size_A
        tifffile.imwrite(
            image_path,
            sim.image.astype('uint16'),  # Poisson counts: integers
            imagej=True,
            resolution=(pixels_per_nm, pixels_per_nm),
            metadata={"unit": "nm", "atombench": json.dumps(sim.parameters)},
        )
        write_positions(labels_path, sim.positions_rc, sim.pixel_size_A, {"species": sim.species})
        print(f"{image_path.name}: {sim.image.shape}, {len(sim.positions_rc)} columns")


if __name__ == "__main__":
    main()
