"""finetune: adapting the shipped model to an unseen modality from labels of one quarter."""

import numpy as np
import pytest

from napari_atombench.cli import main
from napari_atombench.core import simulate as sim
from napari_atombench.core.io import read_positions, write_positions
from napari_atombench.core.match import match_positions
from napari_atombench.core.metrics import score_positions
from napari_atombench.models.base import Cancelled
from napari_atombench.models.finetune import (
    finetune, load_adapted_weights, region_box, save_adapted_weights, strip_f1,
)
from napari_atombench.models.registry import get_locator
from napari_atombench.models.registry import list_adapted_models


def inverted_scene(side: int, seed: int = 5):
    """Simulated SrTiO3 [100] HAADF with its contrast inverted (dark columns on a
    bright background): a modality the shipped model never saw in training."""
    s = sim.simulate("srtio3_100", shape=(side, side), pixel_size_pm=20, resolution_pm=90, dose_e_per_A2=2e3,
                     seed=seed, rotation_deg=7)
    return -s.image, s.positions_rc


def _f1_outside_quarter(pred, truth, half):
    in_q = lambda p: (p[:, 0] < half - 0.5) & (p[:, 1] < half - 0.5)  # noqa: E731
    return score_positions(pred[~in_q(pred)], truth[~in_q(truth)], max_distance_px=3.0).f1


@pytest.fixture(scope="module")
def adapted():
    image, truth = inverted_scene(256)
    half = 128
    # pixel centres are integers: the box of pixels 0..127 ends at 127.5
    quarter = truth[(truth[:, 0] < half - 0.5) & (truth[:, 1] < half - 0.5)]
    # contrast="bright": without the polarity rule, dark columns are a modality the shipped
    # weights never saw; fine-tuning must learn it from the labels alone
    base = get_locator("atombench", device="cpu", contrast="bright")
    result = finetune(base, image, quarter, region=(0, 0, half, half), steps=100, pixel_size_A=0.2,
                      device="cpu", seed=0, threads=1, image_name="inverted srtio3")
    return image, truth, quarter, result


def test_finetune_on_one_quarter_finds_the_other_three(adapted):
    image, truth, quarter, result = adapted
    shipped = get_locator("atombench", device="cpu", contrast="bright").locate(image, 0.2).positions_rc
    before = _f1_outside_quarter(shipped, truth, 128)
    after = _f1_outside_quarter(result.locator.locate(image, 0.2).positions_rc, truth, 128)
    assert before < 0.9  # the shipped model fails on inverted contrast
    assert after >= 0.97
    card = result.card
    assert card["base_model"] == "atombench" and card["image_name"] == "inverted srtio3"
    assert card["n_labels"] == len(quarter) and card["region_rc"] == [0, 0, 128, 128]
    assert 0 < card["steps"] <= card["steps_run"] <= 100
    assert card["validation_f1"] >= card["validation_f1_before"]
    assert card["seconds"] > 0 and card["n_labels_validation"] > 0
    # the held-out strip is the last fifth of the region's rows, apart from the training part
    assert card["validation_region_rc"][0] >= 96 and card["validation_region_rc"][2] == 128


def test_saved_weights_reload_with_the_same_predictions(adapted, tmp_path, monkeypatch):
    image, _, _, result = adapted
    path = save_adapted_weights(result, tmp_path / "adapted.pt")
    state, card = load_adapted_weights(path)
    assert card == result.card and set(state) == set(result.state_dict)
    reloaded = get_locator("atombench", weights=path, device="cpu")
    a = result.locator.locate(image, 0.2).positions_rc
    b = reloaded.locate(image, 0.2).positions_rc
    match = match_positions(a, b, 1e-3)
    assert match.n_fp == 0 and match.n_fn == 0
    monkeypatch.setenv("ATOMBENCH_USER_MODELS_DIR", str(tmp_path))
    (tmp_path / "not-adapted.pt").write_bytes(b"junk")
    rows = list_adapted_models()
    assert [r["name"] for r in rows] == ["adapted"] and rows[0]["base_model"] == "atombench"


def test_region_box():
    labels = np.array([[10.0, 10.0], [10.0, 20.0], [20.0, 10.0], [20.0, 20.0]])
    assert region_box(labels, (100, 100)) == (5, 5, 26, 26)  # grown by half a separation
    assert region_box(labels, (100, 100), (0, 0, 50, 40)) == (0, 0, 50, 40)
    mask = np.zeros((100, 100), bool)
    mask[3:30, 4:60] = True
    assert region_box(labels, (100, 100), mask) == (3, 4, 30, 60)
    with pytest.raises(ValueError, match="region mask has shape"):
        region_box(labels, (100, 100), np.ones((5, 5), bool))
    with pytest.raises(ValueError, match="smaller than 8 px"):
        region_box(labels, (100, 100), (0, 0, 4, 4))
    with pytest.raises(ValueError, match="region must be"):
        region_box(labels, (100, 100), (0, 0, 4))


def test_strip_f1_counts_only_inside_the_box():
    labels = np.array([[5.0, 5.0], [5.0, 15.0], [15.0, 5.0], [30.0, 30.0]])
    box = (0, 0, 20, 20)
    # one label found, one missed, one false positive inside; the far one is outside the box
    pred = np.array([[5.2, 5.0], [10.0, 10.0], [30.0, 30.0], [15.0, 20.8]])
    # [15, 20.8] lies just outside the box but matches nothing inside: neither TP nor FP
    assert strip_f1(pred, labels, box, 2.0) == pytest.approx(2 * 1 / (2 * 1 + 1 + 2))


def test_progress_cancel_and_bad_input():
    image, truth = inverted_scene(96, seed=1)
    calls = []
    result = finetune("atombench", image, truth, steps=3, eval_every=1, pixel_size_A=0.2, device="cpu", threads=1,
                      progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 3), (2, 3), (3, 3)] and len(result.history) == 3
    with pytest.raises(Cancelled):
        finetune("atombench", image, truth, steps=3, pixel_size_A=0.2, device="cpu", cancelled=lambda: True)
    with pytest.raises(ValueError, match="cannot be fine-tuned"):
        finetune("atomsegnet-sim", image, truth, steps=1, device="cpu")
    with pytest.raises(ValueError, match="at least 4 labels"):
        finetune("atombench", image, truth[:2], steps=1, device="cpu")
    with pytest.raises(ValueError, match="steps must be"):
        finetune("atombench", image, truth, steps=0, device="cpu")


def test_cli_finetune_locate_and_classify(tmp_path, capsys, monkeypatch):
    image, truth = inverted_scene(96, seed=2)
    np.save(tmp_path / "img.npy", image)
    write_positions(tmp_path / "labels.csv", truth)
    weights = tmp_path / "adapted.pt"
    assert main(["finetune", str(tmp_path / "img.npy"), str(tmp_path / "labels.csv"), "--out", str(weights),
                 "--steps", "2", "--pixel-size-A", "0.2", "--device", "cpu", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "step 2/2" in out and "validation F1" in out and weights.is_file()
    pos = tmp_path / "pos.csv"
    assert main(["locate", str(tmp_path / "img.npy"), "--weights", str(weights), "--pixel-size-A", "0.2",
                 "--device", "cpu", "--out", str(pos)]) == 0
    assert pos.is_file()
    monkeypatch.setenv("ATOMBENCH_USER_MODELS_DIR", str(tmp_path))
    capsys.readouterr()
    assert main(["models"]) == 0
    assert "adapted  base atombench  image img.npy" in capsys.readouterr().out
    s = sim.simulate("ws2", shape=(160, 160), pixel_size_pm=15, resolution_pm=80, dose_e_per_A2=1e4, seed=4)
    np.save(tmp_path / "ws2.npy", s.image)
    write_positions(tmp_path / "ws2.csv", s.positions_rc)
    assert main(["classify", str(tmp_path / "ws2.npy"), str(tmp_path / "ws2.csv"), "--out",
                 str(tmp_path / "cls.csv")]) == 0
    table = read_positions(tmp_path / "cls.csv")
    heavy = s.species == "W"
    assert np.all(table.features["class"].to_numpy() == heavy.astype(int))
    assert main(["classify", str(tmp_path / "ws2.npy"), str(tmp_path / "ws2.csv"), "--out",
                 str(tmp_path / "c.csv"), "--n-classes", "x"]) == 2
    assert "--n-classes" in capsys.readouterr().err
    assert main(["finetune", str(tmp_path / "img.npy"), str(tmp_path / "labels.csv"), "--out",
                 str(tmp_path / "w.txt")]) == 2
