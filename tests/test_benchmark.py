"""Benchmark runs, cutoffs along degradation series, plots and the CLI (with test-double locators)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from benchmark_doubles import ORACLE, EmptyLocator, FailingLocator, OracleLocator
from napari_atombench.cli import main
from napari_atombench.core.benchmark import (
    RESULT_COLUMNS,
    Cutoff,
    DegradationSeries,
    find_cutoff,
    resolve_locator,
    run_benchmark,
    run_robustness,
    simulated_series,
)
from napari_atombench.core.dataset import Case, load_case, write_folder_dataset
from napari_atombench.core.plots import radar_figure, save_figure, score_vs_knob_figure
from napari_atombench.core.simulate import SRTIO3_100, WS2_MONOLAYER, simulate_crystal
from napari_atombench.models.base import Cancelled


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    cases = []
    for name, crystal in (("sto", SRTIO3_100), ("ws2", WS2_MONOLAYER)):
        sim = simulate_crystal(crystal, shape=(64, 64), peak_counts=200, seed=5)
        cases.append(Case(case=name, pixel_size_A=0.15, kind="simulated", material=crystal.name,
                          image=sim.image, truth_rc=sim.positions_rc))
    return write_folder_dataset(folder, cases)


def _oracle_for(dataset, jitter_px=0.5, name="oracle"):
    oracle = OracleLocator(name, jitter_px=jitter_px)
    for case in dataset:
        data = load_case(case)
        oracle.register(data.image, data.truth_rc)
    return oracle


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_run_records_scores_quality_and_failures(tiny_dataset, scheduler):
    oracle = _oracle_for(tiny_dataset, jitter_px=0.5)
    progress = []
    result = run_benchmark(tiny_dataset, [oracle, FailingLocator(), EmptyLocator()], scheduler=scheduler,
                           progress=lambda done, total: progress.append((done, total)))
    table = result.table
    assert list(table.columns[: len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS)
    assert len(table) == 6 and set(table["model"]) == {"oracle", "failing", "empty"}
    good = table[table["model"] == "oracle"]
    assert (good["recall"] == 1.0).all() and (good["precision"] == 1.0).all()
    np.testing.assert_allclose(good["rmse_px"].astype(float), 0.5, rtol=1e-9)  # every offset is 0.5 px
    np.testing.assert_allclose(good["rmse_A"].astype(float), 0.075, rtol=1e-9)
    assert good["passes"].tolist() == [True, True] and (good["error"] == "").all()
    failing = table[table["model"] == "failing"]
    assert failing["error"].str.contains("RuntimeError: this locator always fails").all()
    assert failing["recall"].isna().all()
    empty = table[table["model"] == "empty"]
    assert (empty["recall"] == 0.0).all() and (empty["passes"] == False).all()  # noqa: E712
    assert (table["resolution_method"] == "fwhm").all() and table["psnr_db"].notna().all()
    assert progress[-1] == (8, 8) and [d for d, _ in progress] == sorted(d for d, _ in progress)
    assert result.predictions[("sto", "oracle")].shape[1] == 2 and result.predictions[("sto", "failing")] is None
    summary = result.aggregate().set_index("model")
    assert summary.loc["oracle", "n_passed"] == 2 and summary.loc["failing", "n_errors"] == 2
    assert summary.loc["empty", "n_passed"] == 0


def test_border_margin_leaves_cut_columns_out_of_the_score(tiny_dataset):
    from napari_atombench.core.metrics import filter_border

    interior_only = OracleLocator("interior")  # reports no column within 11 px of the border
    for case in tiny_dataset:
        data = load_case(case)
        interior_only.register(data.image, data.truth_rc[filter_border(data.truth_rc, data.image.shape, 11)])
    plain = run_benchmark(tiny_dataset, [interior_only], scheduler="sync", quality=False).table
    margin = run_benchmark(tiny_dataset, [interior_only], scheduler="sync", quality=False, border_margin_px=11).table
    assert (plain["recall"] < 0.9).all() and (plain["precision"] == 1.0).all()
    assert (margin["recall"] == 1.0).all() and (margin["precision"] == 1.0).all()
    assert (margin["n_truth"] < plain["n_truth"]).all()


def test_cancel_stops_the_run(tiny_dataset):
    oracle = _oracle_for(tiny_dataset)
    with pytest.raises(Cancelled):
        run_benchmark(tiny_dataset, [oracle], scheduler="sync", cancelled=lambda: True)
    assert oracle.calls == 0


def test_cluster_address_without_distributed_is_explained(tiny_dataset):
    pytest.importorskip("dask")
    try:
        import distributed  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="needs the 'distributed' package"):
            run_benchmark(tiny_dataset, [EmptyLocator()], scheduler="tcp://127.0.0.1:1")
    else:  # pragma: no cover - only where distributed is installed
        pytest.skip("distributed is installed here; the message path is not reachable")


def test_resolve_locator_forms():
    assert resolve_locator("benchmark_doubles:ORACLE") is ORACLE
    assert resolve_locator("benchmark_doubles:EmptyLocator").name == "empty"
    with pytest.raises(ValueError, match="cannot import"):
        resolve_locator("benchmark_doubles:Nope")
    with pytest.raises(TypeError):
        resolve_locator(object())
    with pytest.raises((ValueError, KeyError)):
        resolve_locator("no-such-model-anywhere")


def test_no_models_or_no_cases_is_an_error(tiny_dataset):
    with pytest.raises(ValueError, match="no models"):
        run_benchmark(tiny_dataset, [])
    with pytest.raises(ValueError, match="no cases"):
        run_benchmark(tiny_dataset.filter(kind="experimental"), [EmptyLocator()])


# ----------------------------------------------------------------------------- cutoffs on hand-made curves


def test_linear_cutoff_on_recall_curve():
    values = [0, 1, 2, 3]
    scores = {"recall": [1.0, 0.95, 0.85, 0.5], "precision": [1.0] * 4, "rmse_A": [0.1] * 4}
    cutoff = find_cutoff(values, scores)
    assert cutoff.status == "crossed" and cutoff.criterion == "recall"
    assert cutoff.value == pytest.approx(1.5)  # 0.95 -> 0.85 crosses 0.90 half way


def test_earliest_criterion_wins_and_direction_does_not_matter():
    values = [30.0, 20.0, 10.0, 0.0]  # PSNR, decreasing = worse
    scores = {"recall": [1.0, 1.0, 0.95, 0.5], "precision": [1.0, 1.0, 1.0, 1.0], "rmse_A": [0.1, 0.2, 0.4, 0.5]}
    cutoff = find_cutoff(values, scores)
    assert cutoff.criterion == "rmse_A"
    assert cutoff.value == pytest.approx(15.0)  # 0.2 -> 0.4 crosses 0.3 half way from 20 to 10
    recall_only = find_cutoff(values, {**scores, "rmse_A": [0.1] * 4})
    assert recall_only.criterion == "recall" and recall_only.value == pytest.approx(10 - 10 * 0.05 / 0.45)


def test_none_in_range_and_fails_at_start():
    values = [1, 2, 3]
    good = {"recall": [1, 1, 0.95], "precision": [1, 1, 1], "rmse_A": [0.1, 0.2, 0.29]}
    cutoff = find_cutoff(values, good)
    assert cutoff == Cutoff(None, "none in range") and cutoff.label == "none in range"
    bad = {"recall": [0.5, 0.4, 0.3], "precision": [1, 1, 1], "rmse_A": [0.1, 0.1, 0.1]}
    start = find_cutoff(values, bad)
    assert start.value == 1 and start.status == "fails at start" and "fails at start" in start.label


def test_pchip_cutoff_differs_from_linear_on_a_curve():
    values = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    recall = 1.0 - 0.02 * values**2  # crosses 0.9 at sqrt(5) = 2.236
    scores = {"recall": recall, "precision": np.ones(5), "rmse_A": np.full(5, 0.1)}
    linear = find_cutoff(values, scores, "linear").value
    pchip = find_cutoff(values, scores, "pchip").value
    assert 2.0 < linear < 3.0 and 2.0 < pchip < 3.0
    assert abs(pchip - math.sqrt(5)) < abs(linear - math.sqrt(5))
    with pytest.raises(ValueError, match="unknown cutoff method"):
        find_cutoff(values, scores, "spline")


def test_errors_count_as_failures_and_missing_rmse_is_skipped():
    values = [1, 2, 3]
    scores = {"recall": [1.0, 1.0, None], "precision": [1.0, 1.0, None], "rmse_A": [0.1, None, None],
              "error": ["", "", "RuntimeError: boom"]}
    cutoff = find_cutoff(values, scores)
    assert cutoff.status == "crossed" and 2 < cutoff.value < 3
    with pytest.raises(ValueError, match="monotonic"):
        find_cutoff([1, 3, 2], {"recall": [1, 1, 1], "precision": [1, 1, 1], "rmse_A": [0.1] * 3})


# ----------------------------------------------------------------------------- robustness end to end


def _jitter_series(oracle, jitters, name="sto_jitter"):
    images = []
    for i, jitter in enumerate(jitters):
        sim = simulate_crystal(SRTIO3_100, shape=(64, 64), peak_counts=100 + i, seed=i)
        oracle.register(sim.image, sim.positions_rc, jitter_px=jitter)
        images.append((sim.image, sim.positions_rc, 0.15))
    return DegradationSeries(name, "resolution_pm", [80.0, 120.0, 160.0, 200.0], images, "srtio3")


def test_robustness_cutoff_from_real_scoring_and_plots(tmp_path):
    oracle = OracleLocator("oracle")
    steady = OracleLocator("steady")
    # RMSE in Å = jitter_px * 0.15: 0.15, 0.25, 0.35, 0.45 -> crosses 0.3 Å half way from 120 to 160
    series = _jitter_series(oracle, [1.0, 5 / 3, 7 / 3, 3.0])
    for image, truth, _ in series.images:
        steady.register(image, truth, jitter_px=0.2)
    result, cutoffs = run_robustness([series], [oracle, steady], scheduler="sync", quality=False)
    table = result.table
    assert result.predictions[("sto_jitter_00", "oracle")].shape == series.images[0][1].shape
    assert len(table) == 8 and set(table["value"]) == {80.0, 120.0, 160.0, 200.0}
    row = cutoffs.set_index("model").loc["oracle"]
    assert row["criterion"] == "rmse_A" and row["cutoff"] == pytest.approx(140.0, rel=1e-6)
    assert cutoffs.set_index("model").loc["steady", "label"] == "none in range"
    radar = save_figure(radar_figure(cutoffs), tmp_path / "radar.png")
    curves = save_figure(score_vs_knob_figure(table, cutoffs), tmp_path / "curves.svg")
    assert radar.stat().st_size > 5000 and curves.read_text().startswith("<?xml")


def test_pixel_size_cutoff_also_in_atoms_per_100px():
    from napari_atombench.core.benchmark import cutoffs_table

    table = pd.DataFrame({"series": "s", "material": "srtio3", "knob": "pixel_size_pm", "model": "m",
                          "order": [0, 1], "value": [10.0, 30.0], "recall": [1.0, 0.5], "precision": [1.0, 1.0],
                          "rmse_A": [0.1, 0.1], "error": ["", ""]})
    row = cutoffs_table(table).iloc[0]
    assert row["cutoff"] == pytest.approx(10 + 20 * 0.1 / 0.5)
    assert row["atoms_per_100px"] == pytest.approx(100 * row["cutoff"] / 195.25)


def test_simulated_series_uses_the_simulator():
    series = simulated_series("ws2", "resolution_pm", [80, 160], base={"shape": (48, 48)})
    assert series.knob == "resolution_pm" and len(series.images) == 2
    image0, truth0, pixel_size_A = series.images[0]
    assert image0.shape == (48, 48) and truth0.shape[1] == 2 and pixel_size_A > 0
    with pytest.raises(ValueError, match="unknown material"):
        simulated_series("gold", "resolution_pm", [80, 160])


# ----------------------------------------------------------------------------- CLI


def test_cli_benchmark_writes_one_row_per_case_and_model(tiny_dataset, tmp_path, capsys):
    for case in tiny_dataset:
        data = load_case(case)
        ORACLE.register(data.image, data.truth_rc)
    out = tmp_path / "results.csv"
    code = main(["benchmark", tiny_dataset.root, "--model", "benchmark_doubles:ORACLE",
                 "--model", "benchmark_doubles:FailingLocator", "--out", str(out), "--no-progress",
                 "--scheduler", "sync", "--summary", str(tmp_path / "summary.csv")])
    assert code == 0
    table = pd.read_csv(out, keep_default_na=False)
    for column in ("case", "model", "n_tp", "n_fp", "n_fn", "recall", "precision", "f1", "rmse_px", "rmse_A",
                   "passes", "pixel_size_pm", "atoms_per_100px", "contrast", "resolution_pm", "psnr_db", "seconds",
                   "error"):
        assert column in table.columns
    assert len(table) == 4
    assert float(table.set_index(["case", "model"]).loc[("sto", "ORACLE"), "recall"]) == 1.0
    assert (table[table["model"] == "FailingLocator"]["error"] != "").all()
    printed = capsys.readouterr().out
    assert "ORACLE" in printed and "2 cases × 2 model(s)" in printed
    assert (tmp_path / "summary.csv").exists()
    # with an ignore band along the border fewer labels are scored
    banded = tmp_path / "banded.csv"
    assert main(["benchmark", tiny_dataset.root, "--model", "benchmark_doubles:ORACLE", "--out", str(banded),
                 "--no-progress", "--scheduler", "sync", "--border-margin-px", "11"]) == 0
    plain_n = table[table["model"] == "ORACLE"].set_index("case")["n_truth"].astype(float)
    banded_n = pd.read_csv(banded).set_index("case")["n_truth"]
    assert (banded_n < plain_n.loc[banded_n.index]).all()


def test_cli_benchmark_bad_dataset_is_a_clean_error(tmp_path, capsys):
    code = main(["benchmark", str(tmp_path / "nothing"), "--model", "x:y", "--out", str(tmp_path / "r.csv")])
    assert code == 2 and "no dataset at" in capsys.readouterr().err


def test_cli_robustness_writes_tables_and_plots(tmp_path, capsys):
    oracle = ORACLE
    # the CLI makes the same series from the same seed; register their labels with the double
    for value in np.linspace(80, 200, 3):
        sim = simulated_series("srtio3", "resolution_pm", [value])
        oracle.register(sim.images[0][0], sim.images[0][1])
    code = main(["robustness", "--model", "benchmark_doubles:ORACLE", "--material", "srtio3",
                 "--knob", "resolution_pm=80:200", "--points", "3", "--out", str(tmp_path), "--no-progress",
                 "--scheduler", "sync", "--format", "png", "--format", "svg"])
    assert code == 0
    cutoffs = pd.read_csv(tmp_path / "cutoffs.csv")
    assert cutoffs.loc[0, "status"] == "none in range"  # 0.5 px jitter = 0.075 Å everywhere
    for name in ("radar.png", "radar.svg", "score_vs_knob.png", "robustness_scores.csv"):
        assert (tmp_path / name).stat().st_size > 0
    assert main(["robustness", "--model", "x:y", "--knob", "bogus", "--out", str(tmp_path)]) == 2
