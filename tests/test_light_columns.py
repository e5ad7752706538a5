"""The v3 light-columns input: which columns count (light columns among heavy ones, or the
heavy-column convention of HAADF), as a second input plane of our U-Net."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atombench.core import simulate as sim
from napari_atombench.models import train_data as tr

torch = pytest.importorskip("torch")


def _net(in_channels: int, seed: int = 0):
    from napari_atombench.models.registry import build_architecture

    torch.manual_seed(seed)
    return build_architecture("atombench_unet", base_channels=8, depth=2, in_channels=in_channels).eval()


def _v2like():
    from napari_atombench.models.registry import build_architecture

    return build_architecture("atombench_unet", base_channels=8, depth=3)


def _save(net, path):
    torch.save(net.state_dict(), path)
    return path


def test_unet_takes_one_or_two_input_planes():
    assert _net(1).enc[0][0].weight.shape[1] == 1
    assert _net(2).enc[0][0].weight.shape[1] == 2
    with pytest.raises(ValueError, match="in_channels must be 1"):
        _net(3)


def test_input_planes_append_the_flag_only_for_two_channel_networks():
    from napari_atombench.models.ours import input_planes

    x = torch.randn(3, 1, 8, 8)
    assert input_planes(x, 1, True) is x
    both = input_planes(x, 2, True)
    assert both.shape == (3, 2, 8, 8) and torch.equal(both[:, 0], x[:, 0]) and bool((both[:, 1] == 1).all())
    per_image = input_planes(x, 2, torch.tensor([0.0, 1.0, 0.0]))
    assert per_image[:, 1, 0, 0].tolist() == [0.0, 1.0, 0.0]


def test_widened_v2_weights_compute_what_they_did():
    """Warm start: the light-columns channel starts at zero weight, so for either flag the
    widened network's logits equal the one-channel network's (up to fp32 summation order:
    the bound is a few ulps of the largest logit)."""
    from napari_atombench.models.ours import input_planes
    from napari_atombench.models.train import widen_first_conv

    old, new = _net(1, seed=1), _net(2, seed=2)
    new.load_state_dict(widen_first_conv(old.state_dict(), new))
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        ref = old(x)
        for flag in (False, True):
            out = new(input_planes(x, 2, flag))
            bound = 64 * torch.finfo(torch.float32).eps * float(ref.abs().max())
            assert float((out - ref).abs().max()) <= bound
    # anything else passes through unchanged
    state = new.state_dict()
    assert widen_first_conv(state, new) is state


def test_flag_zero_labels_drop_the_pure_light_columns_of_idpc_and_abf_scenes():
    for kind, seed in (("idpc", 3), ("abf", 5)):
        rng = np.random.default_rng(seed)
        kw = tr.random_scene_kwargs(rng, 96, 0.2, None, (60.0, 200.0))
        kw = tr.modality_scene_kwargs(kind, kw, rng)
        kw["crystal"] = tr._perovskite(rng)
        kw.update(label_min_snr=None, label_resolved_only=False)  # the weight policy alone
        s = sim.simulate(**kw)
        heavy, unseen = tr.heavy_column_labels(s, kw)
        assert len(unseen) == 0
        assert 0 < len(heavy) < len(s.positions_rc)
        # a subset at identical positions: exactly the columns that are not pure O
        from scipy.spatial import cKDTree

        dist, idx = cKDTree(s.positions_rc).query(heavy)
        assert float(dist.max()) == 0.0
        # every cation column, no pure O column (a substituted "O*" counts where HAADF shows it)
        assert "O" in set(s.species) and "O" not in set(s.species[idx])
        assert int(np.isin(s.species, ["A", "BO", "A*", "BO*"]).sum()) <= len(heavy) <= int(np.sum(s.species != "O"))
        assert set(np.flatnonzero(np.isin(s.species, ["A", "BO", "A*", "BO*"]))) <= set(idx)


def test_modality_pool_carries_a_light_columns_flag_per_scene():
    images, targets, seps, light = tr.make_pool(40, 32, seed=4, target="gauss", target_px=1.2, modalities=True,
                                                resolution_pm=(60.0, 200.0))
    assert light.shape == (40,) and set(np.unique(light)) == {0.0, 1.0}
    plain = tr.make_pool(4, 32, seed=4, target="gauss", target_px=1.2)
    assert plain[3].shape == (4,) and not plain[3].any()


@pytest.mark.filterwarnings("ignore:pixel size and lattice disagree")
def test_locator_applies_or_refuses_light_columns(tmp_path):
    from napari_atombench.models.registry import get_locator

    image = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    one = _save(_net(1), tmp_path / "one.pt")
    with pytest.raises(ValueError, match="no light-columns input"):
        get_locator("atombench", weights=one, device="cpu", light_columns=True)
    two = _save(_net(2), tmp_path / "two.pt")
    with pytest.raises(ValueError, match="must be True or False"):
        get_locator("atombench", weights=two, device="cpu", light_columns="yes")
    maps = {}
    for flag in (False, True):
        loc = get_locator("atombench", weights=two, device="cpu", light_columns=flag, contrast="bright")
        result = loc.locate(image, 0.2)
        assert result.metadata["light_columns"] is flag
        maps[flag] = result.probability_map
    assert not np.allclose(maps[False], maps[True])  # the plane reaches the network


def test_cli_light_columns_with_weights_without_the_input_is_one_line(tmp_path, capsys):
    from napari_atombench.cli import main

    weights = _save(_net(1), tmp_path / "one.pt")
    np.save(tmp_path / "img.npy", np.random.default_rng(0).random((64, 64)).astype(np.float32))
    code = main(["locate", str(tmp_path / "img.npy"), "--pixel-size-A", "0.2", "--weights", str(weights),
                 "--light-columns", "--out", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "no light-columns input" in err
    assert not (tmp_path / "p.csv").exists()


def test_modalities_training_builds_a_two_plane_network_from_v2_weights(tmp_path):
    import json

    from napari_atombench.cli import main

    init = _save(_v2like(), tmp_path / "v2like.pt")
    out = tmp_path / "v3.pt"
    assert main(["train", "atombench_unet", "--quick", "--steps", "2", "--modalities", "--device", "cpu",
                 "--base-channels", "8", "--init-weights", str(init), "--out", str(out)]) == 0
    ckpt = torch.load(out, map_location="cpu", weights_only=True)
    assert json.loads(ckpt["config"])["arch_kwargs"]["in_channels"] == 2
    assert ckpt["state_dict"]["enc.0.0.weight"].shape[1] == 2


@pytest.mark.filterwarnings("ignore:pixel size and lattice disagree")
def test_adapted_v3_weights_keep_their_light_columns_choice(tmp_path):
    from napari_atombench.models.finetune import finetune, save_adapted_weights
    from napari_atombench.models.registry import get_locator

    s = sim.simulate("srtio3_100", shape=(96, 96), pixel_size_pm=20, resolution_pm=90, dose_e_per_A2=2e3, seed=2)
    weights = _save(_net(2), tmp_path / "v3like.pt")
    base = get_locator("atombench", weights=weights, device="cpu", light_columns=True, contrast="bright")
    result = finetune(base, s.image, s.positions_rc, steps=2, pixel_size_A=0.2, weights=weights, device="cpu",
                      seed=0, threads=1, image_name="srtio3")
    assert result.card["light_columns"] is True and result.card["arch_kwargs"]["in_channels"] == 2
    assert result.locator.inner.light_columns is True
    path = save_adapted_weights(result, tmp_path / "adapted.pt")
    reloaded = get_locator("atombench", weights=path, device="cpu")
    assert reloaded.inner.light_columns is True and reloaded.locate(s.image, 0.2).metadata["light_columns"] is True


def test_trained_separation_comes_from_the_heavy_convention_scenes():
    """The no-pixel-size rule compares an image's lattice with the training separations of
    the default convention: O-labelled scenes (about half the spacing) and scenes with
    fewer than three columns (NaN) are left out."""
    from napari_atombench.models.train import trained_separation_px

    seps = np.array([14.0, 7.0, np.nan, 12.0, 6.5, 13.0])
    light = np.array([0, 1, 0, 0, 1, 0], np.float32)
    assert trained_separation_px(seps, light) == pytest.approx(13.0)
    assert trained_separation_px(seps, np.zeros(6)) == pytest.approx(12.0)
    assert np.isnan(trained_separation_px(np.array([np.nan]), np.zeros(1)))
