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
