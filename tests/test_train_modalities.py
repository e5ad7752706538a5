"""The v3 training recipe: modality scenes, their labels and processing artefacts."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atombench.core import simulate as sim
from napari_atombench.core.contrast import estimate_polarity
from napari_atombench.core.peaks import estimate_separation
from napari_atombench.models import train as tr


def _scene(kind, seed=0):
    rng = np.random.default_rng(seed)
    kw = tr.modality_scene_kwargs(kind, tr.random_scene_kwargs(rng, 128, 0.2, None, (60.0, 200.0)), rng)
    s = sim.simulate(**kw)
    image, positions, _ = tr._modality_image(s, kind, rng)
    return kw, s, (image, positions)


def test_abf_scenes_are_shown_bright_and_label_light_columns():
    for seed in range(4):
        kw, s, (image, positions) = _scene("abf", seed)
        assert kw["mode"] == "abf" and kw["z_exponent"] <= 1.0
        # shown to the network mirrored in its range, as contrast="dark" inference does
        raw = s.image.astype(np.float32)
        np.testing.assert_allclose(image, raw.max() + raw.min() - raw, rtol=1e-6, atol=1e-6 * float(raw.max()))
        np.testing.assert_array_equal(positions, s.positions_rc)
    # the policy: with Z^<=1 weights, O columns (Z=8) are labelled in a SrTiO3-like lattice
    clean = sim.simulate("srtio3_100", shape=96, pixel_size_pm=15, mode="abf", z_exponent=0.7, seed=0).image
    assert estimate_polarity(clean, estimate_separation(clean)).contrast == "dark"
    light = sim.simulate("srtio3_100", shape=96, pixel_size_pm=15, mode="abf", z_exponent=0.7, seed=0)
    heavy = sim.simulate("srtio3_100", shape=96, pixel_size_pm=15, mode="haadf", z_exponent=1.7, seed=0)
    assert len(light.positions_rc) > len(heavy.positions_rc)


def test_nanoparticle_labels_only_the_particle():
    for seed in range(3):
        _, s, (image, positions) = _scene("nanoparticle", seed)
        assert 0 < len(positions) < len(s.positions_rc)
        outside = np.ones(image.shape, bool)
        idx = np.round(positions).astype(int).clip(0, np.array(image.shape) - 1)
        outside[idx[:, 0], idx[:, 1]] = False
        # vacuum around the particle is dimmer than the labelled columns
        assert np.median(image[idx[:, 0], idx[:, 1]]) > np.median(image[outside])


def test_thick_support_and_light_lowdose_recipes():
    kw, s, _ = _scene("thick_support", 1)
    from napari_atombench.models.train_data import THICK_SUPPORT_AMORPHOUS

    lo, hi = THICK_SUPPORT_AMORPHOUS
    assert kw["crystal"] is None and lo <= kw["amorphous"] <= hi and 80 <= kw["resolution_pm"] <= 400
    kw, s, _ = _scene("light_lowdose", 2)
    px = kw["pixel_size_pm"] / 100
    assert kw["dose_e_per_A2"] * px**2 <= 12.0
    assert kw["crystal"] is tr.HBN or kw["crystal"] == "graphene"
    with pytest.raises(ValueError, match="unknown modality"):
        tr.modality_scene_kwargs("cryo", {}, np.random.default_rng(0))


def test_processing_artefacts_change_the_image_but_not_its_shape():
    rng = np.random.default_rng(0)
    img = sim.simulate("ws2", shape=64, pixel_size_pm=20, seed=0).image.astype(np.float32)
    changed = [not np.array_equal(tr.processing_artefacts(img, rng), img) for _ in range(40)]
    assert any(changed) and not all(changed)  # each artefact on a share of the images
    out, tgt = tr.augment(img[None], np.zeros((1, 64, 64), np.float32), rng, artefacts=True)
    assert out.shape == (1, 64, 64) and np.isfinite(out).all()


def test_chunked_pool_is_the_same_for_any_number_of_workers():
    kw = dict(target="gauss", target_px=1.2, modalities=True, resolution_pm=(60.0, 200.0))
    one = tr.make_pool_chunked(tr.POOL_CHUNK + 3, 32, seed=5, workers=1, **kw)
    assert one[0].shape == (tr.POOL_CHUNK + 3, 32, 32) and np.isfinite(one[0]).all()
    again = tr.make_pool_chunked(tr.POOL_CHUNK + 3, 32, seed=5, workers=1, **kw)
    np.testing.assert_array_equal(one[0], again[0])
    other = tr.make_pool_chunked(8, 32, seed=6, workers=1, **kw)
    assert not np.array_equal(one[0][:8], other[0])


def test_modality_shares_set_the_mix_of_the_pool(monkeypatch):
    from napari_atombench.models import train_data

    drawn = []
    real = train_data.modality_scene_kwargs
    monkeypatch.setattr(train_data, "modality_scene_kwargs", lambda kind, kw, rng: drawn.append(kind) or real(kind, kw, rng))
    kw = dict(target="gauss", target_px=1.2, modalities=True, resolution_pm=(60.0, 200.0))
    only_thick = {k: 0.0 for k in tr.MODALITY_KINDS} | {"thick_support": 0.9}
    tr.make_pool(30, 32, seed=1, modality_shares=only_thick, **kw)
    assert set(drawn) == {"thick_support"} and len(drawn) > 15  # ~27 of 30 expected, 10 % are v2 kinds
    drawn.clear()
    tr.make_pool(30, 32, seed=1, **kw)
    assert len(set(drawn)) > 1
    # the default shares make the default pool: same arrays with the defaults given explicitly
    np.testing.assert_array_equal(tr.make_pool(6, 32, seed=2, **kw)[0],
                                  tr.make_pool(6, 32, seed=2, modality_shares=dict(tr.MODALITY_KINDS), **kw)[0])
    for bad, match in (({"cryo": 0.1}, "unknown modality"), ({"abf": -0.1}, "must be in"),
                       ({"thick_support": 0.8}, "sum to")):
        with pytest.raises(ValueError, match=match):
            tr.make_pool(2, 32, seed=0, modality_shares=bad, **kw)
    with pytest.raises(ValueError, match="only with modalities"):
        tr.make_pool(2, 32, seed=0, target="gauss", target_px=1.2, modality_shares={"abf": 0.1})


def test_broad_thick_probes_keep_the_drawn_probe_in_thick_support_scenes(monkeypatch):
    from napari_atombench.models import train_data

    calls = []
    real_sim = train_data.sim.simulate
    monkeypatch.setattr(train_data.sim, "simulate", lambda **kw: calls.append(kw["resolution_pm"]) or real_sim(**kw))
    kw = dict(target="gauss", target_px=1.2, modalities=True, resolution_pm=(200.0, 400.0),
              modality_shares={k: 0.0 for k in tr.MODALITY_KINDS} | {"thick_support": 0.9})

    def resimulated(n=20, **extra):  # scenes simulated a second time, with a capped probe
        calls.clear()
        tr.make_pool(n, 96, seed=3, native_pixel_size_A=(0.08, 0.5), **kw, **extra)
        return len(calls) - n

    # a broad probe merges close adatoms in a few scenes (1 of these 20): the default (v3) recipe caps it
    assert resimulated() > 0
    assert resimulated(broad_thick_probes=True) == 0
    assert resimulated(seen_labels=True) == 0
    with pytest.raises(ValueError, match="only with modalities"):
        tr.make_pool(2, 32, seed=0, target="gauss", target_px=1.2, broad_thick_probes=True)


def test_quick_modalities_training_runs(tmp_path):
    pytest.importorskip("torch")
    from napari_atombench.cli import main

    out = tmp_path / "v3.pt"
    assert main(["train", "atombench_unet", "--quick", "--modalities", "--device", "cpu", "--out", str(out),
                 "--modality-share", "thick_support=0.2", "--polarity-negatives", "0.1", "--broad-thick-probes"]) == 0
    import json

    import torch

    ckpt = torch.load(out, map_location="cpu", weights_only=True)
    config = json.loads(ckpt["config"])
    assert config["modalities"] is True and config["modality_shares"] == {"thick_support": 0.2}
    assert config["polarity_negatives"] == 0.1 and config["broad_thick_probes"] is True


def test_polarity_negatives_invert_some_crops_and_empty_their_targets():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(400, 8, 8)).astype(np.float32)
    targets = rng.uniform(0, 1, size=(400, 8, 8)).astype(np.float32)
    state = np.random.default_rng(5).bit_generator.state
    untouched = np.random.default_rng(5)
    assert tr.polarity_negatives(images, targets, 0.0, untouched) == (images, targets)
    assert untouched.bit_generator.state == state  # share 0 draws nothing: the default stream is unchanged
    neg_images, neg_targets = tr.polarity_negatives(images, targets, 0.25, np.random.default_rng(5))
    wrong = np.all(neg_targets == 0, axis=(1, 2))
    np.testing.assert_array_equal(neg_images[wrong], -images[wrong])
    np.testing.assert_array_equal(neg_images[~wrong], images[~wrong])
    np.testing.assert_array_equal(neg_targets[~wrong], targets[~wrong])
    assert 0.25 - 4 * np.sqrt(0.25 * 0.75 / 400) < wrong.mean() < 0.25 + 4 * np.sqrt(0.25 * 0.75 / 400)


def test_training_can_start_from_weights(tmp_path):
    """--init-weights: the run starts from the given network (not a random one) and records
    the file's SHA-256; the v3 recipe warm-starts from the v2 weights this way."""
    pytest.importorskip("torch")
    import json

    import torch

    from napari_atombench.cli import main
    from napari_atombench.models.checkpoints import sha256_of
    from napari_atombench.models.registry import build_architecture

    init = tmp_path / "init.pt"
    net = build_architecture("atombench_unet", base_channels=16, depth=3)
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(2.0**-6)  # exact in fp16
    torch.save({k: v.half() for k, v in net.state_dict().items()}, init)
    out = tmp_path / "warm.pt"
    assert main(["train", "atombench_unet", "--quick", "--steps", "1", "--device", "cpu", "--lr", "1e-9",
                 "--init-weights", str(init), "--out", str(out)]) == 0
    ckpt = torch.load(out, map_location="cpu", weights_only=True)
    config = json.loads(ckpt["config"])
    assert config["init_weights"] == str(init) and config["init_weights_sha256"] == sha256_of(init)
    # one step at lr 1e-9 leaves the start weights in place (a random start would not be 2^-6)
    assert torch.allclose(ckpt["state_dict"]["enc.0.0.weight"], torch.full((16, 1, 3, 3), 2.0**-6), atol=1e-6)
