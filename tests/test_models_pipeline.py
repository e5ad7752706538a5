"""Model registry, weights handling, the default pipeline (tiling, frames, bad input) and the CLI."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from napari_atombench.cli import main
from napari_atombench.core.io import read_positions
from napari_atombench.core.simulate import SRTIO3_100, simulate_crystal
from napari_atombench.models import AtomLocator, Cancelled
from napari_atombench.models._pipeline import plan_tiles, resolve_device, to_uint8_original
from napari_atombench.models.registry import (
    REGISTRY,
    ModelSpec,
    PackagedWeights,
    get_locator,
    git_blob_sha1_of,
    list_models,
    load_state_dict,
    register,
    resolve_weights,
)
from napari_atombench.sample_data import sample_paths
from numerics import assert_positions_agree, fp32_network_tolerance

torch.set_num_threads(1)
CUBIC_SHA256 = "dc305d6f48bb3e6a22fd91385ef561b4425e73e74a9ecaf8b206a86bbe327c35"


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No downloads, an empty cache, no weights folder."""
    monkeypatch.setenv("ATOMBENCH_NO_DOWNLOAD", "1")
    monkeypatch.delenv("ATOMBENCH_WEIGHTS_DIR", raising=False)
    monkeypatch.setattr("napari_atombench.models.registry.cache_dir", lambda: tmp_path / "cache")
    return tmp_path


@pytest.fixture(scope="module")
def cubic(shared_dir):
    return shared_dir / "weights" / "cubic-best_weights.pt"


def test_registry_names_and_listing(offline):
    names = {"atomnet-cubic", "atomnet-hexagonal", "atomsegnet-gaussianmask", "atomsegnet-superresolution"}
    assert names <= set(REGISTRY)
    rows = {r["name"]: r for r in list_models()}
    assert rows["atomnet-cubic"]["architecture"] == "resatomsegnet_s2"
    assert rows["atomsegnet-superresolution"]["family"] == "atomsegnet"
    assert "AICrystallographer" in rows["atomnet-hexagonal"]["weights"]
    assert not rows["atomnet-cubic"]["cached"]
    assert REGISTRY["atomnet-cubic"].weights.sha256 == CUBIC_SHA256


def test_git_blob_sha1_of_cubic(cubic):
    assert git_blob_sha1_of(cubic) == "2604d2a2b412db2fa5b1f57d3c06caf1a3523199"


def test_missing_weights_message_says_which_file_where_from_and_where_to(offline):
    with pytest.raises(FileNotFoundError) as info:
        resolve_weights(REGISTRY["atomsegnet-gaussianmask"])
    msg = str(info.value)
    assert "gaussianMask+.pth" in msg and "xinhuolin/AtomSegNet" in msg and "ATOMBENCH_WEIGHTS_DIR" in msg


def test_weights_dir_is_used_and_hash_checked(offline, monkeypatch, cubic, shared_dir):
    folder = offline / "weights"
    folder.mkdir()
    monkeypatch.setenv("ATOMBENCH_WEIGHTS_DIR", str(folder))
    shutil.copy(cubic, folder / "cubic-best_weights.pt")
    path, source = resolve_weights(REGISTRY["atomnet-cubic"])
    assert path == folder / "cubic-best_weights.pt" and source.startswith("https://")
    assert {r["name"]: r["cached"] for r in list_models()}["atomnet-cubic"]
    # a different file under the pinned name is refused
    shutil.copy(shared_dir / "fixtures/models/C_atomsegnet_state.pt", folder / "cubic-best_weights.pt")
    with pytest.raises(ValueError, match="SHA-256"):
        resolve_weights(REGISTRY["atomnet-cubic"])


def test_dataparallel_prefix_stripped_and_wrong_architecture_refused(tmp_path, cubic, shared_dir):
    state = load_state_dict(cubic)
    assert any("res_module." in k for k in state)  # not mistaken for a DataParallel prefix
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "dp.pt")
    loc = get_locator("atomnet-cubic", weights=tmp_path / "dp.pt", device="cpu")
    assert isinstance(loc, AtomLocator)
    with pytest.raises(ValueError, match="does not fit model 'atomsegnet-gaussianmask'") as info:
        get_locator("atomsegnet-gaussianmask", weights=cubic, device="cpu")
    assert str(cubic) in str(info.value) and "missing keys: conv1_1.weight" in str(info.value)


def test_packaged_weights_register_in_one_line(tmp_path, monkeypatch, cubic):
    monkeypatch.setattr("napari_atombench.models.registry.PACKAGED_WEIGHTS_DIR", tmp_path)
    shutil.copy(cubic, tmp_path / "mine.pt")
    spec = ModelSpec(
        name="test-packaged", family="atomnet", architecture="resatomsegnet_s2",
        weights=PackagedWeights("mine.pt", sha256=CUBIC_SHA256),
    )
    register(spec)
    try:
        with pytest.raises(ValueError, match="already registered"):
            register(spec)
        loc = get_locator("test-packaged", device="cpu")
        assert loc.provenance["weights_source"] == "packaged:mine.pt"
    finally:
        REGISTRY.pop("test-packaged")


def test_device_auto_is_cpu_here_and_unavailable_devices_are_refused():
    if not torch.cuda.is_available():
        assert resolve_device("auto").type in ("cpu", "mps")
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_uint8_conversion_truncates():
    img = np.array([[0.0, 1.0], [0.5, 0.999]], dtype=np.float32)
    assert to_uint8_original(img).tolist() == [[0, 255], [127, 254]]


def test_plan_tiles_cover_with_overlap():
    side, starts = plan_tiles(1000, 256, 32, 8)
    assert side <= 256 and side % 8 == 0
    assert starts[0] == 0 and starts[-1] == 1000 - side
    assert all(s % 8 == 0 for s in starts)
    assert all(b - a <= side - 2 * 32 + 8 for a, b in zip(starts, starts[1:]))
    assert len(starts) * side < 1000 * 1.5  # little wasted overlap
    assert plan_tiles(200, 256, 32, 8) == (200, [0])


@pytest.fixture(scope="module")
def big_image():
    return simulate_crystal(SRTIO3_100, shape=(328, 392), pixel_size_A=0.25, seed=5)


@pytest.mark.parametrize("model", ["atomnet-cubic", "unet"])
def test_tiled_equals_untiled(big_image, model, cubic, shared_dir):
    if model == "unet":
        spec = ModelSpec(name="fixture-unet", family="atomsegnet", architecture="unet")
        weights = shared_dir / "fixtures/models/A_unet_sigmoid_state.pt"
    else:
        spec, weights = model, cubic
    whole = get_locator(spec, weights, device="cpu", tile_size=1024)
    tiled = get_locator(spec, weights, device="cpu", tile_size=192, overlap_px=48)
    calls = []
    a = whole.locate(big_image.image)
    b = tiled.locate(big_image.image, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1][0] == calls[-1][1] > 1  # really tiled, progress per tile
    # a tile sums the same terms as the whole image, in another blocking: fp32
    # accumulation error only (tests/numerics.py), with the overlap covering the
    # receptive field
    np.testing.assert_allclose(b.probability_map, a.probability_map, atol=fp32_network_tolerance(whole.net))
    assert len(a.positions_rc) > 100
    # a map value moving by ~1e-5 can tip a centroid tie (seen: 2 of 5,678 moved by
    # 0.025 px on another CPU): a few may move, by well under a pixel; none may vanish.
    # AtomSegNet's segmentation quantises the map to uint8 and seeds its watershed at
    # levels 30 and 100: a pixel sitting on a level can join or leave a region, moving
    # that region's centroid towards or away from an adjacent pixel, i.e. by < 1 px
    # (seen: 3 of 2,840 moved by 0.35-0.39 px with AVX2 kernels on an AMD EPYC), or split
    # or merge a region (one position more or fewer); at most one change per such pixel
    tol = fp32_network_tolerance(whole.net)
    ties = _marker_level_ties(a.probability_map, tol) if model == "unet" else 0
    assert_positions_agree(a.positions_rc, b.positions_rc, max_moved=max(3, len(a.positions_rc) // 500) + ties,
                           max_shift_px=1.0 if model == "unet" else 0.25, max_unmatched=ties)


def _marker_level_ties(prob: np.ndarray, tol: float) -> int:
    """Pixels whose uint8 level in AtomSegNet's segmentation (``lin_segment``: markers below
    30 and above 100 of 255) can change when the map moves by ``tol`` (the map's min and
    max may move too: twice ``tol``)."""
    from napari_atombench.models.atomsegnet import MARKER_BACKGROUND_BELOW_U8, MARKER_COLUMN_ABOVE_U8

    r = np.clip(prob.astype(np.float64), 0, None)
    scale = 255.0 / max(float(r.max() - r.min()), 1e-12)
    level = (r - r.min()) * scale
    band = 2.0 * tol * scale
    return int(sum(np.count_nonzero(np.abs(level - edge) <= band) for edge in (MARKER_BACKGROUND_BELOW_U8, MARKER_COLUMN_ABOVE_U8 + 1)))


def test_default_positions_in_image_frame_and_near_truth(big_image, cubic):
    loc = get_locator("atomnet-cubic", cubic, device="cpu")
    res = loc.locate(big_image.image, pixel_size_A=0.25)
    assert res.probability_map.shape == big_image.image.shape
    assert res.metadata["frame"] == "image" and res.metadata["weights_sha256"] == CUBIC_SHA256
    truth = big_image.positions_rc
    d = np.sqrt(((res.positions_rc[:, None] - truth[None]) ** 2).sum(-1)).min(axis=1)
    assert np.median(d) < 0.5
    # rescaled run: map and positions still in the image's own frame
    res2 = get_locator("atomnet-cubic", cubic, device="cpu", rescale=1.5).locate(big_image.image)
    assert res2.probability_map.shape == big_image.image.shape
    d2 = np.sqrt(((res2.positions_rc[:, None] - truth[None]) ** 2).sum(-1)).min(axis=1)
    assert np.median(d2) < 0.75


def test_bad_input_messages(cubic):
    loc = get_locator("atomnet-cubic", cubic, device="cpu")
    nan = np.ones((64, 64), np.float32)
    nan[1, 1] = np.nan
    with pytest.raises(ValueError, match="(?i)nan"):
        loc.locate(nan)
    with pytest.raises(ValueError, match="constant"):
        loc.locate(np.ones((64, 64)))
    with pytest.raises(ValueError, match="too small"):
        loc.locate(np.random.default_rng(0).random((4, 64)))
    with pytest.raises(ValueError, match="fidelity"):
        get_locator("atomnet-cubic", cubic, fidelity="exact")
    with pytest.raises(ValueError, match="unknown option"):
        get_locator("atomnet-cubic", cubic, tilesize=3)


def test_cancel_stops_between_tiles(big_image, cubic):
    loc = get_locator("atomnet-cubic", cubic, device="cpu", tile_size=128, overlap_px=32)
    seen = []
    with pytest.raises(Cancelled):
        loc.predict_map(big_image.image, progress=lambda d, t: seen.append(d), cancelled=lambda: len(seen) >= 2)
    assert seen == [1, 2]


def test_refine_option_refines(big_image, cubic):
    plain = get_locator("atomnet-cubic", cubic, device="cpu").locate(big_image.image)
    res = get_locator("atomnet-cubic", cubic, device="cpu", refine=True).locate(big_image.image)
    assert res.metadata["refined"] is True and plain.metadata["refined"] is False
    assert not np.array_equal(res.positions_rc, plain.positions_rc)
    with pytest.raises(ValueError, match="refine does not apply .* fidelity 'original'"):
        get_locator("atomnet-cubic", cubic, device="cpu", fidelity="original", refine=True)


def test_bf16_keeps_positions(big_image, cubic):
    a = get_locator("atomnet-cubic", cubic, device="cpu").locate(big_image.image)
    b = get_locator("atomnet-cubic", cubic, device="cpu", bf16=True).locate(big_image.image)
    d = np.sqrt(((b.positions_rc[:, None] - a.positions_rc[None]) ** 2).sum(-1)).min(axis=1)
    assert abs(len(a.positions_rc) - len(b.positions_rc)) <= 0.01 * len(a.positions_rc)
    assert np.mean(d < 0.1) >= 0.98


def test_cli_models_and_locate(offline, monkeypatch, tmp_path, capsys, shared_dir):
    monkeypatch.setenv("ATOMBENCH_WEIGHTS_DIR", str(shared_dir / "weights"))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "atomnet-cubic" in out and "atomsegnet-superresolution" in out
    cubic_line = next(line for line in out.splitlines() if line.startswith("atomnet-cubic"))
    assert " yes " in cubic_line
    image, labels = sample_paths("srtio3")
    csv, npy = tmp_path / "p.csv", tmp_path / "m.npy"
    assert main(["locate", str(image), "--model", "atomnet-cubic", "--out", str(csv), "--map-out", str(npy)]) == 0
    found = read_positions(csv).positions_rc
    truth = read_positions(labels).positions_rc
    assert np.load(npy).shape == (256, 256)
    d = np.sqrt(((truth[:, None] - found[None]) ** 2).sum(-1)).min(axis=1)
    assert np.mean(d < 1.0) > 0.9
    # original fidelity through the CLI, and a missing-weights error as one line, exit 2
    assert main(["locate", str(image), "--model", "atomnet-cubic", "--fidelity", "original", "--out", str(csv)]) == 0
    assert main(["locate", str(image), "--model", "atomnet-hexagonal", "--out", str(csv)]) == 2
    assert "G-Si-DFT0-1-4-best_weights.pt" in capsys.readouterr().err


def test_reuse_freed_memory_is_reentrant_and_always_restores(monkeypatch):
    from napari_atombench.models import _pipeline as pl

    calls = []

    class FakeLibc:
        def mallopt(self, param, value):
            calls.append((param, value))
            return 1

    monkeypatch.setattr(pl, "_glibc", lambda: FakeLibc())

    @pl.reuse_freed_memory()
    def inner(x):
        return x * 2

    with pl.reuse_freed_memory():
        assert inner(3) == 6  # nested: no second set-up, no early restore
        assert len(calls) == 2
    assert calls == [
        (pl._M_MMAP_THRESHOLD, 1 << 30), (pl._M_TRIM_THRESHOLD, (1 << 31) - 1),
        (pl._M_MMAP_THRESHOLD, pl._SETTLED_MMAP_B), (pl._M_TRIM_THRESHOLD, pl._SETTLED_TRIM_B),
    ]
    calls.clear()
    with pytest.raises(RuntimeError):
        with pl.reuse_freed_memory():
            raise RuntimeError("boom")
    assert calls[-2:] == [(pl._M_MMAP_THRESHOLD, pl._SETTLED_MMAP_B), (pl._M_TRIM_THRESHOLD, pl._SETTLED_TRIM_B)]
    assert pl._reuse_depth == 0
    monkeypatch.setattr(pl, "_glibc", lambda: None)  # macOS, Windows, musl: nothing to set
    calls.clear()
    assert inner(2) == 4 and calls == []
