"""Training on simulated data, sampling-aware inference and our shipped weights."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_atombench.core import simulate as sim  # noqa: E402
from napari_atombench.core.metrics import score_positions  # noqa: E402
from napari_atombench.models import catalogue, ours  # noqa: E402
from napari_atombench.models import train as tr  # noqa: E402
from napari_atombench.models.registry import DEFAULT_MODEL, REGISTRY, get_locator  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _quick(tmp_path, arch, *extra):
    from napari_atombench.cli import main

    out = tmp_path / f"{arch}.pt"
    argv = ["train", arch, "--quick", "--device", "cpu", "--out", str(out), *extra]
    assert main(argv) == 0
    return out


@pytest.mark.parametrize("arch", ["atombench_unet", "resatomsegnet_s2", "unet"])
def test_quick_training_writes_a_loadable_checkpoint(tmp_path, arch):
    out = _quick(tmp_path, arch, "--steps", "2")
    ckpt = torch.load(out, map_location="cpu", weights_only=True)
    assert ckpt["step"] == 2
    net = tr.build_architecture(arch, **(dict(base_channels=16, depth=3) if arch == "atombench_unet" else {}))
    net.load_state_dict(ckpt["state_dict"], strict=True)
    assert ckpt["trained_pixel_size_A"] == pytest.approx(tr.TRAINED_PIXEL_SIZE_A)


def test_training_is_deterministic_and_resumable(tmp_path):
    a = _quick(tmp_path / "a", "atombench_unet", "--steps", "3", "--seed", "4")
    b = _quick(tmp_path / "b", "atombench_unet", "--steps", "3", "--seed", "4")
    sa = torch.load(a, weights_only=True)["state_dict"]
    sb = torch.load(b, weights_only=True)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    c = _quick(tmp_path / "c", "atombench_unet", "--steps", "3", "--seed", "5")
    assert not all(torch.equal(sa[k], torch.load(c, weights_only=True)["state_dict"][k]) for k in sa)
    # resume from step 3 to step 5
    resumed = _quick(tmp_path / "a", "atombench_unet", "--steps", "5", "--seed", "4", "--resume", str(a))
    ckpt = torch.load(resumed, weights_only=True)
    assert ckpt["step"] == 5
    assert len(ckpt["history"]) == 5


def test_targets_follow_each_family():
    positions = np.array([[10.3, 12.7], [20.0, 5.5]])
    gauss = tr.make_target(positions, (32, 32), "gauss", 1.2)
    disk = tr.make_target(positions, (32, 32), "disk", 2.0)
    assert gauss.max() <= 1.0 and np.unravel_index(gauss.argmax(), gauss.shape) in [(10, 13), (20, 5), (20, 6)]
    assert set(np.unique(disk)) == {0.0, 1.0}
    assert disk.sum() == pytest.approx(2 * np.pi * 4, rel=0.25)
    with pytest.raises(ValueError):
        tr.make_target(positions, (32, 32), "square", 1.0)


def test_random_scenes_cover_the_recipe():
    rng = np.random.default_rng(0)
    names = {str(tr.random_scene_kwargs(rng, 64, 0.2).get("crystal")) for _ in range(60)}
    assert {"si_110", "None"} <= names
    assert any("perovskite" in n for n in names)


def test_training_resolution_range_is_log_uniform_and_capped_where_columns_merge(tmp_path):
    drawn = np.array([tr.random_scene_kwargs(np.random.default_rng(k), 64, 0.2, resolution_pm=(60, 260))["resolution_pm"]
                      for k in range(300)])
    assert drawn.min() >= 60 and drawn.max() <= 260
    assert np.median(drawn) == pytest.approx(np.sqrt(60 * 260), rel=0.2)  # log-uniform, not uniform (160)
    # the CLI records the range in the checkpoint's configuration
    import json

    from napari_atombench.cli import main

    out = tmp_path / "r.pt"
    assert main(["train", "atombench_unet", "--quick", "--device", "cpu", "--steps", "1", "--out", str(out),
                 "--resolution-pm", "60", "260"]) == 0
    assert json.loads(torch.load(out, weights_only=True)["config"])["resolution_pm"] == [60.0, 260.0]
    # Si [110] dumbbells are 1.36 Å apart: a 250 pm probe would merge every pair
    s = sim.simulate("si_110", shape=(96, 96), pixel_size_pm=10, seed=0)
    capped = tr.resolvable_resolution_pm(s.positions_rc, s.pixel_size_A, 250.0, 60.0)
    assert capped == pytest.approx(tr.RESOLVABLE_SEPARATION_FWHM * 136, rel=0.05)
    assert tr.resolvable_resolution_pm(s.positions_rc, s.pixel_size_A, 100.0, 60.0) == 100.0
    assert tr.resolvable_resolution_pm(s.positions_rc, s.pixel_size_A, 250.0, 200.0) == 200.0


def test_edge_rule_drops_columns_cut_by_the_border():
    s = sim.simulate("srtio3_100", shape=(120, 150), pixel_size_pm=10, resolution_pm=90, species=("Sr",),
                     origin_rc=(2.0, 70.0), seed=1)
    kept_all = ours.SamplingAwareLocator(_PeakLocator(), 0.2, 10.0).locate(s.image, pixel_size_A=0.1).positions_rc
    ruled = ours.SamplingAwareLocator(_PeakLocator(), 0.2, 10.0, edge_px=3).locate(s.image, pixel_size_A=0.1)
    border = lambda p: np.minimum.reduce([p[:, 0], p[:, 1], 119 - p[:, 0], 149 - p[:, 1]])  # noqa: E731
    assert (border(kept_all) < 3).any()  # a column cut by the top border is found without the rule
    assert (border(ruled.positions_rc) >= 3).all() and ruled.metadata["edge_px"] == 3
    assert len(ruled.positions_rc) == (border(kept_all) >= 3).sum()
    # atombench applies the rule by default, in the input image's pixels; callers can change it
    assert get_locator("atombench", device="cpu").edge_px == 3
    assert get_locator("atombench", device="cpu", edge_px=0).edge_px == 0
    assert get_locator("atomnet-sim", device="cpu").edge_px == -0.5


def test_heatmap_peaks_are_subpixel():
    truth = np.array([[10.3, 12.6], [25.8, 20.2]])
    heat = sim.render_columns((40, 40), truth, 1.0, 1.2)
    found = ours.heatmap_peaks(heat, threshold=0.3)
    assert found.shape == (2, 2)
    assert np.abs(np.sort(found, axis=0) - np.sort(truth, axis=0)).max() < 0.05


class _PeakLocator:
    """A stand-in model: Gaussian-blob peaks of the image itself."""

    name = "peaks"

    def predict_map(self, image, *, progress=None, cancelled=None):
        return image / image.max()

    def locate(self, image, pixel_size_A=None, *, progress=None, cancelled=None):
        from napari_atombench.models.base import LocateResult

        self.seen_shape = image.shape
        return LocateResult(ours.heatmap_peaks(image / image.max(), 0.5, 3), image)


def test_sampling_aware_locator_rescales_and_maps_back():
    s = sim.simulate("srtio3_100", shape=(120, 150), pixel_size_pm=10, resolution_pm=90, species=("Sr",), seed=1)
    inner = _PeakLocator()
    locator = ours.SamplingAwareLocator(inner, trained_pixel_size_A=0.2, trained_separation_px=10.0)
    result = locator.locate(s.image, pixel_size_A=0.1)
    assert inner.seen_shape == (60, 75)
    assert result.probability_map.shape == s.image.shape
    score = score_positions(result.positions_rc, s.positions_rc, pixel_size_A=0.1, max_distance_A=0.5,
                            border_margin_px=6, image_shape=s.image.shape)  # edge maxima of cut columns
    assert score.f1 == 1.0
    assert score.rmse_px < 0.1
    assert result.metadata["sampling_zoom"] == pytest.approx(0.5)


def test_sampling_from_separation_when_pixel_size_unknown():
    pytest.importorskip("napari_atombench.core.peaks", reason="core.peaks arrives with issue #4")
    s = sim.simulate("srtio3_100", shape=(128, 128), pixel_size_pm=10, species=("Sr", "TiO"), seed=1)
    locator = ours.SamplingAwareLocator(_PeakLocator(), trained_pixel_size_A=0.2, trained_separation_px=13.8)
    zoom, how = locator.scale_for(s.image, None)
    assert how == "estimate_separation"
    assert zoom == pytest.approx(13.8 / 27.6, rel=0.05)


def test_resample_keeps_pixel_centres():
    shape, big = (50, 60), (100, 120)
    pts = np.array([[10.0, 20.0], [33.3, 47.1]])
    back = ours.positions_to_frame(ours.positions_to_frame(pts, shape, big), big, shape)
    np.testing.assert_allclose(back, pts)


# ----------------------------------------------------------------- shipped weights


@pytest.mark.parametrize("name", list(catalogue.OUR_MODELS))
def test_shipped_weights_load_safely_and_find_columns(name):
    path = catalogue.weights_path(name)
    assert path.is_file(), f"missing shipped weights {path}"
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert isinstance(state, dict) and state
    s = sim.simulate("srtio3_100", shape=(160, 160), pixel_size_pm=16, dose_e_per_A2=2e4, background=0.2, species=("Sr", "TiO"),
                     rotation_deg=9.0, seed=9001)
    locator = get_locator(name, device="cpu")
    result = locator.locate(s.image, s.pixel_size_A)
    score = score_positions(result.positions_rc, s.positions_rc, pixel_size_A=s.pixel_size_A, max_distance_A=0.5)
    assert score.f1 > 0.95, score


def test_shipped_weights_are_small():
    paths = [catalogue.weights_path(n) for n in catalogue.OUR_MODELS]
    total = sum(p.stat().st_size for p in paths if p.is_file())
    assert total <= 30 * 2**20


def test_default_model_is_ours():
    assert DEFAULT_MODEL == "atombench"
    assert REGISTRY[DEFAULT_MODEL].family == "atombench"
    assert {"atomnet-sim", "atomsegnet-sim"} <= set(REGISTRY)


def test_locate_handles_blank_and_bad_images():
    locator = get_locator("atombench", device="cpu")
    result = locator.locate(np.zeros((48, 48), np.float32), 0.2)
    assert result.positions_rc.shape == (0, 2)
    bad = np.ones((32, 32), np.float32)
    bad[3, 3] = np.nan
    with pytest.raises(ValueError):
        locator.locate(bad, 0.2)
    with pytest.raises(ValueError, match="too large"):
        locator.locate(np.ones((64, 64), np.float32), 100.0)


def test_cli_locate_writes_positions(tmp_path):
    from napari_atombench.cli import main
    from napari_atombench.core.io import read_positions

    image, labels, out = tmp_path / "s.tif", tmp_path / "s.csv", tmp_path / "found.csv"
    assert main(["simulate", "ws2", "--out-image", str(image), "--out-labels", str(labels), "--size", "96",
                 "--pixel-size-pm", "12", "--dose-e-per-A2", "2e4", "--seed", "3"]) == 0
    assert main(["locate", str(image), "--out", str(out), "--device", "cpu"]) == 0
    found, truth = read_positions(out), read_positions(labels)
    # atombench leaves out columns within 3 px of the border (cut by it)
    score = score_positions(found.positions_rc, truth.positions_rc, pixel_size_A=0.12, max_distance_A=0.5,
                            border_margin_px=3, image_shape=(96, 96))
    assert score.f1 > 0.9
    assert main(["locate", str(image), "--model", "no-such-model"]) == 2


def test_native_sampling_pool_matches_what_inference_sees():
    native = (0.07, 0.45)
    images, targets, seps, _ = tr.make_pool(6, 48, seed=2, target="gauss", target_px=1.2, native_pixel_size_A=native)
    assert images.shape == targets.shape == (6, 48, 48)
    again, _, _, _ = tr.make_pool(6, 48, seed=2, target="gauss", target_px=1.2, native_pixel_size_A=native)
    np.testing.assert_array_equal(images, again)
    # each scene covers the crop's field of view at its own pixel size
    rng = np.random.default_rng(5)
    sides = [tr.random_scene_kwargs(rng, 48, 0.2, native)["shape"][0] for _ in range(40)]
    assert min(sides) >= round(48 * 0.2 / 0.45) and max(sides) <= round(48 * 0.2 / 0.07)
    assert len(set(sides)) > 5
    # the targets sit on the resampled columns: bright pixels where the target peaks
    for img, tgt in zip(images, targets):
        if tgt.max() < 0.9:
            continue
        on = img[tgt > 0.8].mean()
        assert on > np.median(img)


def test_local_standardisation_removes_a_thickness_gradient():
    rows = np.linspace(0, 2, 256, dtype=np.float32)[:, None] * np.ones((1, 256), np.float32)
    lattice = sim.simulate(crystal="srtio3_100", shape=(256, 256), pixel_size_pm=20, dose_e_per_A2=None, seed=1).image
    image = lattice + rows * lattice.max()
    global_ = ours.standardize(image)
    local = ours.standardize(image, 64)
    assert abs(global_.mean()) < 1e-4 and global_.std() == pytest.approx(1, abs=1e-3)
    # the top and bottom quarters differ by the gradient globally, hardly locally, and
    # locally the lattice keeps its contrast instead of drowning in the gradient
    assert abs(global_[:64].mean() - global_[-64:].mean()) > 2
    assert abs(local[:64].mean() - local[-64:].mean()) < 0.5
    assert local[:64].std() > 2 * global_[:64].std() and local[-64:].std() > 2 * global_[-64:].std()
    np.testing.assert_allclose(ours.standardize(image, 512), global_, atol=1e-5)  # window ≥ image: global
    flat = ours.standardize(np.ones((64, 64)), 16)
    assert np.isfinite(flat).all()


def test_normalize_window_comes_from_the_training_record(tmp_path):
    out = _quick(tmp_path, "atombench_unet", "--steps", "1", "--normalize-window", "48",
                 "--native-pixel-size", "0.1", "0.3")
    tr.export_weights(out, tmp_path / "w.pt")
    loc = get_locator("atombench", weights=tmp_path / "w.pt", device="cpu")
    assert loc.inner.normalize_window_px == 48
    config = torch.load(out, weights_only=True)["config"]
    assert '"native_pixel_size_A": [0.1, 0.3]' in config
    assert get_locator("atombench", weights=tmp_path / "w.pt", device="cpu",
                            normalize_window_px=None).inner.normalize_window_px is None


def test_atombench_tiles_leave_no_seams():
    image = sim.simulate(crystal="srtio3_100", shape=(403, 397), pixel_size_pm=20, dose_e_per_A2=5e3, seed=3).image
    whole = get_locator("atombench", device="cpu", sampling_aware=False)
    tiled = get_locator("atombench", device="cpu", sampling_aware=False, tile_size=256)
    steps = []
    np.testing.assert_allclose(tiled.predict_map(image, progress=lambda i, n: steps.append((i, n))),
                               whole.predict_map(image), atol=1e-5)
    assert steps[-1][0] == steps[-1][1] > 1  # really tiled, progress per tile
    a, b = whole.locate(image).positions_rc, tiled.locate(image).positions_rc
    assert len(a) == len(b) > 500
    np.testing.assert_allclose(np.sort(a, axis=0), np.sort(b, axis=0), atol=1e-4)
