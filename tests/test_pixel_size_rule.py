"""The one pixel-size rule (core.io.resolve_pixel_size) and its use by the CLI."""

import warnings

import numpy as np
import pytest

from napari_atombench.cli import main
from napari_atombench.core.io import resolve_pixel_size, write_positions


def test_first_known_source_wins_and_unknowns_are_skipped():
    assert resolve_pixel_size() == (None, "")
    assert resolve_pixel_size(("user", None), ("image", 0.0), ("labels", float("nan"))) == (None, "")
    assert resolve_pixel_size(("user", None), ("image", 0.2), ("labels", 0.2)) == (0.2, "image")
    assert resolve_pixel_size(("user", 0.1), ("image", 0.1)) == (0.1, "user")


def test_disagreeing_sources_are_reported_not_ignored():
    with pytest.warns(UserWarning, match=r"user says 0.1 Å/px but labels.csv says 0.2 Å/px; using user's"):
        assert resolve_pixel_size(("user", 0.1), ("labels.csv", 0.2)) == (0.1, "user")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # within 1 %: the same calibration, written with fewer digits
        assert resolve_pixel_size(("image", 0.19605), ("labels", 0.196)) == (0.19605, "image")


def test_score_cli_uses_the_rule_and_warns_in_one_line(tmp_path, capsys):
    truth = np.array([[10.0, 10.0], [10.0, 30.0], [30.0, 10.0]])
    write_positions(tmp_path / "truth.csv", truth, pixel_size_A=0.2)
    write_positions(tmp_path / "pred.csv", truth + [0.0, 1.0], pixel_size_A=0.25)
    assert main(["score", str(tmp_path / "pred.csv"), str(tmp_path / "truth.csv"), "--json"]) == 0
    out, err = capsys.readouterr()
    assert '"rmse_A": 0.2' in out  # 1 px at the labels' 0.2 Å/px, the labels outrank the predictions
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("atombench score: warning: pixel size: ")
