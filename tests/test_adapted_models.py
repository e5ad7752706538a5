"""Adapted models by name: a finetuned .pt in the user models folder (by its stem) or
anywhere (by its path) is a model name for get_locator, locate, benchmark and view."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest
import torch

from napari_atombench.cli import main
from napari_atombench.cli.view import _check_view_args as check_view_args
from napari_atombench.core import simulate as sim
from napari_atombench.core.dataset import Case, write_folder_dataset
from napari_atombench.core.match import match_positions
from napari_atombench.models.finetune import finetune, save_adapted_weights
from napari_atombench.models.registry import get_locator, list_adapted_models, resolve_model

NAME = "sto-atombench-adapted"


@pytest.fixture(scope="module")
def scene():
    s = sim.simulate("srtio3_100", shape=(96, 96), pixel_size_pm=20, resolution_pm=90, dose_e_per_A2=2e3, seed=3)
    return s.image, s.positions_rc


@pytest.fixture(scope="module")
def adapted_file(scene, tmp_path_factory):
    """A two-step fine-tune of atombench, saved as <folder>/sto-atombench-adapted.pt."""
    image, truth = scene
    result = finetune("atombench", image, truth, steps=2, eval_every=1, pixel_size_A=0.2, device="cpu", threads=1,
                      image_name="sto.npy")
    return save_adapted_weights(result, tmp_path_factory.mktemp("user_models") / f"{NAME}.pt")


@pytest.fixture
def user_models(adapted_file, monkeypatch):
    monkeypatch.setenv("ATOMBENCH_USER_MODELS_DIR", str(adapted_file.parent))
    return adapted_file.parent


def _same_positions(a: np.ndarray, b: np.ndarray) -> bool:
    # the same network and weights on the same CPU: any difference is float summation order
    match = match_positions(a, b, 1e-3)
    return match.n_fp == 0 and match.n_fn == 0


def test_adapted_model_by_name_and_by_path_is_the_base_spec_with_its_weights(scene, adapted_file, user_models):
    image, _ = scene
    by_weights = get_locator("atombench", weights=adapted_file, device="cpu")
    by_name = get_locator(NAME, device="cpu")
    by_path = get_locator(str(adapted_file), device="cpu")
    expected = by_weights.locate(image, 0.2).positions_rc
    assert len(expected) > 0
    assert by_name.name == by_path.name == NAME and by_weights.name == "atombench"
    for locator in (by_name, by_path):
        result = locator.locate(image, 0.2)
        assert result.metadata["weights_path"] == str(adapted_file)
        assert _same_positions(result.positions_rc, expected)
    spec, weights = resolve_model(NAME)
    assert spec.name == "atombench" and weights == adapted_file
    # the shipped weights give another network: the name did select the adapted file
    shipped = get_locator("atombench", device="cpu").inner.net.state_dict()
    assert any(not torch.equal(v, shipped[k]) for k, v in by_name.inner.net.state_dict().items())


def test_models_lists_it_and_benchmark_runs_it_by_name_and_path(tmp_path, adapted_file, user_models, capsys):
    assert [r["name"] for r in list_adapted_models()] == [NAME]
    assert main(["models"]) == 0
    assert f"{NAME}  base atombench  image sto.npy" in capsys.readouterr().out
    s = sim.simulate("srtio3_100", shape=(64, 64), pixel_size_pm=20, resolution_pm=90, dose_e_per_A2=2e3, seed=8)
    write_folder_dataset(tmp_path / "ds", [Case(case="sto", pixel_size_A=0.2, kind="simulated", material="SrTiO3",
                                                image=s.image, truth_rc=s.positions_rc)])
    out = tmp_path / "results.csv"
    assert main(["benchmark", str(tmp_path / "ds"), "--model", NAME,
                 "--model", str(adapted_file), "--out", str(out), "--scheduler", "sync", "--device", "cpu",
                 "--no-progress"]) == 0
    table = pd.read_csv(out, keep_default_na=False)
    assert sorted(table["model"]) == sorted([NAME, str(adapted_file)])
    assert (table["error"] == "").all()
    # same weights under two names: the same predictions, scored the same
    assert table["n_pred"].nunique() == 1 and table["n_pred"].iloc[0] > 0 and table["n_tp"].nunique() == 1


def test_locate_and_view_accept_the_name(tmp_path, scene, user_models, capsys):
    image, _ = scene
    np.save(tmp_path / "img.npy", image)
    out = tmp_path / "pos.csv"
    assert main(["locate", str(tmp_path / "img.npy"), "--model", NAME, "--pixel-size-A", "0.2", "--device", "cpu",
                 "--out", str(out)]) == 0
    assert out.is_file() and NAME in capsys.readouterr().out
    # the view command's checks before a window opens accept the name, and still refuse an unknown one
    args = argparse.Namespace(screenshot=None, image=tmp_path / "img.npy", labels=None, sample="srtio3",
                              no_model=False, model=NAME)
    check_view_args(args)
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        check_view_args(argparse.Namespace(**{**vars(args), "model": "nope"}))


def test_finetune_without_out_saves_into_the_user_models_folder(tmp_path, scene, monkeypatch, capsys):
    image, truth = scene
    monkeypatch.setenv("ATOMBENCH_USER_MODELS_DIR", str(tmp_path / "models"))
    np.save(tmp_path / "cell.npy", image)
    pd.DataFrame({"x_px": truth[:, 1], "y_px": truth[:, 0]}).to_csv(tmp_path / "cell.csv", index=False)
    assert main(["finetune", str(tmp_path / "cell.npy"), str(tmp_path / "cell.csv"), "--steps", "2",
                 "--pixel-size-A", "0.2", "--device", "cpu", "--threads", "1"]) == 0
    expected = tmp_path / "models" / "cell-atombench-adapted.pt"
    assert expected.is_file() and str(expected) in capsys.readouterr().out
    assert [r["name"] for r in list_adapted_models()] == ["cell-atombench-adapted"]


@pytest.mark.parametrize("kind", ["missing", "garbage", "state_dict_only", "unknown_base", "folder"])
def test_bad_adapted_files_are_one_line_errors(tmp_path, scene, adapted_file, kind, capsys, monkeypatch):
    monkeypatch.setenv("ATOMBENCH_USER_MODELS_DIR", str(tmp_path))
    path = tmp_path / "bad.pt"
    if kind == "garbage":
        path.write_bytes(b"\x80\x02junk that is no checkpoint")
    elif kind == "state_dict_only":
        torch.save({"w": torch.zeros(2)}, path)
    elif kind == "unknown_base":
        obj = torch.load(adapted_file, weights_only=True)
        torch.save({"state_dict": obj["state_dict"], "card": {**obj["card"], "base_model": "no-such-model"}}, path)
    elif kind == "folder":
        path = tmp_path / "weights.pt"
        path.mkdir()
    np.save(tmp_path / "img.npy", scene[0])
    why = {"missing": "no such adapted-weights file", "garbage": "not a PyTorch weights file",
           "state_dict_only": "not an adapted-weights file", "unknown_base": "base model 'no-such-model'",
           "folder": "is a folder"}[kind]
    for model in ([str(path)] + (["bad"] if kind in ("garbage", "state_dict_only", "unknown_base") else [])):
        with pytest.raises((ValueError, FileNotFoundError), match=why):
            get_locator(model, device="cpu")
        assert main(["locate", str(tmp_path / "img.npy"), "--model", model, "--device", "cpu",
                     "--out", str(tmp_path / "p.csv")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("atombench locate: error:") and why in err


def test_an_adapted_model_with_weights_too_is_refused(adapted_file, user_models):
    with pytest.raises(ValueError, match="pass no weights file"):
        get_locator(NAME, weights=adapted_file, device="cpu")
    with pytest.raises(ValueError, match=f"unknown model 'nope'.*adapted models: {NAME}"):
        get_locator("nope", device="cpu")


@pytest.mark.gui
def test_run_dock_lists_and_runs_the_adapted_model(make_napari_viewer, qtbot, scene, adapted_file, user_models,
                                                   monkeypatch):
    import napari_atombench.widgets.run_model as mod

    errors: list[str] = []
    monkeypatch.setattr(mod, "show_error", lambda msg: errors.append(str(msg)))
    viewer = make_napari_viewer()
    layer = viewer.add_image(scene[0].astype(np.float32), name="sto", metadata={"pixel_size_A": 0.2})
    widget = mod.RunModelWidget(viewer)
    assert NAME in widget.model.choices and "atombench" in widget.model.choices
    widget.image.value = layer
    widget.model.value = NAME
    widget.device.value = "cpu"
    widget.run()
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=120_000)
    assert errors == []
    points = viewer.layers[f"sto {NAME}"]
    assert points.metadata["weights_path"] == str(adapted_file) and len(points.data) > 0
