"""The simulator: exact positions, knobs, species counts, reproducibility, CLI."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import least_squares
from scipy.spatial import cKDTree

from napari_atombench.core import simulate as sim


def _fit_peak(image: np.ndarray, r: float, c: float, sigma_px: float) -> np.ndarray:
    """Least-squares 2D Gaussian + offset in a window of ±2 sigma; returns (row, col)."""
    h = int(np.ceil(2 * sigma_px))
    r0, c0 = int(round(r)), int(round(c))
    win = image[r0 - h : r0 + h + 1, c0 - h : c0 + h + 1].astype(float)
    rr, cc = np.mgrid[r0 - h : r0 + h + 1, c0 - h : c0 + h + 1]

    def residual(p):
        a, pr, pc, s, b = p
        return (a * np.exp(-((rr - pr) ** 2 + (cc - pc) ** 2) / (2 * s * s)) + b - win).ravel()

    p = least_squares(residual, [win.max() - win.min(), r0, c0, sigma_px, win.min()]).x
    return p[1:3]


def _interior(positions: np.ndarray, shape, margin: float) -> np.ndarray:
    return positions[
        (positions[:, 0] > margin)
        & (positions[:, 1] > margin)
        & (positions[:, 0] < shape[0] - 1 - margin)
        & (positions[:, 1] < shape[1] - 1 - margin)
    ]


@pytest.mark.parametrize(
    "knobs, tolerance_px",
    [
        ({}, 0.01),
        ({"rotation_deg": 17.0, "origin_rc": (40.3, 51.7)}, 0.01),
        ({"random_drift": 1.0}, 0.1),
        ({"flyback_error": 0.7, "line_jitter": 0.3}, 0.1),
    ],
)
def test_positions_agree_with_rendered_peaks(knobs, tolerance_px):
    s = sim.simulate("srtio3_100", shape=(128, 128), species=("Sr", "TiO"), seed=3, **knobs)
    sigma_px = 0.8 / sim.FWHM_PER_SIGMA / s.pixel_size_A
    inner = _interior(s.positions_rc, s.image.shape, 3 * sigma_px)
    assert len(inner) >= 10
    fitted = np.array([_fit_peak(s.clean, r, c, sigma_px) for r, c in inner])
    error = np.hypot(*(fitted - inner).T)
    assert error.max() < tolerance_px, error.max()


def test_undistorted_positions_are_the_lattice():
    s = sim.simulate("ws2", shape=(96, 96), rotation_deg=8.0, seed=1)
    lattice, _ = sim.lattice_positions(sim.WS2_MONOLAYER, (96, 96), 0.15, rotation_deg=8.0)
    d, _ = cKDTree(lattice).query(s.positions_rc)
    assert d.max() < 1e-9


@pytest.mark.parametrize(
    "crystal, per_cell",
    [
        ("srtio3_100", {"Sr": 1, "TiO": 1, "O": 2}),
        ("srtio3_110", {"SrO": 2, "Ti": 2, "O": 2}),
        ("ws2", {"W": 1, "S2": 1}),
        ("graphene", {"C": 2}),
        ("si_110", {"Si": 4}),
    ],
)
def test_species_counts_per_cell(crystal, per_cell):
    shape, px = (300, 300), 0.2
    s = sim.simulate(crystal, shape=shape, pixel_size_pm=100 * px, resolution_pm=60, label_min_weight=0.0,
                     rotation_deg=13.0, seed=0)
    area_A2 = (shape[0] - 1) * (shape[1] - 1) * px**2
    cells = area_A2 / sim.get_crystal(crystal).cell_area_A2()
    names, counts = np.unique(s.species, return_counts=True)
    assert set(names) == set(per_cell)
    for name, count in zip(names, counts):
        assert count == pytest.approx(per_cell[name] * cells, rel=0.06), name


def test_weak_columns_are_rendered_but_not_labelled():
    s = sim.simulate("srtio3_100", shape=(96, 96), seed=0)  # O columns ~7 % of Sr
    assert set(s.species) == {"Sr", "TiO"}
    full = sim.simulate("srtio3_100", shape=(96, 96), seed=0, label_min_weight=0.0)
    assert "O" in set(full.species)
    np.testing.assert_array_equal(s.clean, full.clean)


def test_si_dumbbells_are_136_pm_apart():
    s = sim.simulate("si_110", shape=(128, 128), pixel_size_pm=10, seed=0)
    d, _ = cKDTree(s.positions_rc).query(s.positions_rc, k=2)
    assert np.median(d[:, 1]) * 0.1 == pytest.approx(5.431 / 4, abs=1e-6)


def test_seed_reproduces_and_varies():
    kw = dict(shape=(64, 64), dose_e_per_A2=5e3, random_drift=0.5, vacancy_fraction=0.1, read_noise=1.0)
    a, b = sim.simulate("ws2", seed=7, **kw), sim.simulate("ws2", seed=7, **kw)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.positions_rc, b.positions_rc)
    c = sim.simulate("ws2", seed=8, **kw)
    assert not np.array_equal(a.image, c.image)
    assert sim.random_crystal(5) == sim.random_crystal(5)
    assert sim.random_crystal(5) != sim.random_crystal(6)


def _psnr_db(s) -> float:
    noise = (s.image - s.clean).std()
    return 20 * np.log10(s.clean.max() / noise)


def _michelson(s) -> float:
    hi, lo = np.percentile(s.clean, [99.5, 1])
    return (hi - lo) / (hi + lo)


def _column_fwhm_px(s) -> float:
    r, c = _interior(s.positions_rc, s.image.shape, 20)[0]
    r0, c0 = int(round(r)), int(round(c))
    profile = s.clean[r0, c0 - 8 : c0 + 9] - s.parameters["background"]
    return float((profile > profile.max() / 2).sum())


def _distortion_px(s, reference) -> float:
    d, _ = cKDTree(reference.positions_rc).query(_interior(s.positions_rc, s.image.shape, 8))
    return float(np.sqrt(np.mean(d**2)))


BASE = dict(crystal="srtio3_100", shape=(128, 128), species=("Sr", "TiO"), seed=11)


@pytest.mark.parametrize(
    "knob, values, metric, direction",
    [
        ("pixel_size_pm", [10, 15, 25], lambda s: len(s.positions_rc), +1),
        ("resolution_pm", [60, 90, 130], _column_fwhm_px, +1),
        ("contrast", [0.1, 0.5, 2.0], _michelson, +1),
        ("dose_e_per_A2", [1e3, 1e4, 1e5], _psnr_db, +1),
        ("psnr_db", [5, 15, 30], _psnr_db, +1),
        ("read_noise", [0.01, 0.05, 0.2], _psnr_db, -1),
        ("background", [0.0, 0.3, 1.0], _michelson, -1),
    ],
)
def test_each_knob_moves_its_quality_metric(knob, values, metric, direction):
    series = list(sim.degradation_series(BASE, knob, values))
    assert [s.parameters[knob] for s in series] == values
    measured = np.array([metric(s) for s in series])
    assert np.all(direction * np.diff(measured) > 0), measured


def test_psnr_knob_is_calibrated():
    for target in (10.0, 25.0):
        s = sim.simulate(**{**BASE, "psnr_db": target})
        assert _psnr_db(s) == pytest.approx(target, abs=0.3)


def test_background_gradient_moves_background_difference():
    def left_right(s):
        return float(s.clean[:, :10].mean() - s.clean[:, -10:].mean())

    diffs = [abs(left_right(s)) for s in sim.degradation_series({**BASE, "gradient_angle_deg": 0.0, "background": 0.5},
                                                               "background_gradient", [0.0, 0.3, 0.8])]
    assert diffs[0] < 0.01 < diffs[1] < diffs[2]


@pytest.mark.parametrize("knob", ["random_drift", "flyback_error", "line_jitter"])
def test_scan_distortions_displace_columns_more_with_larger_values(knob):
    reference = sim.simulate(**BASE)
    measured = [_distortion_px(s, reference) for s in sim.degradation_series(BASE, knob, [0.0, 0.5, 2.0])]
    assert measured[0] < 1e-9 < measured[1] < measured[2], measured


def test_flyback_distorts_the_start_of_lines_most():
    reference = sim.simulate(**BASE)
    s = sim.simulate(**{**BASE, "flyback_error": 2.0})
    matched, idx = cKDTree(reference.positions_rc).query(s.positions_rc)
    left = s.positions_rc[:, 1] < 30
    right = s.positions_rc[:, 1] > 90
    assert matched[left].mean() > 3 * matched[right].mean()


def test_defects_boundaries_and_single_atoms():
    full = sim.simulate("srtio3_100", shape=(128, 128), seed=2)
    holes = sim.simulate("srtio3_100", shape=(128, 128), seed=2, vacancy_fraction=0.2)
    assert 0.7 * len(full.positions_rc) < len(holes.positions_rc) < 0.9 * len(full.positions_rc)
    swapped = sim.simulate("srtio3_100", shape=(128, 128), seed=2, substitution_fraction=0.2)
    assert np.char.endswith(swapped.species.astype(str), "*").sum() > 5
    for kw in ({"boundary": "grain"}, {"boundary": "interface", "boundary_crystal": "srtio3_110"}):
        s = sim.simulate("srtio3_100", shape=(128, 128), seed=2, **kw)
        d, _ = cKDTree(s.positions_rc).query(s.positions_rc, k=2)
        assert d[:, 1].min() * s.pixel_size_A >= 0.9
    atoms = sim.simulate(None, shape=(512, 512), pixel_size_pm=20, adatoms_per_nm2=1.0, amorphous=0.3, seed=4)
    expected = 1.0 * (512 * 0.02) ** 2  # minus the few closer than 2 Å to another
    assert 0.7 * expected < len(atoms.positions_rc) < 1.3 * expected
    assert set(atoms.species) == {"Z78"}


def test_random_crystal_respects_minimum_separation():
    for seed in range(5):
        xtal = sim.random_crystal(seed, min_separation_A=1.3)
        s = sim.simulate(xtal, shape=(64, 64), pixel_size_pm=20, label_min_weight=0.0, seed=seed)
        if len(s.positions_rc) > 1:
            d, _ = cKDTree(s.positions_rc).query(s.positions_rc, k=2)
            assert d[:, 1].min() * 0.2 >= 1.3 - 1e-9


def test_abf_mode_inverts_contrast():
    s = sim.simulate("srtio3_100", shape=(64, 64), mode="abf", seed=0)
    r, c = np.round(s.positions_rc).astype(int).T
    assert s.clean[r, c].mean() < s.clean.mean()


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown crystal"):
        sim.simulate("unobtainium")
    with pytest.raises(ValueError, match="unknown knob"):
        list(sim.degradation_series(BASE, "sharpness", [1]))
    with pytest.raises(ValueError, match="positive"):
        sim.simulate("ws2", pixel_size_pm=0)


def test_simulate_crystal_keeps_its_counts_model():
    s = sim.simulate_crystal(sim.SRTIO3_100, shape=(64, 64), species=("Sr",), peak_counts=200, background_counts=10,
                               origin_rc=(32.0, 32.0))
    assert s.clean.max() == pytest.approx(210, rel=1e-3)
    assert s.clean.min() == pytest.approx(10, rel=1e-3)


def test_cli_simulate_writes_tiff_and_labels(tmp_path):
    from napari_atombench.cli import main
    from napari_atombench.core.io import read_image, read_positions

    image, labels = tmp_path / "x.tif", tmp_path / "x.csv"
    rc = main(["simulate", "si_110", "--out-image", str(image), "--out-labels", str(labels), "--size", "96", "80",
               "--pixel-size-pm", "12", "--dose-e-per-A2", "2e4", "--random-drift", "0.3", "--seed", "5"])
    assert rc == 0
    data, pixel_size_A, _ = read_image(image)
    table = read_positions(labels)
    assert data.shape == (96, 80)
    assert pixel_size_A == pytest.approx(0.12)
    expected = sim.simulate("si_110", shape=(96, 80), pixel_size_pm=12, dose_e_per_A2=2e4, random_drift=0.3, seed=5)
    np.testing.assert_allclose(table.positions_rc, expected.positions_rc, atol=1e-5)
    np.testing.assert_array_equal(data, expected.image)
    with pytest.raises(SystemExit):
        main(["simulate", "quartz", "--out-image", str(image), "--out-labels", str(labels)])
