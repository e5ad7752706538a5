"""Image and positions I/O: every format, units, x/y order, atomic writes, bad input."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import tifffile

from dm_builder import write_dm, write_mrc
from napari_atombench.core import file_checks
from napari_atombench.core import io as core_io
from napari_atombench.core.io import (
    as_image_2d,
    atomic_write_text,
    length_unit_to_A,
    read_image,
    read_positions,
    write_positions,
)


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    return rng.random((20, 30), dtype=np.float32) * 100


# --- units ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "unit, expected",
    [("nm", 10.0), ("pm", 0.01), ("Å", 1.0), ("\u212b", 1.0), ("A", 1.0), ("µm", 1e4), ("μm", 1e4),
     ("um", 1e4), ("micron", 1e4), ("NM", 10.0), (" nm ", 10.0)],
)
def test_length_units_convert_to_angstrom(unit, expected):
    assert length_unit_to_A(unit) == pytest.approx(expected)


@pytest.mark.parametrize("unit", ["1/nm", "", None, "counts", "eV"])
def test_non_length_units_give_none(unit):
    assert length_unit_to_A(unit) is None


# --- TIFF -----------------------------------------------------------------------


def test_tiff_without_resolution_has_no_pixel_size(tmp_path, image):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, image)
    data, pixel_size_A, metadata = read_image(path)
    assert data.dtype == np.float32 and data.shape == (20, 30)
    np.testing.assert_array_equal(data, image)
    assert pixel_size_A is None
    assert metadata["format"] == "tiff"


def test_tiff_resolution_tags_in_centimetres(tmp_path, image):
    path = tmp_path / "cm.tif"
    pixels_per_cm = 1e8 / 0.25  # 0.25 Å per pixel
    tifffile.imwrite(path, image, resolution=(pixels_per_cm, pixels_per_cm), resolutionunit="CENTIMETER")
    _, pixel_size_A, metadata = read_image(path)
    assert pixel_size_A == pytest.approx(0.25, rel=1e-6)
    assert metadata["pixel_size_source"] == "TIFF resolution tags"


def test_tiff_imagej_unit(tmp_path, image):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, image, imagej=True, resolution=(50.0, 50.0), metadata={"unit": "nm"})
    _, pixel_size_A, _ = read_image(path)
    assert pixel_size_A == pytest.approx(0.2)  # 1/50 nm


def test_tiff_ome_physical_size(tmp_path, image):
    path = tmp_path / "ome.ome.tif"
    tifffile.imwrite(path, image, ome=True, metadata={"PhysicalSizeX": 35.0, "PhysicalSizeXUnit": "pm",
                                                     "PhysicalSizeY": 35.0, "PhysicalSizeYUnit": "pm"})
    _, pixel_size_A, metadata = read_image(path)
    assert pixel_size_A == pytest.approx(0.35)
    assert metadata["pixel_size_source"] == "OME PhysicalSizeX"


def test_tiff_default_72_dpi_is_not_a_pixel_size(tmp_path, image):
    path = tmp_path / "dpi.tif"
    tifffile.imwrite(path, image, resolution=(72, 72), resolutionunit="INCH")
    _, pixel_size_A, metadata = read_image(path)
    assert pixel_size_A is None
    assert any("not a plausible" in note for note in metadata["notes"])


def test_rgb_tiff_becomes_luminance_with_warning(tmp_path):
    rgb = np.zeros((10, 12, 3), dtype=np.uint8)
    rgb[..., 1] = 100  # pure green
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, rgb, photometric="rgb")
    with pytest.warns(UserWarning, match="RGB"):
        data, _, metadata = read_image(path)
    assert data.shape == (10, 12)
    np.testing.assert_allclose(data, 71.52, rtol=1e-5)
    assert metadata["rgb_converted"] is True


# --- NPY, stacks, NaN -----------------------------------------------------------


def test_npy_round_trip(tmp_path, image):
    path = tmp_path / "a.npy"
    np.save(path, image.astype(np.float64))
    data, pixel_size_A, metadata = read_image(path)
    assert data.dtype == np.float32
    np.testing.assert_allclose(data, image)
    assert pixel_size_A is None and metadata["original_dtype"] == "float64"


def test_stack_is_refused_with_advice_unless_allowed(tmp_path):
    path = tmp_path / "stack.npy"
    np.save(path, np.zeros((5, 16, 16), dtype=np.float32))
    with pytest.raises(ValueError, match=r"shape \(5, 16, 16\).*stack of 5 frames.*mean\(axis=0\)"):
        read_image(path)
    data, _, _ = read_image(path, allow_stack=True)
    assert data.shape == (5, 16, 16)


def test_nan_pixels_raise_by_default_and_name_the_place(tmp_path, image):
    image[3, 7] = np.nan
    image[4, 4] = np.inf
    path = tmp_path / "nan.npy"
    np.save(path, image)
    with pytest.raises(ValueError, match=r"2 NaN/Inf pixel\(s\) \(first at row 3, col 7\)"):
        read_image(path)


def test_nan_pixels_replaced_by_median_when_asked(tmp_path, image):
    image[3, 7] = np.nan
    path = tmp_path / "nan.npy"
    np.save(path, image)
    with pytest.warns(UserWarning, match="replaced 1 NaN/Inf"):
        data, _, metadata = read_image(path, nan_policy="replace")
    assert np.isfinite(data).all()
    assert data[3, 7] == pytest.approx(np.nanmedian(image))
    assert metadata["n_nonfinite_replaced"] == 1


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((0, 10)), "empty"),
        (np.full((4, 4), np.nan), "no finite pixel"),
        (np.zeros((4, 4), dtype=complex), "complex"),
        (np.zeros((2, 3, 4, 5)), "not 2D"),
        (np.array(["a", "b"]), "not numeric"),
    ],
)
def test_as_image_2d_rejects_bad_arrays(bad, message):
    with pytest.raises(ValueError, match=message):
        as_image_2d(bad)


def test_unsupported_and_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "nope.tif")
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(ValueError, match="unsupported image type '.txt'"):
        read_image(txt)
    fake = tmp_path / "fake.dm4"
    fake.write_bytes(b"this is not a DM file at all")
    with pytest.raises(ValueError, match="fake.dm4: could not be read as .dm4"):
        read_image(fake)


# --- RosettaSciIO formats -------------------------------------------------------


@pytest.mark.parametrize("version", [3, 4])
def test_gatan_dm_files(tmp_path, image, version):
    path = tmp_path / f"img.dm{version}"
    write_dm(path, image, scale=0.0123, units="nm", version=version)
    data, pixel_size_A, metadata = read_image(path)
    np.testing.assert_array_equal(data, image)
    assert pixel_size_A == pytest.approx(0.123, rel=1e-6)
    assert metadata["format"] == f"dm{version}"


def test_dm_file_in_picometres(tmp_path, image):
    path = tmp_path / "pm.dm3"
    write_dm(path, image, scale=15.0, units="pm", version=3)
    assert read_image(path)[1] == pytest.approx(0.15)


def test_dm_file_with_reciprocal_units_has_no_pixel_size(tmp_path, image):
    path = tmp_path / "fft.dm3"
    write_dm(path, image, scale=0.01, units="1/nm", version=3)
    _, pixel_size_A, metadata = read_image(path)
    assert pixel_size_A is None
    assert any("not a length" in note for note in metadata["notes"])


def test_emd_written_by_rosettasciio(tmp_path, image):
    from rsciio.emd import file_writer

    path = tmp_path / "img.emd"
    axes = [
        {"name": "y", "size": 20, "scale": 0.02, "offset": 0.0, "units": "nm", "navigate": False},
        {"name": "x", "size": 30, "scale": 0.02, "offset": 0.0, "units": "nm", "navigate": False},
    ]
    file_writer(str(path), {"data": image, "axes": axes, "metadata": {"General": {"title": "HAADF"}, "Signal": {}},
                            "original_metadata": {}})
    data, pixel_size_A, metadata = read_image(path)
    np.testing.assert_array_equal(data, image)
    assert pixel_size_A == pytest.approx(0.2)
    assert metadata["signal_title"] == "HAADF"


def test_mrc(tmp_path, image):
    path = tmp_path / "img.mrc"
    write_mrc(path, image, pixel_size_A=0.3)
    data, pixel_size_A, _ = read_image(path)
    np.testing.assert_array_equal(data, image)
    assert pixel_size_A == pytest.approx(0.3, rel=1e-6)


# --- positions ------------------------------------------------------------------


def test_positions_round_trip_keeps_x_y_order(tmp_path):
    positions_rc = np.array([[10.5, 3.25], [0.0, 99.0], [42.125, 7.0]])  # (row, col)
    path = tmp_path / "labels.csv"
    write_positions(path, positions_rc, pixel_size_A=0.2, features={"species": ["Sr", "Ti", "O"],
                                                                     "amplitude": [1.0, 2.5, 3.0]})
    table = pd.read_csv(path)
    assert list(table.columns[:4]) == ["x_px", "y_px", "x_A", "y_A"]
    # x is the column index, y the row
    assert table.loc[0, "x_px"] == pytest.approx(3.25) and table.loc[0, "y_px"] == pytest.approx(10.5)
    assert table.loc[1, "x_A"] == pytest.approx(99.0 * 0.2)
    loaded = read_positions(path)
    np.testing.assert_allclose(loaded.positions_rc, positions_rc, atol=1e-6)
    assert loaded.pixel_size_A == pytest.approx(0.2)
    assert list(loaded.features["species"]) == ["Sr", "Ti", "O"]
    assert loaded.features["amplitude"].dtype.kind == "f"
    assert "x_A" not in loaded.features


def test_positions_without_pixel_size_and_empty(tmp_path):
    path = tmp_path / "p.csv"
    write_positions(path, [[1.0, 2.0]])
    assert open(path).readline().strip() == "x_px,y_px"
    assert read_positions(path).pixel_size_A is None
    write_positions(path, np.zeros((0, 2)))
    assert len(read_positions(path)) == 0


def test_napari_points_csv_is_accepted(tmp_path):
    path = tmp_path / "napari.csv"
    path.write_text("index,axis-0,axis-1\n0,5.0,7.0\n1,6.5,8.5\n")
    np.testing.assert_allclose(read_positions(path).positions_rc, [[5.0, 7.0], [6.5, 8.5]])


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("a,b\n1,2\n", r"line 1: no position columns.*found \['a', 'b'\]"),
        ("x_px,y_px\n1,2\n3\n", "line 3: 1 field"),
        ("x_px,y_px\n1,2\n\n4,abc\n", r"line 4: y_px = 'abc' is not a number"),
        ("x_px,y_px\n1,nan\n", "line 2: y_px = 'nan' is not finite"),
    ],
)
def test_malformed_csv_names_the_line(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_positions(path)


def test_write_positions_rejects_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        write_positions(tmp_path / "x.csv", np.zeros((3, 3)))
    with pytest.raises(ValueError, match="not finite"):
        write_positions(tmp_path / "x.csv", [[1.0, np.nan]])
    with pytest.raises(ValueError, match="features have 1 rows for 2 positions"):
        write_positions(tmp_path / "x.csv", [[1, 2], [3, 4]], features={"a": [1]})


def test_atomic_write_failure_leaves_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "labels.csv"
    write_positions(path, [[1.0, 2.0]])
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(core_io.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_positions(path, [[5.0, 6.0], [7.0, 8.0]])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["labels.csv"]  # no temp file left behind


def test_atomic_write_failure_mid_write(tmp_path, monkeypatch):
    path = tmp_path / "notes.txt"
    atomic_write_text(path, "old")

    real_fdopen = os.fdopen

    class Exploding:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            self.handle.write(data[:2])
            raise OSError("interrupted")

    monkeypatch.setattr(core_io.os, "fdopen", lambda fd, mode: Exploding(real_fdopen(fd, mode)))
    with pytest.raises(OSError, match="interrupted"):
        atomic_write_text(path, "new content")
    assert path.read_text() == "old"


def test_atomic_write_keeps_permissions(tmp_path):
    path = tmp_path / "p.txt"
    atomic_write_text(path, "a")
    path.chmod(0o640)
    atomic_write_text(path, "b")
    assert (path.stat().st_mode & 0o777) == 0o640


def test_sample_data_is_consistent():
    from napari_atombench.sample_data import CATALOGUE, sample_paths

    for name in CATALOGUE:
        image_path, labels_path = sample_paths(name)
        data, pixel_size_A, _ = read_image(image_path)
        labels = read_positions(labels_path)
        assert pixel_size_A == pytest.approx(0.15)
        assert len(labels) > 100
        rows, cols = labels.positions_rc.T
        assert rows.min() >= 0 and cols.min() >= 0 and rows.max() <= data.shape[0] - 1
        # every label sits on a bright column: the local mean is above the image mean
        r, c = np.round(labels.positions_rc).astype(int).T
        assert data[r, c].mean() > 2 * data.mean()


# --- hostile input (see also test_fuzz_readers.py) --------------------------------


def _huge_files(tmp_path):
    from fuzz_files import _npy_header, _ser_bytes, _tiff_bytes

    image = np.zeros((24, 32), np.float32)
    mrc = tmp_path / "base.mrc"
    write_mrc(mrc, image, pixel_size_A=0.3)
    raw = bytearray(mrc.read_bytes())
    raw[0:8] = np.array([100_000, 100_000], "<u4").tobytes()
    return {
        "huge.npy": _npy_header((100_000, 100_000)) + bytes(4096),
        "huge.tif": _tiff_bytes(100_000, 100_000),
        "huge.ser": _ser_bytes(image, size_xy=(100_000, 100_000)),
        "huge.mrc": bytes(raw),
    }


@pytest.mark.parametrize("name", ["huge.npy", "huge.tif", "huge.ser", "huge.mrc"])
def test_declared_size_over_the_limit_is_refused_before_reading(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(_huge_files(tmp_path)[name])
    with pytest.raises(core_io.FileFormatError,
                       match=rf"^{name}: .*declares (1 x )?100000 x 100000 float32 pixels \(37\.3 GiB\), "
                             r"over the 1 GiB limit \(ATOMBENCH_MAX_IMAGE_BYTES\)"):
        read_image(path)


def test_image_size_limit_from_argument_and_environment(tmp_path, image, monkeypatch):
    path = tmp_path / "small.npy"
    np.save(path, image)  # 600 float32 pixels = 2400 bytes
    assert read_image(path)[0].shape == (20, 30)
    with pytest.raises(core_io.FileFormatError, match=r"small.npy: .*2\.34 KiB\), over the 1000 bytes limit"):
        read_image(path, max_bytes=1000)
    monkeypatch.setenv("ATOMBENCH_MAX_IMAGE_BYTES", "1000")
    with pytest.raises(core_io.FileFormatError, match="over the 1000 bytes limit"):
        read_image(path)
    assert read_image(path, max_bytes=10_000)[0].shape == (20, 30)  # the argument wins
    monkeypatch.setenv("ATOMBENCH_MAX_IMAGE_BYTES", "lots")
    with pytest.raises(ValueError, match=r"\$ATOMBENCH_MAX_IMAGE_BYTES = 'lots' is not a number"):
        read_image(path)


def test_stored_bytes_beyond_the_file_are_refused(tmp_path):
    from fuzz_files import _npy_header

    path = tmp_path / "short.npy"
    path.write_bytes(_npy_header((300, 300)) + bytes(4096))
    with pytest.raises(core_io.FileFormatError, match=r"short.npy: .*only 4 KiB follow: the file is truncated"):
        read_image(path)


def test_mrc_extended_header_larger_than_the_file_is_refused(tmp_path, image):
    path = tmp_path / "next.mrc"
    write_mrc(path, image, pixel_size_A=0.3)
    raw = bytearray(path.read_bytes())
    raw[92:96] = np.array([2**31], "<u4").tobytes()
    path.write_bytes(bytes(raw))
    with pytest.raises(core_io.FileFormatError, match=r"next.mrc: .*2147483648-byte extended header"):
        read_image(path)


def test_npy_pickles_are_never_loaded(tmp_path):
    path = tmp_path / "evil.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(core_io.FileFormatError, match="evil.npy: .*Python objects.*never loads pickles"):
        read_image(path)


def test_npy_header_length_is_checked_before_numpy_reads_it(tmp_path):
    path = tmp_path / "long.npy"
    path.write_bytes(b"\x93NUMPY\x02\x00" + np.array([2**31], "<u4").tobytes() + b"{" * 100)
    with pytest.raises(core_io.FileFormatError, match=r"long.npy: .*declares 2147483648 header bytes"):
        read_image(path)


def test_library_failures_become_file_errors_but_our_bugs_propagate(tmp_path):
    path = tmp_path / "x.dm3"

    def library_bug():  # defined outside napari_atombench: stands for a parser's bug on bad bytes
        return 1 // 0

    with pytest.raises(core_io.FileFormatError, match=r"^x.dm3: could not be read as .dm3.*ZeroDivisionError"):
        with core_io.file_errors(path, ".dm3"):
            library_bug()
    with pytest.raises(TypeError):  # raised inside napari_atombench: a bug, not a bad file
        with core_io.file_errors(path, ".dm3"):
            file_checks._human_bytes("not a number")
    with pytest.raises(core_io.FileFormatError, match=r"^x.dm3: .*KeyError"):
        with core_io.file_errors(path, ".dm3"):
            {}["missing tag"]


def test_positions_csv_must_be_a_regular_file_within_limits(tmp_path, monkeypatch):
    zero = tmp_path / "zero.csv"
    zero.symlink_to("/dev/zero")
    with pytest.raises(core_io.FileFormatError, match="zero.csv: .*not a regular file"):
        read_positions(zero)
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(core_io.FileFormatError, match="dir.csv: .*it is a folder"):
        read_positions(tmp_path / "dir.csv")
    path = tmp_path / "big.csv"
    path.write_text("x_px,y_px\n" + "1,2\n" * 1000)
    with pytest.raises(core_io.FileFormatError, match=r"big.csv: 3.92 KiB, over the 1000 bytes limit .*ATOMBENCH_MAX_CSV_BYTES"):
        read_positions(path, max_bytes=1000)
    monkeypatch.setenv("ATOMBENCH_MAX_CSV_BYTES", "1000")
    with pytest.raises(core_io.FileFormatError, match="over the 1000 bytes limit"):
        read_positions(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("x_px,y_px,note\n1,2," + "a" * 200_000 + "\n", r"long.csv, line 2: malformed CSV \(field larger than field limit"),
        ("x_px,y_px\n1,\x002\n", "long.csv, line 2: holds a NUL byte"),
    ],
)
def test_malformed_csv_fields_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "long.csv"
    path.write_text(text)
    with pytest.raises(core_io.FileFormatError, match=message):
        read_positions(path)


@pytest.mark.parametrize("x_A", ["0", "-0.2", "1e9", "1e-9", "inf", "nan"])
def test_pixel_size_from_x_A_must_be_plausible(tmp_path, x_A):
    path = tmp_path / "scaled.csv"
    path.write_text("x_px,y_px,x_A,y_A\n" + "".join(f"{x},{x},{x * float(x_A)},0\n" for x in (5.0, 9.0)))
    with pytest.raises(core_io.FileFormatError, match=r"scaled.csv(: x_A / x_px: pixel size|, line 2: x_A)"):
        read_positions(path)


@pytest.mark.parametrize(
    "header, accepted",
    [("x_px,y_px", True), ("X,Y,species", True), ("index,axis-0,axis-1", True), ("a,b", False), ("", False)],
)
def test_napari_reader_accepts_every_header_read_positions_accepts(tmp_path, header, accepted):
    from napari_atombench._napari.reader import get_reader

    path = tmp_path / "points.csv"
    rows = "".join(",".join(str(i + k) for k in range(header.count(",") + 1)) + "\n" for i in range(3))
    path.write_text(f"\n{header}\n{rows}")
    assert core_io.has_position_header(path) is accepted
    assert (get_reader(str(path)) is not None) is accepted
    if accepted:
        assert len(read_positions(path)) == 3
