"""Which simulated columns can be seen: matched-filter SNR, Sparrow's limit, and the label policy built on them."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atombench.core import simulate as sim
from napari_atombench.core.detectability import ROSE_SNR, column_snr, localisation_snr, matched_filter


def _filter_response(images: np.ndarray, centre: tuple[int, int], h: np.ndarray) -> np.ndarray:
    half = h.shape[0] // 2
    r, c = centre
    return (images[:, r - half : r + half + 1, c - half : c + half + 1] * h).sum(axis=(1, 2))


def test_snr_is_the_matched_filters_signal_over_its_noise():
    # one column of A counts on B counts/px with Poisson noise: the ratio column_snr reports is the mean
    # filter response over its spread, measured here over many noisy images (no formula shared)
    rng = np.random.default_rng(0)
    shape, centre, sigma, amplitude, background = (25, 25), (12, 12), 2.0, 6.0, 4.0
    clean = background + amplitude * sim.render_columns(shape, np.array([centre], float), 1.0, sigma)
    _, h = matched_filter(sigma)
    with_column = _filter_response(rng.poisson(clean, (2000, *shape)).astype(float), centre, h)
    without = _filter_response(rng.poisson(np.full(shape, background), (2000, *shape)).astype(float), centre, h)
    measured = (with_column.mean() - without.mean()) / with_column.std()
    predicted = column_snr(np.array([centre], float), [amplitude], sigma, clean)[0]
    # 2000 draws: a std estimate scatters by 1/sqrt(2 n) = 1.6 %, the mean difference by ~3 %/SNR
    assert predicted == pytest.approx(measured, rel=0.05)
    # shot noise: SNR grows as the square root of the dose; no noise at all: infinitely visible
    assert column_snr(np.array([centre], float), [4 * amplitude], sigma, 4 * clean)[0] == pytest.approx(2 * predicted)
    assert np.isinf(column_snr(np.array([centre], float), [amplitude], sigma, np.zeros(shape))[0])


def test_texture_the_observer_does_not_know_adds_clutter():
    rng = np.random.default_rng(1)
    variance = np.full((96, 96), 4.0)
    positions = np.array([[48.0, 48.0]])
    plain = column_snr(positions, [5.0], 2.0, variance)[0]
    texture = 3.0 * np.abs(rng.normal(size=(96, 96)))
    from scipy.ndimage import gaussian_filter

    cluttered = column_snr(positions, [5.0], 2.0, variance, gaussian_filter(texture, 2.0) * 4)[0]
    assert cluttered < plain
    assert column_snr(positions, [5.0], 2.0, variance, np.full((96, 96), 7.0))[0] == pytest.approx(plain)  # flat: none


def _scene(dose, **kw):
    return sim.simulate("srtio3_100", shape=128, pixel_size_pm=15, resolution_pm=90, dose_e_per_A2=dose,
                        background=0.2, seed=4, **kw)


def test_label_min_snr_splits_the_labels_into_seen_and_unseen():
    everything = _scene(100.0)
    low = _scene(100.0, label_min_snr=ROSE_SNR)
    assert len(low.positions_rc) > 0 and len(low.unseen_rc) > 0
    # the same columns at the same places, split in two; the image is untouched
    split = np.vstack([low.positions_rc, low.unseen_rc])
    assert len(split) == len(everything.positions_rc)
    assert {tuple(p) for p in split.round(9).tolist()} == {tuple(p) for p in everything.positions_rc.round(9).tolist()}
    np.testing.assert_array_equal(low.image, everything.image)
    # the dim Ti-O columns go first; at a high dose every column is seen
    assert set(low.species) == {"Sr"} and set(everything.species) == {"Sr", "TiO"}
    assert len(_scene(3e5, label_min_snr=ROSE_SNR).unseen_rc) == 0
    assert len(everything.unseen_rc) == 0 and everything.parameters["label_min_snr"] is None


@pytest.mark.parametrize("amplitude, background, sigma_px, pixel_size_A",
                         [(30.0, 3000.0, 4.0, 0.25), (10.0, 5000.0, 6.0, 0.2), (50.0, 2000.0, 2.5, 0.3)])
def test_localisation_snr_agrees_with_the_fisher_information_of_a_gaussian_fit(amplitude, background, sigma_px,
                                                                               pixel_size_A):
    # an independent route: the numerical Cramér-Rao bound of a five-parameter Poisson fit
    # (core.refine.precision) gives the per-axis error, hence the chance to land within R; the SNR
    # localisation_snr asks for at that chance must be the column's own column_snr (background >>
    # amplitude: nearly white noise, where the closed form holds)
    from napari_atombench.core.refine.precision import cramer_rao_bound_px

    error_A = cramer_rao_bound_px(amplitude, sigma_px, background) * pixel_size_A
    radius_A = 0.5
    chance = 1.0 - np.exp(-(radius_A**2) / (2.0 * error_A**2))
    centre = np.array([[40.0, 40.0]])
    clean = background + amplitude * sim.render_columns((81, 81), centre, 1.0, sigma_px)
    assert localisation_snr(sigma_px, pixel_size_A, radius_A, chance) == pytest.approx(
        column_snr(centre, [amplitude], sigma_px, clean)[0], rel=0.02)


def test_localisation_snr_grows_with_the_probe_and_shrinks_with_the_radius():
    at_100pm, at_350pm = (localisation_snr(fwhm / 2.3548 / 0.1, 0.1, 0.5) for fwhm in (1.0, 3.5))
    assert at_100pm < ROSE_SNR < at_350pm  # Rose decides for sharp probes, placing for broad ones
    assert at_350pm == pytest.approx(3.5 * at_100pm, rel=0.01)
    assert localisation_snr(10.0, 0.1, 1.0) == pytest.approx(localisation_snr(10.0, 0.1, 0.5) / 2)
    for bad in (dict(confidence=1.0), dict(confidence=0.0), dict(radius_A=0.0)):
        with pytest.raises(ValueError):
            localisation_snr(**{"sigma_px": 3.0, "pixel_size_A": 0.1, "radius_A": 0.5, **bad})


def test_label_max_error_leaves_broad_faint_atoms_unseen_and_sharp_ones_alone():
    def atoms(resolution_pm, dose, **kw):
        return sim.simulate(None, shape=160, pixel_size_pm=20, resolution_pm=resolution_pm, adatoms_per_nm2=1.0,
                            amorphous=0.3, dose_e_per_A2=dose, background=0.5, seed=3, label_min_snr=ROSE_SNR, **kw)

    # a broad probe spreads a few counts over a wide blob: seen (Rose) but not placeable within 0.5 Å;
    # a sharp probe at a dose where it is seen is placed well within it
    for resolution_pm, dose, more_unseen in ((80.0, 3000.0, False), (350.0, 40.0, True)):
        seen, placed = atoms(resolution_pm, dose), atoms(resolution_pm, dose, label_max_error_A=0.5)
        assert len(seen.positions_rc) > 0
        assert len(placed.positions_rc) + len(placed.unseen_rc) == len(seen.positions_rc) + len(seen.unseen_rc)
        assert (len(placed.unseen_rc) > len(seen.unseen_rc)) == more_unseen
        np.testing.assert_array_equal(placed.image, seen.image)
    with pytest.raises(ValueError, match="label_max_error_A"):
        sim.simulate("srtio3_100", shape=32, label_max_error_A=0.5)


def test_label_resolved_only_leaves_pairs_inside_sparrows_limit_unseen():
    # Si [110] dumbbells are 1.36 Å apart: a 200 pm probe (2 sigma = 1.70 Å) merges each pair
    merged = sim.simulate("si_110", shape=96, pixel_size_pm=10, resolution_pm=200, seed=0, label_resolved_only=True)
    assert len(merged.positions_rc) == 0 and len(merged.unseen_rc) > 0
    resolved = sim.simulate("si_110", shape=96, pixel_size_pm=10, resolution_pm=80, seed=0, label_resolved_only=True)
    assert len(resolved.unseen_rc) == 0 and len(resolved.positions_rc) > 0


def test_unseen_options_are_rejected_with_kernel_image_formation():
    with pytest.raises(ValueError, match="label_min_snr"):
        sim.simulate("srtio3_100", shape=32, image_formation="kernels", label_min_snr=5.0)


def test_training_loss_ignores_the_pixels_around_unseen_columns():
    torch = pytest.importorskip("torch")
    from napari_atombench.models import train_data as tr
    from napari_atombench.models.train import weighted_loss

    target = tr.make_target(np.array([[10.0, 10.0]]), (32, 32), "gauss", 1.5)
    marked = tr.ignore_unseen_columns(target, np.array([[22.0, 22.0], [10.5, 10.0]]), "gauss", 1.5)
    # around the unseen column: ignored; the labelled column's own blob keeps its target
    assert marked[22, 22] == tr.IGNORED_TARGET and marked[10, 10] == target[10, 10] and marked[2, 30] == 0.0
    logits = torch.zeros((1, 1, 32, 32), requires_grad=True)
    loss = weighted_loss(torch.nn.BCEWithLogitsLoss(reduction="none"), logits, torch.from_numpy(marked)[None, None])
    loss.backward()
    grad = logits.grad[0, 0].numpy()
    assert grad[22, 22] == 0.0 and grad[2, 30] != 0.0 and grad[10, 10] != 0.0


def test_seen_labels_pool_marks_unseen_columns_and_the_default_pool_does_not():
    from napari_atombench.models import train_data as tr

    kwargs = dict(seed=7, target="gauss", target_px=1.2, native_pixel_size_A=(0.08, 0.5), resolution_pm=(60.0, 260.0),
                  modalities=True)
    images, targets, _, light = tr.make_pool(60, 48, **kwargs)
    seen_images, seen_targets, _, seen_light = tr.make_pool(60, 48, seen_labels=True, **kwargs)
    assert not np.any(targets < 0)  # the v3 recipe: every counted column is a target
    ignored = np.any(seen_targets == tr.IGNORED_TARGET, axis=(1, 2))
    assert 0 < ignored.sum() < len(ignored)  # low-dose or dim columns in some scenes, not all
    # the same draws: the same light-columns flags, and scenes with nothing unseen are unchanged
    np.testing.assert_array_equal(light, seen_light)
    same = ~ignored & np.all(seen_targets >= 0, axis=(1, 2))
    assert np.mean([np.array_equal(images[k], seen_images[k]) for k in np.flatnonzero(same)]) > 0.5
