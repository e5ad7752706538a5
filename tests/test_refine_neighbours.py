"""Refinement next to other columns: weak columns beside strong ones, broad dumbbells (issue 14 item 9).

The images are simulated, so the truth is known: a BaTiO3 [100]-like lattice
(strong A columns, weak B columns at the cell centres, 7.3 px apart) and
Si [110]-like dumbbells whose columns are broad compared with the pair
distance.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_atombench.core.refine import STATUS_CONVERGED, cramer_rao_bound_px, refine_gaussian
from napari_atombench.core.refine.gaussian import _estimate_sigma
from napari_atombench.core.refine.guess import _sigma_from_disk_volume
from napari_atombench.core.simulate import render_columns


def _weak_between_strong(seed=0, cell_px=10.4, sigma_px=2.0, strong=150.0, weak=40.0, background=100.0):
    """Strong columns on a square lattice and weak ones at the cell centres, Poisson noise."""
    grid = np.arange(8.0, 250.0, cell_px)
    corners = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    centres = corners[(corners < grid[-1]).all(axis=1)] + cell_px / 2
    truth = np.vstack([corners, centres])
    is_weak = np.arange(len(truth)) >= len(corners)
    amplitude = np.where(is_weak, weak, strong)
    image = render_columns((260, 260), truth, amplitude, sigma_px, background=background)
    rng = np.random.default_rng(seed)
    return rng.poisson(image).astype(np.float32), truth, is_weak, rng


def _rmse_per_axis(found, truth):
    return float(np.sqrt(np.mean((found - truth) ** 2)))


def test_sigma_from_disk_volume_inverts_the_truncated_volume():
    sigma = np.array([0.5, 1.0, 2.0, 3.0, 5.0, 8.0])
    for radius2 in (4.0, 13.25, 50.0):
        # volume of a unit-amplitude Gaussian inside the disk, over 2 pi
        q = sigma**2 * -np.expm1(-radius2 / (2 * sigma**2))
        assert _sigma_from_disk_volume(q, radius2) == pytest.approx(sigma, rel=1e-6)
    # a disk that is all column (q >= R^2 / 2) says nothing about the width
    assert np.isinf(_sigma_from_disk_volume(np.array([30.0]), 50.0)).all()


def test_starting_sigma_is_not_biased_by_a_small_measuring_disk():
    # isolated columns with sigma 4 px in 25 px windows: the measuring disk (radius ~6 px
    # = 1.5 sigma) holds only 68% of a column's volume, which read as the whole volume
    # gave sigma 3.3 px
    sigma_px = 4.0
    centres = np.stack(np.meshgrid(np.arange(30.0, 200.0, 40.0), np.arange(30.0, 200.0, 40.0), indexing="ij"), -1)
    truth = centres.reshape(-1, 2) + 0.3
    image = render_columns((230, 230), truth, np.full(len(truth), 100.0), sigma_px, background=10.0)
    # the background guess (darkest tenth of the window) sits ~1% of the amplitude high at +-12 px
    assert _estimate_sigma(image, truth, 12) == pytest.approx(sigma_px, rel=0.05)


def test_weak_columns_beside_strong_ones_converge_and_improve_on_the_start():
    image, truth, is_weak, rng = _weak_between_strong()
    start = truth + rng.normal(0.0, 0.5, truth.shape)
    # +-2 sigma windows: the neighbours' tails reach in (before the neighbours were
    # subtracted not one weak column converged here)
    result = refine_gaussian(image, start, window_px=9)
    converged = result.status == STATUS_CONVERGED
    # the weak columns stand >10 noise sigma out of the background: their fits must not be
    # called insignificant because the strong neighbours' tails lift a flat background
    assert np.mean(converged[is_weak]) >= 0.7
    assert converged[~is_weak].all()
    weak = converged & is_weak
    # better than the start (the rmse of ~400 columns scatters by ~2.5%, the margin is ~15%),
    # and within 2.5x the bound of an isolated weak column in the same window
    weak_rmse = _rmse_per_axis(result.positions_rc[weak], truth[weak])
    assert weak_rmse < _rmse_per_axis(start[weak], truth[weak])
    assert weak_rmse < 2.5 * cramer_rao_bound_px(40.0, 2.0, 100.0, window_px=9)
    # a weak column's amplitude, not a noise peak's (the flat background of a +-2 sigma
    # window takes up part of the tails, so it comes out somewhat low)
    assert 0.6 * 40.0 < np.median(result.amplitude[weak]) < 1.2 * 40.0
    strong = converged & ~is_weak
    bound = cramer_rao_bound_px(150.0, 2.0, 100.0, window_px=9)
    assert _rmse_per_axis(result.positions_rc[strong], truth[strong]) < 2.0 * bound
    assert result.parameters["rescued_without_neighbours"] > 0


def _broad_dumbbells(sigma_px=5.0, pair_px=14.5, seed=1):
    """Si [110]-like: pairs 14.5 px apart whose columns have sigma 5 px, Poisson noise."""
    centres = np.stack(np.meshgrid(np.arange(30.0, 330.0, 40.0), np.arange(30.0, 330.0, 56.0), indexing="ij"), -1)
    left = centres.reshape(-1, 2)
    truth = np.vstack([left, left + [0.0, pair_px]])
    rng = np.random.default_rng(seed)
    image = rng.poisson(render_columns((360, 360), truth, np.full(len(truth), 60.0), sigma_px, background=20.0))
    return image.astype(np.float32), truth, truth + rng.normal(0.0, 0.5, truth.shape)


@pytest.mark.parametrize("overlapping", [False, True])
def test_broad_dumbbells_are_not_pulled_together(overlapping):
    # the partner's tail reaches well into each column's window: fitted alone, a pair was
    # pulled ~2 px together; with the partner subtracted (or fitted jointly) it is not
    sigma_px, pair_px = 5.0, 14.5
    image, truth, start = _broad_dumbbells(sigma_px, pair_px)
    n = len(truth) // 2
    result = refine_gaussian(image, start, overlapping=overlapping)
    assert result.counts()[STATUS_CONVERGED] == len(truth)
    assert np.median(result.sigma_px) == pytest.approx(sigma_px, rel=0.1)
    gap = result.positions_rc[n:, 1] - result.positions_rc[:n, 1]
    # the mean gap of n pairs scatters by ~sqrt(2) * rmse / sqrt(n); 0.2 px is > 5 such sigma
    assert abs(np.mean(gap) - pair_px) < 0.2
    assert _rmse_per_axis(result.positions_rc, truth) < 0.35
