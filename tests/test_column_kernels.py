"""Column-kernel image formation (core.column_kernels) and its simulator hook, on a tiny analytic library.

The fixture writes a library whose kernels are analytic functions (Gaussians
whose width grows with depth, iDPC/DPC a Gaussian and its radial derivative),
so every rendered value can be checked against a closed form; abTEM never runs.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from napari_atombench.core.column_kernels import (
    ACCEPT_R2,
    PACKAGED_LIBRARY,
    ColumnKernelLibrary,
    KernelOptions,
    packaged_library,
    render_kernel_image,
    stack_for_species,
)
from napari_atombench.core.file_checks import FileFormatError
from napari_atombench.core.match import match_positions
from napari_atombench.core.simulate import get_crystal, lattice_positions, simulate

PERIOD_A = 3.905
STACK_Z = {"Sr": 38, "O": 8, "TiO": 30, "Pt": 78}
DETECTORS = ("haadf", "bf", "abf", "dpc", "idpc")
RADIUS_A = np.round(np.arange(0.0, 4.0001, 0.05), 6)
DEPTHS_A = (0.0, 50.0)
THICKNESS_A = (PERIOD_A, 2 * PERIOD_A)
VACUUM = {"haadf": 0.0, "bf": 0.25, "abf": 0.73, "dpc": 0.0, "idpc": 0.0}
# the anchors the fixture claims: HAADF, BF and ABF pass, DPC and iDPC fail
ANCHOR_R2 = {"haadf": 0.99, "bf": 0.95, "abf": 0.93, "dpc": 0.4, "idpc": 0.55}


def width_A(depth_A):
    return 0.4 + depth_A / 100.0


def amplitude(stack, detector, repeats):
    z = STACK_Z[stack]
    return repeats * {"haadf": 1e-4 * z**1.7, "bf": 2e-3 * z**0.7, "abf": -1e-2 * z**0.7, "idpc": 0.1 * z**0.5}[detector]


def analytic(stack, detector, repeats, depth_A, r_A):
    """The fixture's kernel in closed form (dpc = d idpc / dr, so that idpc = -∫_r dpc)."""
    s = width_A(depth_A)
    gauss = np.exp(-0.5 * (np.asarray(r_A) / s) ** 2) / (s / 0.4) ** 2
    if detector == "dpc":
        return -np.asarray(r_A) / s**2 * amplitude(stack, "idpc", repeats) * gauss
    return amplitude(stack, detector, repeats) * gauss


def write_library(path, **overrides):
    profiles = np.full((len(STACK_Z), 1, 1, len(DEPTHS_A), len(THICKNESS_A), len(DETECTORS), len(RADIUS_A)), np.nan)
    for a, stack in enumerate(STACK_Z):
        for d, depth in enumerate(DEPTHS_A):
            for t in range(len(THICKNESS_A)):
                if depth > 0 and t > 0:  # like the real library: deep columns only one repeat thick
                    continue
                for e, det in enumerate(DETECTORS):
                    profiles[a, 0, 0, d, t, e] = analytic(stack, det, t + 1, depth, RADIUS_A)
    anchors = [{"detector": det, "kv": 300.0, "convergence_mrad": 20.0, "thickness_A": 7.81, "r2": r2}
               for det, r2 in ANCHOR_R2.items()]
    arrays = dict(
        profiles=profiles.astype(np.float32), radius_A=RADIUS_A, stacks=np.array(list(STACK_Z)),
        kv=np.array([300.0]), convergence_mrad=np.array([20.0]), depth_A=np.array(DEPTHS_A),
        thickness_A=np.array(THICKNESS_A), detectors=np.array(DETECTORS),
        vacuum=np.array([[[VACUUM[d] for d in DETECTORS]]]),
        metadata=np.array(json.dumps({"period_A": PERIOD_A, "max_repeats_deep": 1, "anchors": anchors})),
    )
    arrays.update(overrides)
    np.savez_compressed(path, **arrays)
    return path


@pytest.fixture
def library_path(tmp_path):
    return write_library(tmp_path / "tiny_kernels.npz")


@pytest.fixture
def library(library_path):
    return ColumnKernelLibrary.load(library_path)


EPS32 = float(np.finfo(np.float32).eps)


def interpolation_bound(stack, detector, repeats, depth_A, pixel_size_A):
    """Linear interpolation on the radius grid (h) errs by at most max|f''| h²/8, plus float32 storage.

    For f = A exp(-r²/2s²) (a Gaussian), |f''| ≤ |A|/s²; the rendered sample is also
    evaluated at a pixel distance computed in float64 (negligible); tails below 1e-4 of the
    peak are dropped.
    """
    s = width_A(depth_A)
    peak = abs(amplitude(stack, detector, repeats)) / (s / 0.4) ** 2
    h = float(np.diff(RADIUS_A).max())
    dropped_tail = 1e-4 * peak  # the renderer ends its window where every kernel is below 1e-4 of the largest
    return peak / s**2 * h**2 / 8 + 2 * EPS32 * peak + dropped_tail


# ----------------------------------------------------------------------------- loading


def test_loading_keeps_the_profiles_and_axes(library):
    assert library.stacks == tuple(STACK_Z) and library.detectors == DETECTORS
    for stack in STACK_Z:
        for det in DETECTORS:
            got = library.profile(stack, det, kv=300, convergence_mrad=20, thickness_A=2 * PERIOD_A)
            want = analytic(stack, det, 2, 0.0, RADIUS_A)
            np.testing.assert_allclose(got, want, rtol=2 * EPS32, atol=2 * EPS32 * np.abs(want).max())
    assert library.vacuum_level("abf", kv=300, convergence_mrad=20) == VACUUM["abf"]


def test_thickness_and_depth_are_interpolated_linearly(library):
    mid = library.profile("Sr", "haadf", kv=300, convergence_mrad=20, thickness_A=1.5 * PERIOD_A)
    ends = [library.profile("Sr", "haadf", kv=300, convergence_mrad=20, thickness_A=t) for t in THICKNESS_A]
    np.testing.assert_allclose(mid, 0.5 * (ends[0] + ends[1]), rtol=1e-12)
    quarter = library.profile("Pt", "idpc", kv=300, convergence_mrad=20, thickness_A=PERIOD_A, depth_A=12.5)
    top, deep = (library.profile("Pt", "idpc", kv=300, convergence_mrad=20, thickness_A=PERIOD_A, depth_A=d)
                 for d in DEPTHS_A)
    np.testing.assert_allclose(quarter, 0.75 * top + 0.25 * deep, rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(kv=200), "kv=200"),
        (dict(convergence_mrad=25), "convergence_mrad=25"),
        (dict(thickness_A=100.0), "outside"),
        (dict(depth_A=-5.0), "outside"),
        (dict(thickness_A=2 * PERIOD_A, depth_A=50.0), "deep"),
    ],
)
def test_profiles_outside_the_library_are_refused(library, kwargs, words):
    args = dict(kv=300, convergence_mrad=20, thickness_A=PERIOD_A, depth_A=0.0) | kwargs
    with pytest.raises(ValueError, match=words):
        library.profile("Sr", "haadf", **args)
    with pytest.raises(ValueError, match="Fe"):
        library.profile("Fe", "haadf", **(args | dict(kv=300, convergence_mrad=20, thickness_A=PERIOD_A, depth_A=0)))


def _one_line_naming(exc_info, name):
    message = str(exc_info.value)
    assert name in message and "\n" not in message, message


def test_garbage_truncated_and_oversized_files_are_refused_in_one_line(tmp_path, library_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\x00not a zip at all" * 100)
    with pytest.raises(FileFormatError) as info:
        ColumnKernelLibrary.load(garbage)
    _one_line_naming(info, "garbage.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(library_path.read_bytes()[: library_path.stat().st_size // 2])
    with pytest.raises(FileFormatError) as info:
        ColumnKernelLibrary.load(truncated)
    _one_line_naming(info, "truncated.npz")
    with pytest.raises(FileFormatError) as info:
        ColumnKernelLibrary.load(library_path, max_bytes=library_path.stat().st_size - 1)
    _one_line_naming(info, library_path.name)
    with pytest.raises(FileFormatError) as info:
        ColumnKernelLibrary.load(tmp_path)
    _one_line_naming(info, tmp_path.name)
    with pytest.raises(FileNotFoundError):
        ColumnKernelLibrary.load(tmp_path / "absent.npz")


def test_a_zip_bomb_is_refused_before_it_is_unpacked(tmp_path):
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("profiles.npy", b"\0" * (2 * 2**20))
    assert bomb.stat().st_size < 2**20
    with pytest.raises(FileFormatError, match="unpack") as info:
        ColumnKernelLibrary.load(bomb, max_bytes=2**20)
    _one_line_naming(info, "bomb.npz")


@pytest.mark.parametrize(
    "override, words",
    [
        (dict(metadata=np.array("{not json")), "metadata"),
        (dict(radius_A=RADIUS_A[::-1].copy()), "radius_A"),
        (dict(profiles=np.zeros((2, 2), np.float32)), "profiles"),
        (dict(stacks=np.array([1, 2, 3, 4])), "stacks"),
        (dict(vacuum=np.zeros((1, 1, 2))), "vacuum"),
        (dict(profiles=np.array([object()] * 3, dtype=object)), "tiny_bad"),
    ],
)
def test_malformed_libraries_are_refused_in_one_line(tmp_path, override, words):
    path = tmp_path / "tiny_bad.npz"
    if override.get("profiles") is not None and override["profiles"].dtype == object:
        np.savez(path, **override)  # a pickled array: never loaded
    else:
        write_library(path, **override)
    with pytest.raises(FileFormatError, match=words) as info:
        ColumnKernelLibrary.load(path)
    _one_line_naming(info, "tiny_bad.npz")


def test_a_library_without_an_array_names_it(tmp_path):
    path = tmp_path / "partial.npz"
    np.savez(path, radius_A=RADIUS_A)
    with pytest.raises(FileFormatError, match="profiles") as info:
        ColumnKernelLibrary.load(path)
    _one_line_naming(info, "partial.npz")


# ----------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("detector", ["haadf", "bf", "abf", "idpc"])
@pytest.mark.parametrize("depth_A", [0.0, 50.0])
def test_a_single_column_is_its_radial_profile_sampled_on_the_grid(library, detector, depth_A):
    pixel_size_A, centre = 0.11, np.array([21.3, 17.6])
    out = render_kernel_image((44, 40), centre[None], ["Pt"], library, detector=detector, pixel_size_A=pixel_size_A,
                              kv=300, convergence_mrad=20, thickness_A=PERIOD_A, depth_A=depth_A)
    rr, cc = np.mgrid[0:44, 0:40]
    r_A = np.hypot(rr - centre[0], cc - centre[1]) * pixel_size_A
    want = VACUUM[detector] + np.where(r_A <= RADIUS_A[-1], analytic("Pt", detector, 1, depth_A, r_A), 0.0)
    bound = interpolation_bound("Pt", detector, 1, depth_A, pixel_size_A)
    assert np.abs(out.image - want).max() <= bound
    assert np.abs(out.image - VACUUM[detector]).max() > 100 * bound  # the comparison is not vacuous


def test_dpc_components_point_at_the_column(library):
    centre = np.array([20.0, 20.0])
    kwargs = dict(pixel_size_A=0.1, kv=300, convergence_mrad=20, thickness_A=PERIOD_A)
    dpc_x = render_kernel_image((41, 41), centre[None], ["Sr"], library, detector="dpc_x", **kwargs).image
    dpc_y = render_kernel_image((41, 41), centre[None], ["Sr"], library, detector="dpc_y", **kwargs).image
    # right of the column the beam is deflected back to it (-x); below it (+row) towards -row
    assert dpc_x[20, 25] < 0 < dpc_x[20, 15] and dpc_y[25, 20] < 0 < dpc_y[15, 20]
    np.testing.assert_allclose(dpc_x, -dpc_x[:, ::-1], atol=1e-12)
    np.testing.assert_allclose(dpc_x, dpc_y.T, atol=1e-12)
    want = analytic("Sr", "dpc", 1, 0.0, 0.5)
    assert dpc_x[20, 25] == pytest.approx(want, rel=0.01)


def test_scan_offsets_move_the_sampling_points(library):
    # the beam at pixel (r, c) sits at (r + dy[r], c + dx[r, c]): a constant offset shifts the image back
    kwargs = dict(detector="abf", pixel_size_A=0.1, kv=300, convergence_mrad=20, thickness_A=PERIOD_A)
    shifted = render_kernel_image((40, 50), [[20.0, 25.0]], ["Sr"], library, dx=np.full((40, 50), 2.5),
                                  dy=np.full(40, -1.5), **kwargs).image
    moved = render_kernel_image((40, 50), [[21.5, 22.5]], ["Sr"], library, **kwargs).image
    np.testing.assert_allclose(shifted, moved, rtol=0, atol=1e-12)


def _fwhm_px(image, row):
    line = image[row] - image[row].min()
    return int((line >= 0.5 * line.max()).sum())


def test_a_deeper_atom_is_broader_and_dimmer(library):
    kwargs = dict(detector="haadf", pixel_size_A=0.05, kv=300, convergence_mrad=20, thickness_A=PERIOD_A)
    top = render_kernel_image((81, 81), [[40, 40]], ["Z78"], library, depth_A=0.0, **kwargs).image
    deep = render_kernel_image((81, 81), [[40, 40]], ["Z78"], library, depth_A=50.0, **kwargs).image
    assert _fwhm_px(deep, 40) > 1.5 * _fwhm_px(top, 40)
    assert deep.max() < 0.5 * top.max()


def test_each_column_gets_its_own_depth(library):
    kwargs = dict(detector="haadf", pixel_size_A=0.05, kv=300, convergence_mrad=20, thickness_A=PERIOD_A)
    both = render_kernel_image((81, 161), [[40, 40], [40, 120]], ["Pt", "Pt"], library, depth_A=[0.0, 50.0],
                               **kwargs).image
    assert _fwhm_px(both[:, 80:], 40) > 1.5 * _fwhm_px(both[:, :80], 40)


def test_source_size_blurs_but_keeps_the_total_signal(library):
    kwargs = dict(detector="haadf", pixel_size_A=0.05, kv=300, convergence_mrad=20, thickness_A=PERIOD_A)
    sharp = render_kernel_image((121, 121), [[60, 60]], ["Sr"], library, **kwargs).image
    blurred = render_kernel_image((121, 121), [[60, 60]], ["Sr"], library, source_size_pm=60.0, **kwargs).image
    assert blurred.max() < 0.9 * sharp.max()
    # the kernel is ~0 at the image border, so the 'nearest' boundary keeps the sum to float64 rounding
    assert blurred.sum() == pytest.approx(sharp.sum(), rel=1e-9)


def test_detectability_follows_the_detector(library):
    positions = [[20, 20], [20, 60]]
    kwargs = dict(pixel_size_A=0.1, kv=300, convergence_mrad=20, thickness_A=2 * PERIOD_A)
    flags = {det: render_kernel_image((41, 81), positions, ["Sr", "O"], library, detector=det, **kwargs).detectable
             for det in ("haadf", "abf", "idpc")}
    # the fixture's O/Sr contrast: (8/38)^1.7 = 0.07 in HAADF, (8/38)^0.7 = 0.34 in ABF, (8/38)^0.5 = 0.46 in iDPC
    assert flags["haadf"].tolist() == [True, False]
    assert flags["abf"].tolist() == [True, True] and flags["idpc"].tolist() == [True, True]
    strict = render_kernel_image((41, 81), positions, ["Sr", "O"], library, detector="idpc",
                                 detectable_fraction=0.5, **kwargs)
    assert strict.detectable.tolist() == [True, False]
    assert strict.peak_contrast[1] / strict.peak_contrast[0] == pytest.approx((8 / 38) ** 0.5, rel=1e-6)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(detector="xray"), "detector"),
        (dict(pixel_size_A=0.0), "pixel_size_A"),
        (dict(source_size_pm=-1.0), "source_size_pm"),
        (dict(thickness_A=[PERIOD_A] * 3), "thickness_A"),
        (dict(detectable_fraction=2.0), "detectable_fraction"),
    ],
)
def test_render_rejects_bad_options(library, kwargs, words):
    args = dict(detector="haadf", pixel_size_A=0.1, kv=300, convergence_mrad=20, thickness_A=PERIOD_A) | kwargs
    with pytest.raises(ValueError, match=words):
        render_kernel_image((20, 20), [[10, 10], [5, 5]], ["Sr", "O"], library, **args)


def test_species_labels_map_to_stacks():
    assert stack_for_species("Z78") == ("Pt", 1)
    assert stack_for_species("S2") == ("S", 2)
    assert stack_for_species("TiO*") == ("TiO", 1)
    assert stack_for_species("Sr") == ("Sr", 1)


def test_validation_verdicts_come_from_the_anchors(library):
    for det, r2 in ANCHOR_R2.items():
        assert library.accepted(det) == (r2 >= ACCEPT_R2)
    assert library.accepted("dpc_x") == library.accepted("dpc")
    assert not library.accepted("haadf", kv=200)  # no anchor there


# ----------------------------------------------------------------------------- simulator hook


def _kernels(library_path, **kw):
    return KernelOptions(library=library_path, thickness_A=2 * PERIOD_A, **kw)


def test_simulate_with_kernels_labels_the_detectable_columns(library_path):
    common = dict(shape=(96, 96), pixel_size_pm=12.0, seed=4)
    haadf = simulate("srtio3_100", image_formation="kernels", kernels=_kernels(library_path), **common)
    abf = simulate("srtio3_100", image_formation="kernels", kernels=_kernels(library_path, detector="abf"), **common)
    assert set(haadf.species) == {"Sr", "TiO"} and set(abf.species) == {"Sr", "TiO", "O"}
    # the labelled positions are the lattice's, one to one
    lattice, names = lattice_positions(get_crystal("srtio3_100"), (96, 96), 0.12)
    for sim in (haadf, abf):
        truth = lattice[np.isin(names, sim.species)]
        inside = (truth >= 0).all(1) & (truth[:, 0] <= 95) & (truth[:, 1] <= 95)
        match = match_positions(sim.positions_rc, truth[inside], 0.5)
        assert len(match.pred_index) == len(sim.positions_rc) == inside.sum()
    # HAADF columns are bright, ABF columns dark on a bright background
    sr = np.round(haadf.positions_rc[haadf.species == "Sr"]).astype(int)
    assert haadf.clean[sr[:, 0], sr[:, 1]].mean() > np.median(haadf.clean)
    assert abf.clean[sr[:, 0], sr[:, 1]].mean() < np.median(abf.clean)
    assert haadf.parameters["image_formation"] == "kernels"
    assert haadf.parameters["kernels"]["library"] == str(library_path)


def test_cli_simulate_renders_with_kernels(library_path, tmp_path, capsys):
    """``atombench simulate --kernels``: the same image and labels as the API with the same options."""
    from napari_atombench.cli import main
    from napari_atombench.core.io import read_image, read_positions

    out_image, out_labels = tmp_path / "abf.tif", tmp_path / "abf.csv"
    assert main(["simulate", "srtio3_100", "--size", "96", "--pixel-size-pm", "12", "--seed", "4",
                 "--kernels", "abf", "--thickness-A", str(2 * PERIOD_A), "--kernel-library", str(library_path),
                 "--out-image", str(out_image), "--out-labels", str(out_labels)]) == 0
    api = simulate("srtio3_100", image_formation="kernels", kernels=_kernels(library_path, detector="abf"),
                   shape=(96, 96), pixel_size_pm=12.0, seed=4)
    image = read_image(out_image)[0]
    np.testing.assert_allclose(image, api.image, rtol=1e-6, atol=1e-6 * float(np.abs(api.image).max()))
    labels = read_positions(out_labels).positions_rc
    assert len(match_positions(labels, api.positions_rc, 1e-3).pred_index) == len(api.positions_rc) == len(labels)


def test_simulate_puts_adatoms_at_their_depth(library_path):
    common = dict(crystal=None, adatoms_per_nm2=2.0, shape=(160, 160), pixel_size_pm=10.0, seed=2)
    top = simulate(image_formation="kernels", kernels=_kernels(library_path, adatom_depth_A=0.0), **common)
    deep = simulate(image_formation="kernels", kernels=_kernels(library_path, adatom_depth_A=50.0), **common)
    assert len(top.positions_rc) > 0 and np.array_equal(top.positions_rc, deep.positions_rc)
    assert set(top.species) == {"Z78"}
    # the brightest kernel is scaled to the same contrast either way; the deep atoms are broader
    for r, c in np.round(top.positions_rc).astype(int):
        area = [int((img[max(r - 12, 0):r + 13, max(c - 12, 0):c + 13] >= 0.05 + 0.5 * (img[r, c] - 0.05)).sum())
                for img in (top.clean, deep.clean)]
        assert area[1] > 2 * area[0]


def test_default_simulate_does_not_touch_kernels():
    default = simulate("srtio3_100", shape=(64, 64), dose_e_per_A2=1e4, seed=5)
    explicit = simulate("srtio3_100", shape=(64, 64), dose_e_per_A2=1e4, seed=5, image_formation="gaussian")
    assert np.array_equal(default.image, explicit.image)
    assert default.parameters["kernels"] is None


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(kernels=KernelOptions()), "image_formation='kernels'"),
        (dict(image_formation="multislice"), "image_formation"),
        (dict(image_formation="kernels", resolution_pm=60.0), "resolution_pm"),
        (dict(image_formation="kernels", mode="abf"), "mode"),
        (dict(image_formation="kernels", z_exponent=2.0), "z_exponent"),
    ],
)
def test_simulate_rejects_options_that_do_not_apply(kwargs, words):
    with pytest.raises(ValueError, match=words):
        simulate("srtio3_100", shape=(32, 32), **kwargs)


def test_simulate_refuses_unvalidated_or_inapplicable_kernel_options(library_path):
    with pytest.raises(ValueError, match="validation"):
        simulate("srtio3_100", shape=(32, 32), image_formation="kernels", kernels=_kernels(library_path, detector="idpc"))
    with pytest.raises(ValueError, match="detector"):
        simulate("srtio3_100", shape=(32, 32), image_formation="kernels", kernels=_kernels(library_path, detector="dpc_x"))
    with pytest.raises(ValueError, match="kv=200"):
        simulate("srtio3_100", shape=(32, 32), image_formation="kernels", kernels=_kernels(library_path, kv=200))
    forced = simulate("srtio3_100", shape=(32, 32), image_formation="kernels",
                      kernels=_kernels(library_path, detector="idpc", require_accepted=False))
    assert "O" in set(forced.species)


# ----------------------------------------------------------------------------- the shipped library

ROOT = Path(__file__).resolve().parents[1]


def test_the_packaged_library_loads_and_states_its_validation():
    assert PACKAGED_LIBRARY.is_file()
    lib = packaged_library()
    assert {"Sr", "TiO", "O", "Pt", "C", "W"} <= set(lib.stacks)
    assert set(lib.detectors) == set(DETECTORS)
    assert lib.metadata["abtem_version"] and lib.metadata["compute_seconds"] > 0
    anchors = lib.anchors()
    assert {a["detector"] for a in anchors} == set(DETECTORS)
    for det in DETECTORS:
        rows = [a for a in anchors if a["detector"] == det]
        assert lib.accepted(det) == all(a["r2"] >= ACCEPT_R2 for a in rows)
    # a scene rendered from it: HAADF Sr brighter than TiO brighter than O
    out = render_kernel_image((40, 40), [[10, 10], [10, 30], [30, 20]], ["Sr", "TiO", "O"], lib, detector="haadf",
                              pixel_size_A=0.1, kv=300, convergence_mrad=20, thickness_A=5 * PERIOD_A)
    assert out.peak_contrast[0] > out.peak_contrast[1] > out.peak_contrast[2] > 0


def _anchor_script():
    spec = importlib.util.spec_from_file_location("build_column_anchors", ROOT / "scripts" / "build_column_anchors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # imports abTEM only inside the functions that simulate
    return module


def test_the_shipped_anchor_crops_reproduce_the_validation_table():
    anchors = _anchor_script()
    lib = packaged_library()
    with np.load(PACKAGED_LIBRARY.with_name("column_kernel_anchors.npz"), allow_pickle=False) as crops:
        repeats = [int(n) for n in crops["repeats"]]
        stored = {(a["detector"], a["kv"], a["convergence_mrad"], a["thickness_A"]): a["r2"] for a in lib.anchors()}
        checked = 0
        for kv in lib.kv:
            for conv in lib.convergence_mrad:
                if f"haadf_{kv:g}kV_{conv:g}mrad_{repeats[0]}" not in crops.files:
                    continue
                measured = {k: np.stack([crops[f"{k}_{kv:g}kV_{conv:g}mrad_{n}"] for n in repeats])
                            for k in ("haadf", "bf", "abf", "com_x", "com_y")}
                measured["vacuum"] = {d: float(crops[f"vacuum_{d}_{kv:g}kV_{conv:g}mrad"]) for d in ("haadf", "bf", "abf")}
                rows, _ = anchors.compare(lib, kv, conv, repeats, measured)
                for row in rows:
                    # stored rounded to 1e-4; the crops are float32 (relative 6e-8), far below that
                    key = (row["detector"], row["kv"], row["convergence_mrad"], row["thickness_A"])
                    assert abs(row["r2"] - stored[key]) <= 1.5e-4, key
                    checked += 1
    assert checked == len(stored)


def test_the_library_files_are_package_data():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    core_dir = PACKAGED_LIBRARY.parents[1]
    for path in (PACKAGED_LIBRARY, PACKAGED_LIBRARY.with_name("column_kernel_anchors.npz")):
        assert path.is_file()
        assert any(fnmatch.fnmatch(path.relative_to(core_dir).as_posix(), p) for p in patterns["napari_atombench.core"])
