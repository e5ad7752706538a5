"""The atombench command line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from napari_atombench.cli import main
from napari_atombench.sample_data import sample_paths


def test_info_json(capsys):
    image_path, _ = sample_paths("srtio3")
    assert main(["info", str(image_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shape"] == [256, 256]
    assert info["pixel_size_A"] == pytest.approx(0.15)


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    path = tmp_path / "stack.npy"
    np.save(path, np.zeros((3, 8, 8)))
    assert main(["info", str(tmp_path / "missing.tif")]) == 2
    assert "no such image file" in capsys.readouterr().err
    bad = tmp_path / "x.txt"
    bad.write_text("x")
    assert main(["info", str(bad)]) == 2
    assert "unsupported image type" in capsys.readouterr().err


@pytest.mark.gui
def test_view_writes_screenshot(tmp_path):
    png = tmp_path / "shot.png"
    result = subprocess.run(
        [sys.executable, "-m", "napari_atombench.cli", "view", "--screenshot", str(png)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    from skimage.io import imread

    pixels = imread(png)
    assert pixels.ndim == 3 and pixels.shape[0] > 200
    assert pixels[..., :3].std() > 10  # not a blank window


def test_score_json_matches_the_core_and_reads_pixel_size_from_the_labels(tmp_path, capsys):
    from napari_atombench.core.io import read_positions, write_positions
    from napari_atombench.core.metrics import score_positions

    _, labels_path = sample_paths("srtio3")
    truth = read_positions(labels_path)
    predicted = truth.positions_rc[:-3] + 0.4  # 3 misses, 0.57 px off each
    pred_path = tmp_path / "pred.csv"
    write_positions(pred_path, predicted)
    assert main(["score", str(pred_path), str(labels_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    expected = score_positions(predicted, truth.positions_rc, pixel_size_A=0.15).as_dict()
    assert result == pytest.approx(expected)
    assert result["n_fn"] == 3 and result["rmse_px"] == pytest.approx(0.4 * 2**0.5)
    assert result["rmse_A"] == pytest.approx(0.15 * 0.4 * 2**0.5)  # pixel size from the labels CSV


def test_score_options_and_plain_output(tmp_path, capsys):
    from napari_atombench.core.io import write_positions

    truth, pred = tmp_path / "truth.csv", tmp_path / "pred.csv"
    write_positions(truth, [[0.0, 0.0], [0.0, 3.0]])
    write_positions(pred, [[0.0, 1.5], [20.0, 20.0]])
    assert main(["score", str(pred), str(truth), "--max-distance-px", "2", "--json"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert (one["n_tp"], one["recall"], one["rmse_A"], one["passes"]) == (1, 0.5, None, None)
    assert main(["score", str(pred), str(truth), "--paper-compatible", "--pixel-size-A", "0.1", "--json"]) == 2
    assert "needs image_shape" in capsys.readouterr().err  # the 1 % edge rule needs the image size
    assert main(["score", str(pred), str(truth), "--paper-compatible", "--pixel-size-A", "0.1", "--json",
                 "--image-shape", "500", "500"]) == 0
    paper = json.loads(capsys.readouterr().out)
    # (0, 1.5) lies on row 0, within 1 % of the edge: dropped; the labels there are kept and missed
    assert (paper["n_pred"], paper["n_tp"], paper["recall"], paper["paper_compatible"]) == (1, 0, 0.0, True)
    assert paper["rmse_A"] is None  # no pair left to average
    assert main(["score", str(pred), str(truth), "--pixel-size-A", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "recall: 0.5000" in out and "passes: False" in out
    # the two radius options exclude each other; a missing file is a one-line error
    with pytest.raises(SystemExit):
        main(["score", str(pred), str(truth), "--max-distance-A", "1", "--max-distance-px", "2"])
    assert main(["score", str(tmp_path / "none.csv"), str(truth)]) == 2
    assert "error" in capsys.readouterr().err
