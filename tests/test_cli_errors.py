"""Every ``atombench`` subcommand meets bad input with one line and exit 2, never a traceback.

The cases (hostile files, out-of-range numbers, folders where files belong,
weights files that are not checkpoints, one whose pickle would run code) are
in :mod:`cli_bad_inputs`; they run in-process through ``main`` (fast), a
couple also as real processes.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from cli_bad_inputs import BAD_CASES, expand, make_bad_files
from napari_atombench.cli import main


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    make_bad_files(folder)
    return folder


def _run(argv, capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case_id, argv", BAD_CASES, ids=[c for c, _ in BAD_CASES])
def test_bad_input_is_one_line_exit_2(case_id, argv, bad_dir, capsys):
    command = argv[0]
    code, err = _run(expand(argv, bad_dir), capsys)
    lines = err.strip().splitlines()
    assert code == 2, (case_id, err)
    assert len(lines) == 1, (case_id, err)
    assert lines[0].startswith(f"atombench {command}: error: ") or (
        command == "models" and lines[0].startswith("atombench: error: ")), lines[0]
    assert "Traceback" not in err
    # the error says what was wrong, not just the exception's name
    assert len(lines[0].split("error: ", 1)[1]) > 15, lines[0]
    assert not (bad_dir / "PWNED").exists(), "a weights file's pickle ran code"


def test_malicious_pickle_in_weights_is_not_executed(bad_dir, capsys):
    marker = bad_dir / "PWNED"
    for argv in (["locate", str(bad_dir / "img.tif"), "--device", "cpu", "--out", str(bad_dir / "o.csv"),
                  "--weights", str(bad_dir / "malicious.pt")],
                 ["train", "atombench_unet", "--quick", "--device", "cpu", "--out", str(bad_dir / "t.pt"),
                  "--resume", str(bad_dir / "malicious.pt")]):
        code, err = _run(argv, capsys)
        assert code == 2
        assert "malicious.pt" in err and "not a PyTorch weights file" in err
        assert not marker.exists()


def test_debug_shows_the_traceback(bad_dir, capsys):
    argv = ["score", str(bad_dir / "folder.csv"), str(bad_dir / "labels.csv")]
    assert _run(argv, capsys)[0] == 2
    with pytest.raises((IsADirectoryError, ValueError)):
        main(["--debug", *argv])
    with pytest.raises((IsADirectoryError, ValueError)):  # after the subcommand too
        main([*argv, "--debug"])


def test_subprocess_errors_are_one_line_and_debug_prints_traceback(bad_dir):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = [sys.executable, "-m", "napari_atombench.cli", "locate", str(bad_dir / "img.tif"), "--device", "cpu",
            "--out", str(bad_dir / "o.csv"), "--weights", str(bad_dir / "not_a_checkpoint.pt")]
    plain = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    assert plain.returncode == 2
    assert plain.stderr.strip().count("\n") == 0 and plain.stderr.startswith("atombench locate: error: ")
    assert "not_a_checkpoint.pt" in plain.stderr
    debug = subprocess.run(argv[:3] + ["--debug"] + argv[3:], capture_output=True, text=True, timeout=120, env=env)
    assert debug.returncode != 0 and "Traceback" in debug.stderr
    # a numeric option out of range never reaches the code
    out = subprocess.run(argv[:5] + ["--pixel-size-A", "0"], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0 and "--pixel-size-A" in out.stderr


@pytest.mark.parametrize("option, value", [("--pixel-size-A", "0"), ("--pixel-size-A", "1e-9"),
                                           ("--rescale", "0"), ("--threshold", "nan")])
def test_numeric_locate_options_are_validated(option, value, bad_dir, capsys):
    """These were ignored or accepted (exit 0) before: the option must be applied or rejected."""
    code, err = _run(["locate", str(bad_dir / "img.tif"), "--device", "cpu", "--out", str(bad_dir / "o.csv"),
                      option, value], capsys)
    assert code == 2 and f"argument {option}" in err and value in err


def _write_dataset(folder, image_bytes, labels_text, n_cases=3):
    folder.mkdir()
    (folder / "img.tif").write_bytes(image_bytes)
    (folder / "labels.csv").write_text(labels_text)
    (folder / "cases.csv").write_text("case,image,labels,pixel_size_A\n" + "".join(
        f"c{i},img.tif,labels.csv,0.15\n" for i in range(n_cases)))
    return folder


def test_benchmark_missing_download_is_reported_once_and_not_retried(tmp_path, bad_dir, capsys, monkeypatch):
    from napari_atombench.core import benchmark as core_benchmark
    from napari_atombench.models import registry

    dataset = _write_dataset(tmp_path / "ds", (bad_dir / "img.tif").read_bytes(),
                             (bad_dir / "labels.csv").read_text(), n_cases=4)
    monkeypatch.setattr(registry, "cache_dir", lambda: tmp_path / "empty_cache")
    monkeypatch.setenv(registry.WEIGHTS_DIR_ENV, str(tmp_path / "no_weights_here"))
    monkeypatch.setenv(registry.NO_DOWNLOAD_ENV, "1")
    monkeypatch.setattr(core_benchmark, "_LOCATOR_CACHE", {})
    calls = []
    resolve = registry.resolve_weights
    monkeypatch.setattr(registry, "resolve_weights", lambda *a, **k: calls.append(a) or resolve(*a, **k))
    url_models = [name for name, spec in registry.REGISTRY.items() if isinstance(spec.weights, registry.UrlWeights)]
    assert url_models
    code, err = _run(["benchmark", str(dataset), "--model", url_models[0], "--out", str(tmp_path / "b.csv"),
                      "--no-progress", "--scheduler", "sync"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("atombench benchmark: error: ") and "not found" in lines[0]
    assert len(calls) == 1  # tried once, not once per case


def test_benchmark_every_run_failed_exits_2_with_the_error_once(tmp_path, bad_dir, capsys):
    dataset = _write_dataset(tmp_path / "ds", b"II*\x00" + b"\x00" * 64, (bad_dir / "labels.csv").read_text(), 5)
    out = tmp_path / "b.csv"
    code, err = _run(["benchmark", str(dataset), "--model", "benchmark_doubles:EmptyLocator", "--out", str(out),
                      "--no-progress", "--scheduler", "sync"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "every one of the 5 run(s) failed" in lines[0] and "img.tif" in lines[0]
    assert out.exists()  # the per-run errors are still written


def test_benchmark_with_some_runs_failing_exits_0_and_prints_each_distinct_error_once(tmp_path, bad_dir, capsys):
    dataset = _write_dataset(tmp_path / "ds", (bad_dir / "img.tif").read_bytes(), (bad_dir / "labels.csv").read_text())
    (dataset / "bad.tif").write_bytes(b"II*\x00" + b"\x00" * 64)
    with open(dataset / "cases.csv", "a") as handle:
        handle.write("".join(f"b{i},bad.tif,labels.csv,0.15\n" for i in range(4)))
    code, err = _run(["benchmark", str(dataset), "--model", "benchmark_doubles:EmptyLocator", "--out",
                      str(tmp_path / "b.csv"), "--no-progress", "--scheduler", "sync"], capsys)
    assert code == 0
    errors = [line for line in err.splitlines() if "bad.tif" in line]
    assert len(errors) == 1 and "3 more run(s) with the same error" in errors[0]


def test_score_with_huge_radius_and_many_points_finishes(bad_dir, capsys):
    """20k points, 10^5 px radius: a MemoryError before (all 4·10^8 pairs were candidates)."""
    code, err = _run(["score", str(bad_dir / "many.csv"), str(bad_dir / "many.csv"), "--max-distance-px", "100000",
                      "--json"], capsys)
    assert code == 0, err


def test_refine_through_a_folder_output_is_rejected_before_work(bad_dir, capsys):
    before = sorted(p.name for p in (bad_dir / "out_dir").iterdir())
    code, _ = _run(["refine", str(bad_dir / "img.tif"), str(bad_dir / "labels.csv"), "--out",
                    str(bad_dir / "out_dir")], capsys)
    assert code == 2 and sorted(p.name for p in (bad_dir / "out_dir").iterdir()) == before
