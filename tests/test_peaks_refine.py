"""Column spacing, seeds, snapping and refinement (napari_atombench.core.peaks / refine)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree

from napari_atombench.core.io import read_image, read_positions
from napari_atombench.core.peaks import estimate_separation, find_seeds, snap_to_peak
from napari_atombench.core.refine import (
    STATUS_CONVERGED,
    STATUS_FELL_BACK,
    STATUS_REJECTED,
    cramer_rao_bound_px,
    refine_center_of_mass,
    refine_gaussian,
)
from napari_atombench.core.simulate import Crystal, render_columns, simulate_crystal
from napari_atombench.models.base import Cancelled
from napari_atombench.sample_data import sample_paths

SQUARE = Crystal("square", ((4.0, 0.0), (0.0, 4.0)), ((0.0, 0.0, "A"),), {"A": (40,)})
RECTANGULAR = Crystal("rectangular", ((5.0, 0.0), (0.0, 3.0)), ((0.0, 0.0, "A"),), {"A": (40,)})
HEXAGONAL = Crystal("hexagonal", ((3.0, 0.0), (1.5, 3.0 * np.sqrt(3.0) / 2.0)), ((0.0, 0.0, "A"),), {"A": (40,)})


def _sample(name):
    image_path, labels_path = sample_paths(name)
    image, _, _ = read_image(image_path)
    return image, read_positions(labels_path).positions_rc


def _matched_fraction(found, truth, tolerance_px):
    if len(found) == 0:
        return 0.0
    distance, _ = cKDTree(found).query(truth)
    return float(np.mean(distance <= tolerance_px))


# ---------------------------------------------------------------- separation


@pytest.mark.parametrize(
    "crystal, nearest_A",
    [(SQUARE, 4.0), (RECTANGULAR, 3.0), (HEXAGONAL, 3.0)],
    ids=["square", "rectangular", "hexagonal"],
)
@pytest.mark.parametrize("rotation_deg", [0.0, 23.0])
def test_separation_on_lattices(crystal, nearest_A, rotation_deg):
    sim = simulate_crystal(crystal, rotation_deg=rotation_deg, peak_counts=20, background_counts=5, seed=3)
    expected_px = nearest_A / sim.pixel_size_A
    assert estimate_separation(sim.image) == pytest.approx(expected_px, rel=0.02)


def test_separation_finds_weak_sublattice_distance():
    # WS2: the nearest columns are W-S2 (1.84 Å) although S2 is 7x dimmer than W
    image, truth = _sample("ws2")
    distance, _ = cKDTree(truth).query(truth, k=2)
    assert estimate_separation(image) == pytest.approx(np.median(distance[:, 1]), rel=0.02)


def _dumbbells(sigma_px=4.0, pair_px=14.5, period_px=(38.0, 54.0), shape=(400, 400), seed=0):
    """Si [110]-like image: column pairs pair_px apart on a rectangular lattice, Poisson noise."""
    rows, cols = np.meshgrid(np.arange(10, shape[0] - 10, period_px[0]), np.arange(10, shape[1] - 10 - pair_px, period_px[1]),
                             indexing="ij")
    left = np.column_stack([rows.ravel(), cols.ravel()])
    truth = np.vstack([left, left + [0.0, pair_px]])
    image = render_columns(shape, truth, np.full(len(truth), 60.0), sigma_px, background=10.0)
    return np.random.default_rng(seed).poisson(image).astype(np.float64), truth


def _single_atoms(n=25, shape=(512, 512), min_distance_px=12.0, seed=0):
    """Sparse single atoms at random places on a textured (amorphous-carbon-like) support, Poisson noise."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((0, 2))
    while len(truth) < n:
        point = rng.uniform(20, np.array(shape) - 20, size=(1, 2))
        if not len(truth) or np.min(np.hypot(*(truth - point).T)) >= min_distance_px:
            truth = np.vstack([truth, point])
    support = ndimage.gaussian_filter(rng.normal(size=shape), 6.0)
    image = render_columns(shape, truth, np.full(n, 80.0), 1.8, background=40.0) + 20.0 * support / support.std()
    return rng.poisson(np.clip(image, 0, None)).astype(np.float64), truth


def test_separation_on_dumbbells_is_the_pair_distance():
    # the autocorrelation alone finds the dumbbell-to-dumbbell distance (the pair merges with its centre)
    image, truth = _dumbbells()
    nearest = np.median(cKDTree(truth).query(truth, k=2)[0][:, 1])
    estimate = estimate_separation(image)
    assert 0.8 * nearest <= estimate <= 1.1 * nearest
    seeds = find_seeds(image, estimate)
    assert _matched_fraction(seeds, truth, 2.0) >= 0.95  # both columns of every pair seeded


def test_separation_on_sparse_single_atoms():
    image, truth = _single_atoms()
    nearest = cKDTree(truth).query(truth, k=2)[0][:, 1]
    estimate = estimate_separation(image)
    # no lattice: between half the closest pair and the median neighbour distance (the
    # autocorrelation alone answers with the support's texture scale, beyond the median)
    assert 0.5 * nearest.min() <= estimate <= np.median(nearest)


def test_separation_refuses_tiny_or_flat_images():
    with pytest.raises(ValueError, match="too small"):
        estimate_separation(np.ones((4, 4)))
    with pytest.raises(ValueError, match="no contrast"):
        estimate_separation(np.zeros((64, 64)))


# ---------------------------------------------------------------- seeds


@pytest.mark.parametrize("name", ["srtio3", "ws2"])
def test_seeds_recall_on_sample_data(name):
    image, truth = _sample(name)
    seeds = find_seeds(image)
    assert _matched_fraction(seeds, truth, 2.0) >= 0.98  # recall
    # Precision over seeds at least 1.5 px inside: the sample renders columns centred just
    # outside the frame too, real peaks that no label (centres inside only) can describe.
    rows, cols = image.shape
    inside = (seeds >= 1.5).all(axis=1) & (seeds[:, 0] <= rows - 2.5) & (seeds[:, 1] <= cols - 2.5)
    assert _matched_fraction(truth, seeds[inside], 2.0) >= 0.98  # precision


def test_seeds_dark_columns():
    sim = simulate_crystal(SQUARE, peak_counts=50, background_counts=5, seed=1)
    abf = sim.image.max() - sim.image  # dark columns on a bright background
    bright_seeds = find_seeds(abf, threshold=0.3)
    dark_seeds = find_seeds(abf, dark=True)
    truth = sim.positions_rc[(sim.positions_rc.min(axis=1) > 3) & (sim.positions_rc.max(axis=1) < 252)]
    assert _matched_fraction(dark_seeds, truth, 2.0) >= 0.98
    assert _matched_fraction(bright_seeds, truth, 2.0) < 0.5


def test_seeds_validation():
    image, _ = _sample("srtio3")
    with pytest.raises(ValueError, match="separation_px"):
        find_seeds(image, separation_px=-3)
    with pytest.raises(ValueError, match="threshold"):
        find_seeds(image, threshold=1.5)
    with pytest.raises(ValueError, match="NaN"):
        find_seeds(np.full((32, 32), np.nan))


# ---------------------------------------------------------------- snap


def test_snap_to_peak_moves_click_onto_column():
    image, truth = _sample("srtio3")
    target = truth[50]
    click = target + [3.0, -2.5]
    snapped = snap_to_peak(image, click, radius_px=6.0)
    assert snapped.shape == (2,)
    assert np.hypot(*(snapped - target)) < 0.7
    assert np.hypot(*(click - target)) > 3.5
    many = snap_to_peak(image, truth[:10] + 1.5, radius_px=6.0)
    assert many.shape == (10, 2)
    assert np.max(np.hypot(*(many - truth[:10]).T)) < 0.8


def test_snap_to_peak_bad_input():
    image, _ = _sample("srtio3")
    with pytest.raises(ValueError, match="outside"):
        snap_to_peak(image, [300.0, 10.0], radius_px=5)
    with pytest.raises(ValueError, match="not finite"):
        snap_to_peak(image, [np.nan, 10.0], radius_px=5)
    with pytest.raises(ValueError, match="radius"):
        snap_to_peak(image, [10.0, 10.0], radius_px=0)
    assert snap_to_peak(image, np.zeros((0, 2)), radius_px=5).shape == (0, 2)


# ---------------------------------------------------------------- refinement


@pytest.fixture(scope="module")
def perturbed():
    """A square lattice, sigma 2.26 px, 100 counts peak on 10 background; starts 1.5 px off (RMS)."""
    sim = simulate_crystal(
        Crystal("sq", ((2.4, 0.0), (0.0, 2.4)), ((0.0, 0.0, "A"),), {"A": (40,)}),
        shape=(320, 320), peak_counts=100.0, background_counts=10.0, seed=11,
    )
    truth = sim.positions_rc[(sim.positions_rc.min(axis=1) > 10) & (sim.positions_rc.max(axis=1) < 309)]
    rng = np.random.default_rng(5)
    start = truth + rng.normal(0.0, 1.5 / np.sqrt(2.0), truth.shape)  # 1.5 px radial RMS
    sigma_px = sim.parameters["resolution_pm"] / 100.0 / 2.3548 / sim.pixel_size_A
    return sim.image, truth, start, sigma_px


def _rmse_per_axis(found, truth):
    return float(np.sqrt(np.mean((found - truth) ** 2)))


def test_gaussian_refinement_reaches_cramer_rao_bound(perturbed):
    image, truth, start, sigma_px = perturbed
    result = refine_gaussian(image, start)
    bound = cramer_rao_bound_px(100.0, sigma_px, 10.0, window_px=result.parameters["window_px"])
    assert result.counts()[STATUS_CONVERGED] == len(truth)
    rmse = _rmse_per_axis(result.positions_rc, truth)
    assert _rmse_per_axis(start, truth) > 1.0
    assert rmse <= 1.2 * bound
    assert np.median(result.sigma_px) == pytest.approx(sigma_px, rel=0.03)
    assert np.median(result.amplitude) == pytest.approx(100.0, rel=0.05)
    assert np.median(result.background) == pytest.approx(10.0, rel=0.1)
    # the reported uncertainty is calibrated: close to the bound and to the real error
    assert np.median(result.position_uncertainty_px) == pytest.approx(bound, rel=0.15)


def test_elliptical_fit_measures_stretch():
    rng = np.random.default_rng(2)
    centres = np.stack(np.meshgrid(np.arange(12, 200, 24.0), np.arange(12, 200, 24.0), indexing="ij"), -1).reshape(-1, 2)
    truth = centres + rng.uniform(-0.5, 0.5, centres.shape)
    yy, xx = np.mgrid[0:200, 0:200]
    clean = np.full((200, 200), 5.0)
    theta = np.deg2rad(30.0)
    for r, c in truth:  # major axis 3 px at 30 deg from the column axis, minor 1.5 px
        dy, dx = yy - r, xx - c
        u = dx * np.cos(theta) + dy * np.sin(theta)
        v = -dx * np.sin(theta) + dy * np.cos(theta)
        clean += 300.0 * np.exp(-0.5 * ((u / 3.0) ** 2 + (v / 1.5) ** 2))
    image = rng.poisson(clean).astype(np.float32)
    result = refine_gaussian(image, truth + 0.7, window_px=17, elliptical=True)
    assert result.counts()[STATUS_CONVERGED] == len(truth)
    assert np.median(result.sigma_major_px) == pytest.approx(3.0, rel=0.05)
    assert np.median(result.sigma_minor_px) == pytest.approx(1.5, rel=0.05)
    assert np.median(result.rotation_rad) == pytest.approx(theta, abs=0.05)
    assert _rmse_per_axis(result.positions_rc, truth) < 0.1


def test_center_of_mass_refinement_near_bound(perturbed):
    image, truth, start, sigma_px = perturbed
    result = refine_center_of_mass(image, start)
    bound = cramer_rao_bound_px(100.0, sigma_px, 10.0)
    assert result.counts()[STATUS_CONVERGED] == len(truth)
    rmse = _rmse_per_axis(result.positions_rc, truth)
    # centre of mass is not efficient, but it removes the 1.5 px error to within 2x the bound
    assert rmse <= 2.0 * bound
    assert result.method == "center_of_mass"
    assert np.isfinite(result.position_uncertainty_px).all()


def test_joint_fit_beats_independent_fit_on_dumbbells():
    rng = np.random.default_rng(0)
    centres = np.stack(np.meshgrid(np.arange(30, 300, 40.0), np.arange(30, 300, 40.0), indexing="ij"), -1).reshape(-1, 2)
    gap_px = 5.0  # a dumbbell: two columns 2.5 sigma apart
    truth = np.concatenate([centres - [0, gap_px / 2], centres + [0, gap_px / 2]])
    image = rng.poisson(render_columns((320, 320), truth, 200.0, 2.0, background=10.0)).astype(np.float32)
    start = truth + rng.normal(0, 0.3, truth.shape)
    n = len(centres)
    independent = refine_gaussian(image, start, window_px=15)
    joint = refine_gaussian(image, start, window_px=15, overlapping=True)
    gap_independent = independent.positions_rc[n:, 1] - independent.positions_rc[:n, 1]
    gap_joint = joint.positions_rc[n:, 1] - joint.positions_rc[:n, 1]
    # independent fits are pulled together by the partner's tail (here onto one peak,
    # which is flagged)...
    assert np.mean(gap_independent) < gap_px - 1.0
    assert independent.counts()[STATUS_CONVERGED] < len(truth) // 2
    assert any("same peak" in r for r in independent.reason)
    # ...the joint fit is not (bias well below its own scatter)
    assert abs(np.mean(gap_joint) - gap_px) < 0.05
    assert _rmse_per_axis(joint.positions_rc, truth) < 0.15
    assert joint.counts()[STATUS_CONVERGED] == len(truth)
    # partners share a group id
    assert np.array_equal(joint.group[:n], joint.group[n:]) and (joint.group >= 0).all()


def test_bad_positions_get_statuses_not_crashes():
    image, truth = _sample("srtio3")
    positions = np.vstack([truth[:3], [[np.nan, 4.0], [-20.0, 5.0], [10.0, 400.0]]])
    for refine in (refine_gaussian, refine_center_of_mass):
        result = refine(image, positions)
        assert list(result.status[:3]) == [STATUS_CONVERGED] * 3
        assert list(result.status[3:]) == [STATUS_REJECTED] * 3
        assert result.reason[3] == "position not finite"
        assert result.reason[4] == "outside the image"
        np.testing.assert_array_equal(result.positions_rc[4:], positions[4:])  # rejected: unchanged


def test_flat_window_falls_back_or_is_rejected():
    rng = np.random.default_rng(0)
    noise = rng.poisson(np.full((64, 64), 10.0)).astype(np.float32)
    result = refine_gaussian(noise, [[30.0, 30.0]])
    assert result.status[0] == STATUS_FELL_BACK
    assert "Gaussian fit failed" in result.reason[0]
    flat = np.full((64, 64), 5.0, dtype=np.float32)
    result = refine_gaussian(flat, [[30.0, 30.0]])
    assert result.status[0] == STATUS_REJECTED and "undefined" in result.reason[0]


def test_bad_arguments_raise_clear_errors():
    image, truth = _sample("srtio3")
    assert len(refine_gaussian(image, np.zeros((0, 2)))) == 0
    assert len(refine_center_of_mass(image, [])) == 0
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        refine_gaussian(image, [[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="larger than the 256x256 image"):
        refine_gaussian(image, truth, window_px=301)
    with pytest.raises(ValueError, match="larger than the 256x256 image"):
        refine_center_of_mass(image, truth, radius_px=200)
    with pytest.raises(ValueError, match="NaN"):
        refine_gaussian(np.where(np.eye(256, dtype=bool), np.nan, image), truth)
    with pytest.raises(ValueError, match="weighting"):
        refine_gaussian(image, truth, weighting="cauchy")


def test_progress_and_cancel():
    image, truth = _sample("ws2")
    calls = []
    refine_gaussian(image, truth, chunk_size=100, progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, len(truth)) and calls[-1] == (len(truth), len(truth))
    assert len(calls) >= 4
    with pytest.raises(Cancelled):
        refine_gaussian(image, truth, chunk_size=100, cancelled=lambda: True)
    with pytest.raises(Cancelled):
        refine_center_of_mass(image, truth, chunk_size=100, cancelled=lambda: True)


def test_cramer_rao_bound_limit():
    # negligible background and a wide window: sigma / sqrt(N photons)
    amplitude, sigma = 1000.0, 3.0
    n_photons = 2 * np.pi * amplitude * sigma**2
    bound = cramer_rao_bound_px(amplitude, sigma, 1e-6, window_px=41)
    assert bound == pytest.approx(sigma / np.sqrt(n_photons), rel=0.05)
    # background only makes it worse
    assert cramer_rao_bound_px(amplitude, sigma, 50.0, window_px=41) > 1.1 * bound


def test_refine_command_writes_refined_csv(tmp_path, capsys):
    from napari_atombench.cli import main
    from napari_atombench.core.io import write_positions

    image_path, labels_path = sample_paths("srtio3")
    truth = read_positions(labels_path)
    noisy = tmp_path / "clicks.csv"
    rng = np.random.default_rng(0)
    write_positions(noisy, truth.positions_rc + rng.normal(0, 1.0, truth.positions_rc.shape),
                    features=truth.features)
    out = tmp_path / "refined.csv"
    assert main(["refine", str(image_path), str(noisy), "--method", "joint", "--out", str(out)]) == 0
    assert "181 columns refined" in capsys.readouterr().out
    refined = read_positions(out)
    assert refined.pixel_size_A == pytest.approx(0.15)
    assert list(refined.features["species"]) == list(truth.features["species"])
    assert set(refined.features["status"]) == {"converged"}
    assert _rmse_per_axis(refined.positions_rc, truth.positions_rc) < 0.15
    assert main(["refine", str(image_path), str(noisy), "--method", "com", "--out", str(tmp_path / "missing" / "x.csv")]) == 0
    assert main(["refine", str(tmp_path / "nope.tif"), str(noisy), "--out", str(out)]) == 2


def test_broad_blur_matches_the_direct_gaussian():
    """The background blur of estimate_separation is computed on a grid sigma/8 coarser:
    linear interpolation errs by about (8/sigma)²/8 of the blurred image's curvature scale,
    the area average adds (8²/6)/sigma² to the variance (0.1 % of sigma at 64) -- both far
    below 0.1 % of the input's range."""
    from scipy import ndimage

    from napari_atombench.core.peaks import _broad_blur

    rng = np.random.default_rng(0)
    r, c = np.mgrid[:512, :400]
    for img in (rng.normal(size=r.shape), 0.01 * r + 0.005 * c + rng.normal(size=r.shape),
                np.cos(r / 3.0) * np.cos(c / 3.0) + 0.002 * r):
        direct = ndimage.gaussian_filter(img, 64.0)
        fast = _broad_blur(img, 64.0)
        assert fast.shape == img.shape and fast.dtype == img.dtype
        assert np.abs(fast - direct).max() < 1e-3 * np.ptp(img)
    small = rng.normal(size=(64, 64))  # sigma under 16: the direct filter
    assert np.array_equal(_broad_blur(small, 8.0), ndimage.gaussian_filter(small, 8.0))


def test_central_crop_is_centred_and_bounded():
    from napari_atombench.core.peaks import central_crop

    img = np.arange(600 * 300, dtype=float).reshape(600, 300)
    crop = central_crop(img, 200)
    assert crop.shape == (200, 200) and crop[0, 0] == img[200, 50]
    assert central_crop(img, 10).shape == (128, 128)  # never under the minimum side
    assert central_crop(img, 5000).shape == img.shape
