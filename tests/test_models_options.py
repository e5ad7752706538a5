"""One factory for every model; every option is applied (it changes the result and is
recorded) or rejected with an error naming it and the model."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_atombench.core import simulate as sim  # noqa: E402
from napari_atombench.core.match import match_positions  # noqa: E402
from napari_atombench.models.registry import REGISTRY, get_locator, get_spec  # noqa: E402

#: one shipped model per pipeline family (all packaged: no download)
FAMILY_MODELS = {"atombench": "atombench", "atomnet": "atomnet-sim", "atomsegnet": "atomsegnet-sim"}


@pytest.fixture(scope="module")
def scene():
    return sim.simulate("srtio3_100", shape=(144, 144), pixel_size_pm=20, dose_e_per_A2=5e3, seed=11)


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _run(name, scene, **options):
    return get_locator(name, device="cpu", **options).locate(scene.image, scene.pixel_size_A)


def _moved_px(a, b) -> np.ndarray:
    """Distances between one-to-one matched positions of two runs (1.5 px radius)."""
    match = match_positions(a, b, 1.5)
    return np.asarray(match.distance_px)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_registered_spec_builds_its_network(name):
    net = get_spec(name).build()
    assert isinstance(net, torch.nn.Module) and sum(p.numel() for p in net.parameters()) > 0


@pytest.mark.parametrize("family", list(FAMILY_MODELS))
def test_refine_moves_positions_and_is_recorded(family, scene):
    name = FAMILY_MODELS[family]
    plain, refined = _run(name, scene), _run(name, scene, refine=True)
    assert plain.metadata["refined"] is False and refined.metadata["refined"] is True
    moved = _moved_px(plain.positions_rc, refined.positions_rc)
    assert len(moved) >= 0.9 * len(plain.positions_rc) > 20
    # a Gaussian fit moves centroids by a few hundredths of a pixel or more
    assert np.median(moved) > 1e-3


@pytest.mark.parametrize("family", list(FAMILY_MODELS))
def test_rescale_changes_what_the_network_sees(family, scene):
    name = FAMILY_MODELS[family]
    plain, scaled = _run(name, scene), _run(name, scene, rescale=1.5)
    assert plain.metadata["rescale"] == 1.0 and scaled.metadata["rescale"] == 1.5
    assert scaled.probability_map.shape == scene.image.shape  # back in the input frame
    assert not np.allclose(plain.probability_map, scaled.probability_map, atol=1e-2)
    assert len(scaled.positions_rc) > 20


@pytest.mark.parametrize("family", list(FAMILY_MODELS))
def test_bf16_runs_the_network_in_bfloat16(family, scene):
    name = FAMILY_MODELS[family]
    fp32, bf16 = _run(name, scene), _run(name, scene, bf16=True)
    assert fp32.metadata["bf16"] is False and bf16.metadata["bf16"] is True
    # bfloat16 keeps 8 bits of mantissa: the map moves by far more than fp32 rounding (~1e-6)
    assert np.abs(fp32.probability_map - bf16.probability_map).max() > 1e-3
    moved = _moved_px(fp32.positions_rc, bf16.positions_rc)
    assert len(moved) >= 0.9 * len(fp32.positions_rc)


@pytest.mark.parametrize("family", ["atombench", "atomnet"])
def test_threshold_is_applied(family, scene):
    name = FAMILY_MODELS[family]
    low, high = _run(name, scene, threshold=0.3), _run(name, scene, threshold=0.97)
    assert low.metadata["threshold"] == 0.3 and high.metadata["threshold"] == 0.97
    assert len(high.positions_rc) < len(low.positions_rc)


def test_threshold_is_rejected_where_the_pipeline_has_none():
    with pytest.raises(ValueError, match=r"atomsegnet-sim.*threshold"):
        get_locator("atomsegnet-sim", device="cpu", threshold=0.5)


@pytest.mark.parametrize("family", list(FAMILY_MODELS))
def test_unknown_option_is_rejected_by_name(family):
    name = FAMILY_MODELS[family]
    with pytest.raises(ValueError, match=rf"unknown option\(s\) for model '{name}': no_such_option"):
        get_locator(name, device="cpu", no_such_option=1)


@pytest.mark.parametrize("family", list(FAMILY_MODELS))
@pytest.mark.parametrize("rescale", [0, -1.0, float("nan"), float("inf")])
def test_nonsense_rescale_is_rejected(family, rescale):
    with pytest.raises(ValueError, match=rf"rescale for model '{FAMILY_MODELS[family]}'"):
        get_locator(FAMILY_MODELS[family], device="cpu", rescale=rescale)


def test_options_that_cannot_apply_are_refused():
    with pytest.raises(ValueError, match="only the 'default' fidelity"):
        get_locator("atombench", device="cpu", fidelity="original")
    with pytest.raises(ValueError, match="records no trained sampling"):
        get_locator(get_spec("atomnet-cubic"), device="cpu", sampling_aware=True)
    for name in ("atombench", "atomnet-sim"):
        with pytest.raises(ValueError, match=f"threshold for model '{name}' must be a finite"):
            get_locator(name, device="cpu", threshold=float("nan"))


def test_explicit_edge_rule_applies_without_the_sampling_rule(scene):
    kept = get_locator("atombench", device="cpu", sampling_aware=False).locate(scene.image)
    ruled = get_locator("atombench", device="cpu", sampling_aware=False, edge_px=10).locate(scene.image)
    assert ruled.metadata["edge_px"] == 10 and ruled.metadata["sampling_from"] == "off"
    border = np.minimum(ruled.positions_rc, np.array(scene.image.shape) - 1 - ruled.positions_rc).min(axis=1)
    assert (border >= 10).all() and len(ruled.positions_rc) < len(kept.positions_rc)
