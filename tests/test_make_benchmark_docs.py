"""scripts/make_benchmark_docs.py runs the CLI and rewrites only the generated section."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pandas as pd
import pytest

from napari_atombench.core.dataset import Case, write_folder_dataset
from napari_atombench.core.simulate import SRTIO3_100, simulate_crystal

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_docs_script_regenerates_results_section(tmp_path, monkeypatch):
    sim = simulate_crystal(SRTIO3_100, shape=(48, 48), seed=0)
    dataset = write_folder_dataset(tmp_path / "data", [Case("one", 0.15, kind="experimental", material="SrTiO3",
                                                            image=sim.image, truth_rc=sim.positions_rc)])
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "benchmark.md").write_text("# Benchmark\n\nkept text\n\n<!-- results:start -->\nold\n<!-- results:end -->\ntail\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    spec = importlib.util.spec_from_file_location("make_benchmark_docs", ROOT / "scripts" / "make_benchmark_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main(["--model", "benchmark_doubles:EmptyLocator", "--dataset", dataset.root, "--docs", str(docs),
                        "--knob", "resolution_pm=80:160", "--material", "srtio3", "--points", "2",
                        "--scheduler", "sync"])
    assert code == 0
    page = (docs / "benchmark.md").read_text()
    assert page.startswith("# Benchmark\n\nkept text") and page.rstrip().endswith("tail")
    assert "old" not in page and "| one | SrTiO3 |" in page
    assert "0.00 / 1.00 / – fail" in page  # the empty locator finds nothing
    assert "| srtio3_resolution_pm | 80 (fails at start) |" in page
    assert (docs / "images" / "benchmark_radar.png").stat().st_size > 0
    results = pd.read_csv(docs / "benchmark" / "experimental_results.csv")
    assert results["model"].tolist() == ["EmptyLocator"]
