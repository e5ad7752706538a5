"""Contrast polarity (bright/dark/auto) and sampling without a pixel size (issue 17)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_atombench.core import simulate as sim
from napari_atombench.core.contrast import AMBIGUOUS_SKEWNESS, check_contrast, estimate_polarity, to_bright
from napari_atombench.core.metrics import score_positions
from napari_atombench.core.peaks import estimate_separation

# resolved lattices (probe FWHM below the nearest separation), HAADF-like
# (heavy columns brighter) and ABF-like (dark columns, light ones visible)
LATTICES = ("srtio3_100", "srtio3_110", "ws2", "si_110", "graphene")


def _scene(name, mode, seed=3, **kw):
    knobs = dict(shape=192, pixel_size_pm=12, resolution_pm=80, dose_e_per_A2=2000, seed=seed)
    knobs.update(kw)
    return sim.simulate(name, mode=mode, z_exponent=1.7 if mode == "haadf" else 0.7, **knobs)


@pytest.mark.parametrize("name", LATTICES)
@pytest.mark.parametrize("mode, expected", [("haadf", "bright"), ("abf", "dark")])
def test_polarity_is_read_from_the_image(name, mode, expected):
    s = _scene(name, mode)
    polarity = estimate_polarity(s.image, estimate_separation(s.image))
    assert polarity.contrast == expected and polarity.confident
    # mirroring the image flips the decision (the statistic is odd in the intensity)
    flipped = estimate_polarity(to_bright(s.image, "dark"), polarity.separation_px)
    assert flipped.contrast != expected
    assert flipped.skewness == pytest.approx(-polarity.skewness, rel=1e-6, abs=1e-9)


def test_polarity_is_ambiguous_on_noise_and_bright_by_convention():
    noise = np.random.default_rng(0).normal(10.0, 1.0, (128, 128))
    polarity = estimate_polarity(noise, 10.0)
    assert abs(polarity.skewness) < AMBIGUOUS_SKEWNESS and not polarity.confident
    assert polarity.contrast == "bright"


def test_bad_contrast_options_are_rejected():
    with pytest.raises(ValueError, match="contrast must be one of"):
        check_contrast("inverted")
    with pytest.raises(ValueError, match="separation_px"):
        estimate_polarity(np.ones((16, 16)), 0.0)
    with pytest.raises(ValueError, match="decided contrast"):
        to_bright(np.ones((4, 4)), "auto")
    img = np.array([[1.0, 3.0], [2.0, 5.0]])
    np.testing.assert_allclose(to_bright(img, "dark"), 6.0 - img)  # mirrored in its own range


def test_experimental_images_are_bright(experimental_dir):
    from napari_atombench.core.dataset import load_case, read_folder_dataset

    for case in read_folder_dataset(experimental_dir):
        image = load_case(case).image
        polarity = estimate_polarity(image, estimate_separation(image))
        assert polarity.contrast == "bright" and polarity.confident, case.case  # all HAADF/MADF


# ------------------------------------------------------------------ the locator

torch = pytest.importorskip("torch")
from napari_atombench.models import ours  # noqa: E402
from napari_atombench.models.registry import get_locator  # noqa: E402


@pytest.fixture(scope="module")
def locator():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield get_locator("atombench", device="cpu")
    torch.set_num_threads(previous)


def _f1(result, s):
    return score_positions(result.positions_rc, s.positions_rc, pixel_size_A=s.pixel_size_A, max_distance_A=0.5,
                           border_margin_px=11, image_shape=s.image.shape).f1


@pytest.mark.parametrize("name", ("ws2", "si_110"))
def test_auto_contrast_finds_dark_columns_and_records_the_decision(locator, name):
    s = _scene(name, "abf")
    auto = locator.locate(s.image, s.pixel_size_A)  # get_locator's default is "auto"
    assert auto.metadata["contrast"] == "auto" and auto.metadata["contrast_used"] == "dark"
    assert auto.metadata["contrast_skewness"] < -AMBIGUOUS_SKEWNESS and auto.metadata["contrast_confident"]
    dark = locator.locate(s.image, s.pixel_size_A, contrast="dark")
    np.testing.assert_array_equal(auto.positions_rc, dark.positions_rc)
    assert _f1(dark, s) > 0.95
    bright = locator.locate(s.image, s.pixel_size_A, contrast="bright")  # the option is applied, not dropped
    assert bright.metadata["contrast_used"] == "bright" and _f1(bright, s) < 0.5
    assert get_locator("atombench", device="cpu", contrast="dark").contrast == "dark"
    with pytest.raises(ValueError, match="contrast"):
        locator.locate(s.image, s.pixel_size_A, contrast="abf")


@pytest.mark.parametrize("name, mode, expected", [("graphene", "haadf", "bright"), ("ws2", "abf", "dark")])
def test_the_model_decides_polarity_where_the_skewness_is_fooled(locator, name, mode, expected):
    # honeycombs with barely resolved bonds: the holes are the compact features, so the band-pass
    # skewness reads low-dose HAADF graphene as dark and ABF WS2 as bright (confidently); the
    # network, shown both polarities, is decisive only on the right one
    s = _scene(name, mode, shape=160, pixel_size_pm=16, resolution_pm=150, background=0.1,
               dose_e_per_A2=(10 if mode == "haadf" else 40) / 0.16**2)
    skewness = estimate_polarity(s.image, estimate_separation(s.image))
    assert skewness.confident and skewness.contrast != expected
    result = locator.locate(s.image, s.pixel_size_A)
    meta = result.metadata
    assert meta["contrast_used"] == expected and meta["contrast_from"] == "model" and meta["contrast_confident"]
    assert meta["contrast_decisiveness"][expected] > meta["contrast_decisiveness"][skewness.contrast]
    assert _f1(result, s) > 0.95


def test_polarity_vote_rules():
    from napari_atombench.models.sampling import MIN_VOTE_DECISIVENESS, apply_contrast, map_decisiveness

    s = _scene("srtio3_100", "haadf")  # skewness: bright
    for votes, used, source in (({"bright": 0.2, "dark": 0.4}, "dark", "model"),
                                ({"bright": 0.4, "dark": 0.2}, "bright", "model"),
                                ({"bright": 0.3, "dark": 0.3}, "bright", "skewness"),  # a tie
                                ({"bright": 0.3, "dark": 0.303}, "dark", "model"),  # a near-tie beats a confident skewness
                                ({"bright": 0.01, "dark": MIN_VOTE_DECISIVENESS / 2}, "bright", "skewness")):
        mean = float(s.image.mean())
        # the vote sees the candidate bright-column image: tell the two apart by their mean
        image, meta = apply_contrast(s.image, "auto", 10.0,
                                     vote=lambda b: votes["bright" if abs(float(b.mean()) - mean) < 1e-3 else "dark"])
        assert meta["contrast_used"] == used and meta["contrast_from"] == source, votes
        np.testing.assert_array_equal(image, to_bright(s.image, used))
    # where the skewness cannot tell either, a near-tie is no vote: bright, with a warning
    noise = np.random.default_rng(0).normal(10.0, 1.0, (128, 128))
    with pytest.warns(UserWarning, match="could not tell"):
        _, meta = apply_contrast(noise, "auto", 10.0, vote=lambda b: 0.3 if float(b[0, 0]) == noise[0, 0] else 0.303)
    assert meta["contrast_used"] == "bright" and meta["contrast_from"] == "skewness"
    _, meta = apply_contrast(noise, "auto", 10.0, vote=lambda b: 0.3 if float(b[0, 0]) == noise[0, 0] else 0.4)
    assert meta["contrast_used"] == "dark" and meta["contrast_from"] == "model"
    # decided pixels (>= threshold) per undecided one (0.2 <= p < threshold)
    assert map_decisiveness(np.array([0.9, 0.7, 0.5, 0.3, 0.1]), 0.6) == pytest.approx(1.0)
    assert map_decisiveness(np.zeros(9), 0.6) == 0.0


def test_unwrapped_network_takes_the_contrast_option():
    s = _scene("srtio3_100", "abf", pixel_size_pm=20)  # at the trained sampling
    # the ABF labels count the O columns (contrast weight Z^0.7: 0.34 of Sr): the light-columns convention
    inner = get_locator("atombench", device="cpu", sampling_aware=False, contrast="auto", light_columns=True)
    result = inner.locate(s.image)
    assert result.metadata["contrast_used"] == "dark" and _f1(result, s) > 0.9


def test_ambiguous_contrast_warns(locator):
    blank = np.zeros((48, 48), np.float32)
    with pytest.warns(UserWarning, match="could not tell bright from dark"):
        result = locator.locate(blank, 0.2)
    assert result.metadata["contrast_used"] == "bright" and not result.metadata["contrast_confident"]


def test_cli_locate_contrast(tmp_path):
    from napari_atombench.cli import main
    from napari_atombench.core.io import read_positions

    image, labels, out = tmp_path / "abf.tif", tmp_path / "abf.csv", tmp_path / "found.csv"
    assert main(["simulate", "srtio3_100", "--mode", "abf", "--out-image", str(image), "--out-labels", str(labels),
                 "--size", "128", "--pixel-size-pm", "15", "--seed", "2"]) == 0
    for contrast, good in (("dark", True), ("bright", False)):
        assert main(["locate", str(image), "--out", str(out), "--device", "cpu", "--contrast", contrast]) == 0
        found, truth = read_positions(out), read_positions(labels)
        f1 = score_positions(found.positions_rc, truth.positions_rc, pixel_size_A=0.15, max_distance_A=0.5,
                             border_margin_px=3, image_shape=(128, 128)).f1
        assert (f1 > 0.9) == good, (contrast, f1)
    with pytest.raises(SystemExit):
        main(["locate", str(image), "--contrast", "inverted"])


# ------------------------------------------------------------------ sampling


class _PeakLocator:
    """A stand-in model: the image's own local maxima."""

    name = "peaks"

    def predict_map(self, image, *, progress=None, cancelled=None):
        return image / image.max()

    def locate(self, image, pixel_size_A=None, *, progress=None, cancelled=None):
        from napari_atombench.models.base import LocateResult

        return LocateResult(ours.heatmap_peaks(image / image.max(), 0.5, 3), image)


def test_pixel_size_and_lattice_disagreement_warns():
    s = sim.simulate("srtio3_100", shape=(128, 128), pixel_size_pm=10, species=("Sr", "TiO"), seed=1)
    locator = ours.SamplingAwareLocator(_PeakLocator(), trained_pixel_size_A=0.2, trained_separation_px=13.8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        agreed = locator.locate(s.image, 0.1)
    assert agreed.metadata["sampling_lattice_ratio"] == pytest.approx(1.0, rel=0.1)
    assert "sampling_warning" not in agreed.metadata
    with pytest.warns(UserWarning, match="pixel size and lattice disagree"):
        wrong = locator.locate(s.image, 0.35)
    assert wrong.metadata["sampling_lattice_ratio"] == pytest.approx(3.5, rel=0.1)
    assert wrong.metadata["sampling_from"] == "pixel_size"  # the user's pixel size still wins


@pytest.mark.slow
def test_f1_without_pixel_size_is_within_10_percent(experimental_dir, locator):
    from napari_atombench.core.dataset import load_case, read_folder_dataset

    checked = 0
    for case in read_folder_dataset(experimental_dir):
        if case.case == "pt_single_atoms":  # F1 ≈ 0 with or without a pixel size (no lattice)
            continue
        data = load_case(case)
        f1 = {}
        for px in (case.pixel_size_A, None):
            result = locator.locate(data.image, px)
            f1[px] = score_positions(result.positions_rc, data.truth_rc, pixel_size_A=case.pixel_size_A,
                                     border_margin_px=11, image_shape=data.image.shape).f1
        assert result.metadata["sampling_from"] == "estimate_separation"
        assert result.metadata["contrast_used"] == "bright", case.case  # all HAADF/MADF
        assert f1[None] >= 0.9 * f1[case.pixel_size_A], (case.case, f1)
        checked += 1
    assert checked >= 3


# ------------------------------------------------------------------ speed paths


def test_fast_path_keeps_the_fp32_result():
    from napari_atombench.core.match import match_positions
    from napari_atombench.models._fast import fold_batchnorm, resolve_bf16

    s = sim.simulate("srtio3_100", shape=256, pixel_size_pm=20, dose_e_per_A2=3000, seed=4)
    plain = get_locator("atombench", device="cpu", fast=False, sampling_aware=False)
    fast = get_locator("atombench", device="cpu", sampling_aware=False)
    assert fast.fast and not plain.fast and not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.net.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.net.modules())  # folding works on a copy
    # the decoders' first convolutions are split by input channels (no full-resolution concatenation)
    assert sum(type(m).__name__ == "SkipConv" for m in fast.net.modules()) == fast.net.depth
    a, b = plain.predict_map(s.image), fast.predict_map(s.image)
    # fp32 with a different summation order: differences of a few ulps of the logits
    assert np.abs(a - b).max() < 1e-4
    pa, pb = plain.locate(s.image).positions_rc, fast.locate(s.image).positions_rc
    m = match_positions(pb, pa, max_distance_px=0.01)
    near = np.abs(a - plain.threshold) < 1e-4  # maxima this close to the threshold may flip
    assert m.n_fn + m.n_fp <= int(near.sum()) and m.n_tp >= 0.99 * len(pa)
    with pytest.raises(ValueError, match="bf16"):
        resolve_bf16("sometimes", torch.device("cpu"))
    bf16 = get_locator("atombench", device="cpu", bf16=True, sampling_aware=False)
    assert bf16.bf16 and bf16.locate(s.image).metadata["bf16"] is True
    mb = match_positions(bf16.locate(s.image).positions_rc, pa, max_distance_px=0.1)
    assert mb.n_tp >= 0.97 * len(pa) and mb.n_fp <= 0.03 * len(pa)  # bf16: same columns, within 0.1 px
    assert isinstance(get_locator("atombench", device="cpu", bf16="auto", sampling_aware=False).bf16, bool)
    assert fold_batchnorm(plain.net) is not plain.net
