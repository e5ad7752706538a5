"""Image-quality metrics move the right way along simulated series."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atombench.core.quality import (
    QUALITY_COLUMNS,
    column_separation_px,
    contrast,
    fft_resolution_px,
    noise_sigma,
    quality_metrics,
)
from napari_atombench.core.simulate import SRTIO3_100, WS2_MONOLAYER, simulate_crystal


def test_noise_sigma_matches_known_gaussian_noise():
    rng = np.random.default_rng(1)
    image = rng.normal(10.0, 2.5, size=(128, 128))
    assert noise_sigma(image) == pytest.approx(2.5, rel=0.05)


def test_psnr_estimate_rises_with_dose():
    values = [quality_metrics(s.image, s.pixel_size_A, s.positions_rc)["psnr_db"]
              for s in (simulate_crystal(SRTIO3_100, shape=(96, 96), peak_counts=c, seed=2) for c in (10, 100, 1000))]
    assert values[0] < values[1] < values[2]
    assert values[2] - values[0] > 10.0  # 100x the counts is 20 dB for pure shot noise


def test_resolution_estimate_grows_with_blur_both_methods():
    fitted, fft = [], []
    for resolution_A in (0.6, 1.0, 1.5):
        sim = simulate_crystal(WS2_MONOLAYER, shape=(128, 128), resolution_A=resolution_A, peak_counts=500, seed=1)
        with_labels = quality_metrics(sim.image, sim.pixel_size_A, sim.positions_rc)
        without = quality_metrics(sim.image, sim.pixel_size_A)
        assert with_labels["resolution_method"] == "fwhm" and without["resolution_method"] == "fft"
        fitted.append(with_labels["resolution_pm"])
        fft.append(without["resolution_pm"])
    assert fitted[0] < fitted[1] < fitted[2] and fft[0] < fft[1] < fft[2]
    assert fitted[0] == pytest.approx(60.0, rel=0.2)  # the probe FWHM, where columns do not overlap


def test_atoms_per_100px_follows_pixel_size():
    values = []
    for pixel_size_A in (0.1, 0.2):
        sim = simulate_crystal(SRTIO3_100, shape=(96, 96), pixel_size_A=pixel_size_A, seed=0)
        q = quality_metrics(sim.image, sim.pixel_size_A, sim.positions_rc)
        assert q["separation_source"] == "labels"
        # nearest neighbour along [100]: a/2 = 1.9525 Å
        assert q["atoms_per_100px"] == pytest.approx(100 * pixel_size_A / 1.9525, rel=1e-3)
        values.append(q["atoms_per_100px"])
    assert values[1] > values[0]


def test_contrast_of_raw_image_and_edge_cases():
    assert contrast(np.array([[2.0, 4.0]])) == pytest.approx(0.5)
    assert contrast(np.array([[10.0, 11.0]])) == pytest.approx(1 / 11)
    assert contrast(np.zeros((3, 3))) is None
    sim = simulate_crystal(SRTIO3_100, shape=(64, 64), seed=0)
    q = quality_metrics(sim.image, None, None, raw=sim.clean + 100.0, metadata={"dose_e_per_A2": "250"})
    assert q["contrast"] < 0.8  # raw image with a high background
    assert q["pixel_size_pm"] is None and q["resolution_pm"] is None
    assert q["dose_e_per_A2"] == 250.0
    assert set(q) == set(QUALITY_COLUMNS)


def test_separation_without_labels_or_peaks_module():
    assert column_separation_px(None, np.zeros((1, 2))) == (None, "none")
    positions = np.array([[0.0, 0.0], [0.0, 7.0], [0.0, 14.0]])
    assert column_separation_px(None, positions) == (7.0, "labels")


def test_fft_limit_never_below_two_pixels():
    rng = np.random.default_rng(0)
    assert fft_resolution_px(rng.normal(size=(64, 64))) >= 2.0
