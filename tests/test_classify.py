"""classify_columns: species of simulated columns recovered, class count chosen by BIC."""

import numpy as np
import pytest

from napari_atombench.core import simulate as sim
from napari_atombench.core.classify import aperture_sums, classify_columns, fit_gmm

PBTIO3 = sim.Crystal("PbTiO3 [100]", ((3.9, 0.0), (0.0, 3.9)),
                     ((0.0, 0.0, "Pb"), (0.5, 0.5, "TiO"), (0.5, 0.0, "O"), (0.0, 0.5, "O")),
                     {"Pb": (82,), "TiO": (22, 8), "O": (8,)})
SRRUO3 = sim.Crystal("SrRuO3 [100]", ((3.93, 0.0), (0.0, 3.93)),
                     ((0.0, 0.0, "Sr"), (0.5, 0.5, "RuO"), (0.5, 0.0, "O"), (0.0, 0.5, "O")),
                     {"Sr": (38,), "RuO": (44, 8), "O": (8,)})

SCENES = {
    "srtio3_100": dict(crystal="srtio3_100"),
    "ws2": dict(crystal="ws2"),
    "pto_sro": dict(crystal=PBTIO3, boundary="interface", boundary_crystal=SRRUO3, boundary_rotation_deg=0.0,
                    boundary_col=128.0),
}


def _truth_rank(s):
    """Species index ordered by column weight (the order classes are numbered in)."""
    names = sorted(set(s.species.tolist()), key=lambda n: s.weights[s.species == n].mean())
    return np.array([names.index(n) for n in s.species.tolist()]), len(names)


@pytest.mark.parametrize("scene", sorted(SCENES))
@pytest.mark.parametrize("seed", [1, 2])
def test_species_recovered_and_bic_count(scene, seed):
    s = sim.simulate(shape=(256, 256), pixel_size_pm=15, resolution_pm=80, dose_e_per_A2=1e4, rotation_deg=3.0 * seed,
                     seed=seed, **SCENES[scene])
    truth, n_species = _truth_rank(s)
    result = classify_columns(s.image, s.positions_rc)
    assert result.n_classes == n_species, result.bic
    assert min(result.bic, key=result.bic.get) == n_species
    assert np.mean(result.classes == truth) >= 0.98
    assert result.counts.sum() == len(s.positions_rc)
    assert np.all(np.diff(result.means[:, 0]) > 0)  # numbered dimmest first


def test_fixed_count_and_other_features():
    s = sim.simulate("srtio3_100", shape=(192, 192), pixel_size_pm=15, resolution_pm=80, dose_e_per_A2=1e4, seed=3)
    truth, _ = _truth_rank(s)
    for feature in ("integrated_intensity", "peak"):
        result = classify_columns(s.image, s.positions_rc, n_classes=2, feature=feature)
        assert list(result.bic) == [2]
        assert np.mean(result.classes == truth) >= 0.98, feature
    sig = classify_columns(s.image, s.positions_rc, n_classes=2, feature="sigma")
    assert sig.features.shape == (len(s.positions_rc), 2)
    assert sig.classes.shape == (len(s.positions_rc),)


@pytest.mark.parametrize("scene", sorted(SCENES))
def test_dark_columns_are_mirrored_before_measuring(scene):
    """An ABF-like image (the HAADF one inverted): "auto" reads it as dark columns and
    finds the same species as on the bright image; forcing "bright" would measure the
    background between columns instead."""
    s = sim.simulate(shape=(256, 256), pixel_size_pm=15, resolution_pm=80, dose_e_per_A2=1e4, rotation_deg=3.0,
                     seed=1, **SCENES[scene])
    truth, n_species = _truth_rank(s)
    dark = s.image.max() - s.image
    result = classify_columns(dark, s.positions_rc)
    assert result.contrast_used == "dark" and result.n_classes == n_species
    assert np.mean(result.classes == truth) >= 0.98
    assert classify_columns(s.image, s.positions_rc).contrast_used == "bright"
    assert classify_columns(dark, s.positions_rc, contrast="dark").n_classes == n_species


def test_aperture_sum_of_a_border_column_matches_an_interior_one():
    image = sim.render_columns((40, 40), np.array([[20.0, 20.0], [20.0, 0.2]]), 1.0, 2.0)
    sums = aperture_sums(image, np.array([[20.0, 20.0], [20.0, 0.2]]), 4.0)
    # mirrored pixels are rounded to the grid (up to half a pixel off): ~10 %, where
    # cutting the disk would lose about half of it
    assert sums[1] == pytest.approx(sums[0], rel=0.1)


def test_gmm_separates_two_blobs():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (200, 1)), rng.normal(8, 1, (100, 1))])
    fit = fit_gmm(x, 2)
    assert sorted(np.round(fit["means"][:, 0]).tolist()) == [0.0, 8.0]
    assert fit_gmm(x, 2)["bic"] < fit_gmm(x, 1)["bic"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_classes=0), "n_classes"),
    (dict(n_classes="two"), "n_classes"),
    (dict(feature="area"), "feature"),
    (dict(feature="peak", aperture_radius_px=3.0), "aperture_radius_px"),
])
def test_bad_options_rejected(kwargs, message):
    s = sim.simulate("srtio3_100", shape=(64, 64), seed=0)
    with pytest.raises(ValueError, match=message):
        classify_columns(s.image, s.positions_rc, **kwargs)


def test_bad_positions_rejected():
    with pytest.raises(ValueError, match="positions_rc"):
        classify_columns(np.zeros((10, 10)), np.zeros((1, 2)))
