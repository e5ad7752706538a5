"""Folder datasets, the wei_atom.h5 reader (on files built here) and the case table."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from napari_atombench.core.dataset import (
    DATA_DIR_ENV,
    WEI_ATOM_DOI,
    Case,
    describe_h5,
    fetch_wei_atom,
    load_case,
    open_dataset,
    read_folder_dataset,
    read_wei_atom,
    write_folder_dataset,
)
from napari_atombench.core.simulate import SRTIO3_100, WS2_MONOLAYER, simulate_crystal


def _sim_cases():
    cases = []
    for name, crystal, counts in (("sto", SRTIO3_100, 100.0), ("ws2", WS2_MONOLAYER, 300.0)):
        sim = simulate_crystal(crystal, shape=(64, 80), peak_counts=counts, seed=3)
        cases.append(Case(case=name, pixel_size_A=sim.pixel_size_A, kind="simulated", material=crystal.name,
                          extra={"dose_e_per_A2": counts}, image=sim.image, truth_rc=sim.positions_rc))
    return cases


def test_folder_dataset_round_trip(tmp_path):
    cases = _sim_cases()
    dataset = write_folder_dataset(tmp_path / "set", cases)
    assert [c.case for c in dataset] == ["sto", "ws2"]
    again = read_folder_dataset(tmp_path / "set")
    for original, case in zip(cases, again):
        data = load_case(case)
        np.testing.assert_array_equal(data.image, original.image)
        np.testing.assert_allclose(data.truth_rc, original.truth_rc, atol=1e-5)
        assert case.pixel_size_A == pytest.approx(original.pixel_size_A)
        assert case.material == original.material and case.kind == "simulated"
        assert case.extra["dose_e_per_A2"] == original.extra["dose_e_per_A2"]
    table = again.table()
    assert list(table["case"]) == ["sto", "ws2"]
    assert again.filter(material="ws2").table()["case"].tolist() == ["ws2"]
    assert len(again.filter(kind="experimental")) == 0
    with pytest.raises(KeyError, match="nope"):
        again.filter(cases=["nope"])


def test_folder_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no cases.csv"):
        read_folder_dataset(tmp_path)
    (tmp_path / "cases.csv").write_text("case,image\na,a.npy\n")
    with pytest.raises(ValueError, match="labels, pixel_size_A"):
        read_folder_dataset(tmp_path)
    (tmp_path / "cases.csv").write_text("case,image,labels,pixel_size_A\na,a.npy,a.csv,0.1\n")
    with pytest.raises(FileNotFoundError, match="a.npy"):
        read_folder_dataset(tmp_path)
    (tmp_path / "cases.csv").write_text("case,image,labels,pixel_size_A\na,a.npy,a.csv,-1\n")
    with pytest.raises(ValueError, match="positive"):
        read_folder_dataset(tmp_path)


def test_experimental_folder_tolerates_extra_columns(experimental_dir):
    dataset = open_dataset(experimental_dir)
    assert len(dataset) >= 5
    case = dataset["batio3_100"]
    assert case.pixel_size_A == pytest.approx(0.35592)
    assert "n_columns" in case.extra  # extra column kept, not required
    data = load_case(case)
    assert data.image.ndim == 2 and len(data.truth_rc) == int(case.extra["n_columns"])


def _build_wei(path, *, layout="groups", metadata="columns", drop=None, bad_coords=False):
    sims = [simulate_crystal(c, shape=(48, 48), peak_counts=p, seed=i)
            for i, (c, p) in enumerate(((SRTIO3_100, 50.0), (WS2_MONOLAYER, 80.0), (SRTIO3_100, 120.0)))]
    materials = [b"SrTiO3 [100]", b"WS2", b"Pt nanoparticle"]
    types = [b"simulated", b"experimental", b"experimental"]
    with h5py.File(path, "w") as f:
        if layout == "groups":
            imgs, coords, raw = f.create_group("imgs"), f.create_group("coords"), f.create_group("raw")
            for i, s in enumerate(sims):
                imgs[str(i)] = s.image
                raw[str(i)] = s.clean
                xy = s.positions_rc[:, ::-1]
                coords[str(i)] = xy[:, :1] if (bad_coords and i == 1) else xy
        else:
            f["imgs"] = np.stack([s.image for s in sims])
            f["raw"] = np.stack([s.clean for s in sims])
            ds = f.create_dataset("coords", (len(sims),), dtype=h5py.vlen_dtype(np.dtype("float64")))
            for i, s in enumerate(sims):
                ds[i] = s.positions_rc[:, ::-1].ravel()
        if metadata == "columns":
            meta = f.create_group("metadata")
            meta["pixelsize_pm"] = np.array([15.0, 15.0, 20.0])
            meta["dose_e_per_A2"] = np.array([1e4, 2e4, np.nan])
            meta["Material_orientation"] = np.array(materials)
            meta["Type"] = np.array(types)
        elif metadata == "attrs":  # one entry per image, names as attributes (with "/" in them)
            meta = f.create_group("metadata")
            for i, (m, t) in enumerate(zip(materials, types)):
                entry = meta.create_dataset(str(i), data=0)
                entry.attrs.update({"pixelsize_pm": 15.0, "dose_e-/Å²": 1e3 * (i + 1), "Material_orientation": m,
                                    "Type": t, "contrast": 0.5})
        elif metadata == "compound":
            table = np.array([(15.0, m, t) for m, t in zip(materials, types)],
                             dtype=[("pixelsize_pm", "f8"), ("Material_orientation", "S32"), ("Type", "S16")])
            f["metadata"] = table
        if drop:
            del f[drop]
    return sims


def test_wei_reader_group_layout(tmp_path):
    path = tmp_path / "wei_atom.h5"
    sims = _build_wei(path)
    listing = describe_h5(path)
    assert "/imgs: group of 3" in listing and "/metadata" in listing
    dataset = read_wei_atom(path)
    assert [c.case for c in dataset] == ["wei_000", "wei_001", "wei_002"]
    assert [c.kind for c in dataset] == ["simulated", "experimental", "generality"]
    assert dataset.cases[2].pixel_size_A == pytest.approx(0.20)  # 20 pm
    assert dataset.cases[0].extra["dose_e_per_A2"] == pytest.approx(1e4)
    data = load_case(dataset.cases[1])
    np.testing.assert_allclose(data.truth_rc, sims[1].positions_rc)  # x, y in the file -> row, col
    np.testing.assert_allclose(data.raw, sims[1].clean)
    assert len(dataset.filter(kind="generality")) == 1
    assert open_dataset(path).cases[0].h5_key == "0"


def test_wei_reader_stacked_layout(tmp_path):
    path = tmp_path / "w.h5"
    sims = _build_wei(path, layout="stack")
    dataset = read_wei_atom(path)
    assert len(dataset) == 3
    data = load_case(dataset.cases[2])
    np.testing.assert_array_equal(data.image, sims[2].image)
    np.testing.assert_allclose(data.truth_rc, sims[2].positions_rc)


def test_wei_reader_attribute_metadata(tmp_path):
    path = tmp_path / "w.h5"
    _build_wei(path, metadata="attrs")
    dataset = read_wei_atom(path)
    assert [c.extra["dose_e_per_A2"] for c in dataset] == [1e3, 2e3, 3e3]
    assert [c.kind for c in dataset] == ["simulated", "experimental", "generality"]


def test_wei_reader_compound_metadata(tmp_path):
    path = tmp_path / "w.h5"
    _build_wei(path, metadata="compound")
    dataset = read_wei_atom(path)
    assert [c.material for c in dataset] == ["SrTiO3 [100]", "WS2", "Pt nanoparticle"]
    assert all(c.pixel_size_A == pytest.approx(0.15) for c in dataset)


def test_wei_reader_missing_group_says_what_it_found(tmp_path):
    path = tmp_path / "w.h5"
    _build_wei(path, drop="coords")
    with pytest.raises(ValueError, match=r"no /coords group(.|\n)*/imgs: group of 3"):
        read_wei_atom(path)
    path2 = tmp_path / "nometa.h5"
    _build_wei(path2, metadata=None)
    with pytest.raises(ValueError, match=r"no metadata found(.|\n)*/imgs: group of 3"):
        read_wei_atom(path2)  # never a silent metadata-free read
    assert read_wei_atom(path2, allow_missing_metadata=True).cases[0].pixel_size_A is None


def test_wei_reader_wrong_coords_shape(tmp_path):
    path = tmp_path / "w.h5"
    _build_wei(path, bad_coords=True)
    with pytest.raises(ValueError, match=r"coords/1 have shape \(\d+, 1\); expected N×2"):
        read_wei_atom(path)


def test_wei_reader_unsupported_stack_layout_is_named(tmp_path):
    path = tmp_path / "w.h5"
    with h5py.File(path, "w") as f:
        f["imgs"] = np.zeros((4, 4))
        f.create_group("coords")
    with pytest.raises(ValueError, match=r"/imgs is a dataset of shape \(4, 4\)"):
        read_wei_atom(path)


def test_fetch_wei_atom_offline(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setattr("pooch.os_cache", lambda name: tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match=WEI_ATOM_DOI):
        fetch_wei_atom(download=False)
    local = tmp_path / "data"
    local.mkdir()
    (local / "wei_atom.h5").write_bytes(b"")
    monkeypatch.setenv(DATA_DIR_ENV, str(local))
    assert fetch_wei_atom(download=False) == local / "wei_atom.h5"
    assert fetch_wei_atom(tmp_path / "data", download=False) == local / "wei_atom.h5"


def test_benchmark_runs_on_a_built_wei_file(tmp_path):
    from benchmark_doubles import OracleLocator
    from napari_atombench.core.benchmark import run_benchmark

    path = tmp_path / "wei_atom.h5"
    _build_wei(path, metadata="attrs")
    dataset = read_wei_atom(path)
    oracle = OracleLocator("oracle", jitter_px=0.5)
    for case in dataset:
        data = load_case(case)
        oracle.register(data.image, data.truth_rc)
    table = run_benchmark(dataset.filter(kind=["experimental", "generality"]), [oracle], scheduler="sync").table
    assert table["case"].tolist() == ["wei_001", "wei_002"]
    assert (table["recall"] == 1.0).all() and (table["passes"] == True).all()  # noqa: E712
    assert table["dose_e_per_A2"].tolist() == [2e3, 3e3]  # quality column from the metadata
    assert (table["meta_contrast"] == 0.5).all()  # the file's own value kept beside ours
    assert (table["contrast"] < 1.0).all()  # ours, from the raw (clean) image with its background


def _folder_with_table(tmp_path, table: str):
    np.save(tmp_path / "a.npy", np.ones((8, 8), np.float32))
    (tmp_path / "a.csv").write_text("x_px,y_px\n1,2\n")
    (tmp_path / "cases.csv").write_text(table)
    return tmp_path


@pytest.mark.parametrize(
    "row, message",
    [
        ("a,a.npy,a.csv,0.1,SrTiO3,extra", r"cases.csv, line 3: 6 field\(s\) where the header has 5"),
        ("a,a.npy,a.csv", r"cases.csv, line 3: 3 field\(s\) where the header has 5"),
        ("a,a.npy,a.csv,0,x", r"cases.csv, line 3: pixel size 0.0 Å is not plausible"),
        ("a,a.npy,a.csv,nan,x", r"cases.csv, line 3: pixel size nan Å is not plausible"),
        ("a,a.npy,a.csv,inf,x", r"cases.csv, line 3: pixel size inf Å is not plausible"),
        ("a,a.npy,a.csv,1e9,x", r"cases.csv, line 3: pixel size 1000000000.0 Å is not plausible"),
        ("a,a.npy,a.csv,big,x", r"cases.csv, line 3: pixel_size_A 'big' is not a number"),
    ],
)
def test_case_table_rows_are_checked_and_named_by_line(tmp_path, row, message):
    from napari_atombench.core.io import FileFormatError

    folder = _folder_with_table(tmp_path, f"case,image,labels,pixel_size_A,material\nb,a.npy,a.csv,0.1,x\n{row}\n")
    with pytest.raises(FileFormatError, match=message):
        read_folder_dataset(folder)


def test_case_table_with_a_missing_pixel_size_still_reads(tmp_path):
    folder = _folder_with_table(tmp_path, "case,image,labels,pixel_size_A,material\na,a.npy,a.csv,,SrTiO3\n")
    (case,) = read_folder_dataset(folder)
    assert case.pixel_size_A is None and case.material == "SrTiO3"
    assert load_case(case).truth_rc.tolist() == [[2.0, 1.0]]


def test_benchmark_file_errors_name_the_file(tmp_path):
    from napari_atombench.core.io import FileFormatError

    path = tmp_path / "bench.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("imgs/0", data=np.ones((8, 8), np.float32))
        handle.create_dataset("coords/0", data=np.array([[1.0, np.nan], [2.0, 3.0]]))
        handle["imgs/0"].attrs["pixelsize_pm"] = 20.0  # metadata as image attributes
    (case,) = open_dataset(path)
    with pytest.raises(FileFormatError, match=r"bench.h5: coordinates of image 0 row 0 is not finite"):
        load_case(case)
    path.write_bytes(path.read_bytes()[:600])  # truncated: h5py's OSError
    with pytest.raises(FileFormatError, match=r"^bench.h5: could not be read as benchmark HDF5.*OSError"):
        open_dataset(path)
