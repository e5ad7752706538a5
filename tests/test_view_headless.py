"""`atombench view --screenshot` without a display (issue 14 item 8)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from napari_atombench.widgets.session import XVFB_SCREEN


def _env_without_display(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.pop("QT_QPA_PLATFORM", None)
    env.update(extra)
    return env


def _view(args, env, timeout=300):
    return subprocess.run([sys.executable, "-m", "napari_atombench.cli", "view", *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.gui
@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run not installed (CI installs the xvfb package)")
def test_view_screenshot_without_display_reruns_under_xvfb(tmp_path):
    png = tmp_path / "headless.png"
    result = _view(["--no-model", "--screenshot", str(png)], _env_without_display())
    assert result.returncode == 0, result.stderr[-2000:]
    from skimage.io import imread

    pixels = imread(png)
    width, height = (int(v) for v in XVFB_SCREEN.split()[2].split("x")[:2])
    assert pixels.ndim == 3 and 200 < pixels.shape[0] <= height and 200 < pixels.shape[1] <= width
    assert pixels[..., :3].std() > 10  # the image layer was drawn, not a blank window


def test_view_screenshot_without_display_or_xvfb_run_is_one_line(tmp_path):
    empty_path = tmp_path / "bin"
    empty_path.mkdir()  # no xvfb-run on PATH
    result = _view(["--no-model", "--screenshot", str(tmp_path / "x.png")], _env_without_display(PATH=str(empty_path)),
                   timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "xvfb-run" in lines[0] and "DISPLAY" in lines[0], result.stderr
    assert not (tmp_path / "x.png").exists()


def test_view_without_display_and_without_screenshot_is_one_line():
    result = _view(["--no-model"], _env_without_display(), timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no display" in lines[0] and "--screenshot" in lines[0], result.stderr
