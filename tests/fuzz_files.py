"""Malformed input files for the reader fuzz test (``tests/test_fuzz_readers.py``).

:func:`generate` writes, from a fixed seed, well over 1,000 files across every
format atombench reads: for each format a few valid files, then truncations,
bit flips in the header, huge declared sizes, wrong dtypes and format-specific
nasties (pickles in ``.npy``, a ``.csv`` symlink to ``/dev/zero``, a
``cases.csv`` row with an extra field...). :func:`read` opens one of them
through the public API, exactly as a user's call would.

Run as a script to print the outcome table (used for the before/after
record in the closing note)::

    PYTHONPATH=. python tests/fuzz_files.py [--timeout-s 5]
"""

from __future__ import annotations

import io
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dm_builder import write_dm, write_mrc  # noqa: E402

SEED = 20261130
#: Variants that must never read without error (their names start with these).
MUST_REFUSE = ("declares", "pickle", "symlink to /dev/zero", "x_A/x_px", "pixel size", "NaN coords", "inf coords")
HUGE_SHAPES = ((100_000, 100_000), (65_535, 65_535), (1, 2**31), (2**31, 1), (4096, 4096, 4096))


@dataclass
class FuzzFile:
    """One generated input: its format class, path and which public reader opens it."""

    kind: str  # "tiff", "npy", "dm3", ...
    path: Path
    reader: str  # "image", "positions" or "dataset"
    variant: str


# ----------------------------------------------------------------------------- mutations


def _truncations(data: bytes, rng, n: int) -> list[tuple[str, bytes]]:
    cuts = sorted({int(c) for c in rng.integers(0, len(data), size=n)})
    return [(f"truncated at {c}", data[:c]) for c in cuts]


def _bit_flips(data: bytes, rng, n: int, region: int) -> list[tuple[str, bytes]]:
    out = []
    region = max(1, min(region, len(data)))
    for i in range(n):
        raw = bytearray(data)
        for _ in range(int(rng.integers(1, 5))):
            where = int(rng.integers(0, region))
            raw[where] ^= 1 << int(rng.integers(0, 8))
        out.append((f"bit flips {i}", bytes(raw)))
    return out


def _random_bytes(data: bytes, rng, n: int, region: int) -> list[tuple[str, bytes]]:
    """Overwrite 4-byte words in the header with extreme integers (huge counts and sizes)."""
    extremes = [0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 100_000, 65_535, 0]
    out = []
    region = max(4, min(region, len(data)))
    for i in range(n):
        raw = bytearray(data)
        where = int(rng.integers(0, region - 3))
        raw[where:where + 4] = struct.pack("<I", extremes[int(rng.integers(0, len(extremes)))])
        out.append((f"extreme word {i}", bytes(raw)))
    return out


def _mutants(data: bytes, rng, *, truncs: int, flips: int, words: int, region: int):
    return (_truncations(data, rng, truncs) + _bit_flips(data, rng, flips, region)
            + _random_bytes(data, rng, words, region))


# ----------------------------------------------------------------------------- formats


def _image(rng, shape=(24, 32)) -> np.ndarray:
    return rng.random(shape).astype(np.float32) * 100


def _tiff_bytes(width: int, height: int, *, bps: int = 32, sample_format: int = 3, spp: int = 1,
                compression: int = 1, payload: bytes | None = None) -> bytes:
    """A minimal little-endian baseline TIFF whose tags declare what we ask, whatever the payload."""
    if payload is None:
        payload = bytes(max(0, min(width * height * spp * bps // 8, 1 << 16)))
    tags = [
        (256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, bps), (259, 3, 1, compression),
        (262, 3, 1, 1), (273, 4, 1, 0), (277, 3, 1, spp), (278, 4, 1, height),
        (279, 4, 1, len(payload)), (339, 3, 1, sample_format),
    ]
    ifd_size = 2 + 12 * len(tags) + 4
    data_offset = 8 + ifd_size
    entries = b"".join(struct.pack("<HHII", t, k, c, data_offset if t == 273 else v) for t, k, c, v in tags)
    return b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", len(tags)) + entries + b"\0" * 4 + payload


def _tiff_files(rng):
    import tifffile

    image = _image(rng)
    buf = io.BytesIO()
    tifffile.imwrite(buf, image, resolution=(1e8 / 0.2, 1e8 / 0.2), resolutionunit=3)
    base = buf.getvalue()
    yield "valid", base
    yield "valid hand-made", _tiff_bytes(32, 24, payload=image.tobytes())
    for width, height in [s for s in HUGE_SHAPES if len(s) == 2]:
        yield f"declares {width}x{height}", _tiff_bytes(width, height)
    for bps, fmt in ((64, 6), (7, 1), (128, 3), (1, 1), (16, 2), (32, 5), (0, 1)):
        yield f"bps {bps} format {fmt}", _tiff_bytes(32, 24, bps=bps, sample_format=fmt)
    yield "300 samples", _tiff_bytes(32, 24, spp=300)
    yield "LZW garbage", _tiff_bytes(32, 24, compression=5, payload=bytes(rng.integers(0, 256, 400, dtype=np.uint8)))
    yield "unknown compression", _tiff_bytes(32, 24, compression=60000)
    yield "IFD beyond EOF", b"II*\0" + struct.pack("<I", 10**9)
    looped = bytearray(_tiff_bytes(32, 24, payload=image.tobytes()))
    looped[8 + 2 + 12 * 10:8 + 2 + 12 * 10 + 4] = struct.pack("<I", 8)  # next IFD = itself
    yield "IFD loop", bytes(looped)
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros((3, 4, 5, 6), np.uint8), photometric="minisblack")
    yield "4D", buf.getvalue()
    buf = io.BytesIO()
    tifffile.imwrite(buf, (image + 1j).astype(np.complex64))
    yield "complex", buf.getvalue()
    yield from _mutants(base, rng, truncs=40, flips=60, words=40, region=400)


def _npy_header(shape, descr="<f4", fortran=False) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": fortran, "shape": shape})
    return buf.getvalue()


def _npy_files(rng):
    image = _image(rng)
    buf = io.BytesIO()
    np.save(buf, image)
    base = buf.getvalue()
    yield "valid", base
    for shape in HUGE_SHAPES:
        yield f"declares {shape}", _npy_header(shape) + bytes(4096)
    yield "declares more than it holds", _npy_header((300, 300)) + bytes(4096)
    yield "negative shape", _npy_header((-5, 10)) + bytes(4096)
    for descr in ("<U10", "|V8", "<c8", "|b1", "|S4", "<M8[s]", "<m8[s]", [("a", "<f4"), ("b", "<i4")]):
        n = 24 * 32 * np.dtype(descr).itemsize
        yield f"dtype {descr}", _npy_header((24, 32), descr) + bytes(n)
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}, os.system], dtype=object), allow_pickle=True)
    yield "pickle", buf.getvalue()
    yield "pickle header only", _npy_header((2,), "|O") + b"\x80\x04K\x01."
    yield "not npy", b"hello world" * 10
    yield "bad header literal", b"\x93NUMPY\x01\x00" + struct.pack("<H", 20) + b"{'descr': __import__}\n"
    yield "header length huge", b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**31) + b"{" * 100
    yield "version 9", b"\x93NUMPY\x09\x00" + base[8:]
    yield from _mutants(base, rng, truncs=40, flips=60, words=30, region=128)


def _dm_files(rng, version: int, tmp: Path):
    image = _image(rng, (37, 41))
    path = tmp / f"base.dm{version}"
    write_dm(path, image, scale=0.02, units="nm", version=version)
    base = path.read_bytes()
    path.unlink()
    yield "valid", base
    # the Dimensions group holds cols then rows as int32 near the end of the file
    for width, height in [s for s in HUGE_SHAPES if len(s) == 2]:
        raw = bytearray(base)
        for old, new in ((41, width), (37, height)):
            where = raw.rfind(struct.pack("<i", old))
            raw[where:where + 4] = struct.pack("<I", new & 0xFFFFFFFF)
        yield f"declares {width}x{height}", bytes(raw)
    yield from _mutants(base, rng, truncs=20, flips=40, words=20, region=len(base) - image.nbytes)


def _emd_files(rng, tmp: Path):
    import h5py
    from rsciio.emd import file_writer

    image = _image(rng)
    path = tmp / "base.emd"
    axes = [
        {"name": "y", "size": 24, "scale": 0.02, "offset": 0.0, "units": "nm", "navigate": False},
        {"name": "x", "size": 32, "scale": 0.02, "offset": 0.0, "units": "nm", "navigate": False},
    ]
    file_writer(str(path), {"data": image, "axes": axes, "metadata": {"General": {"title": "HAADF"}, "Signal": {}},
                            "original_metadata": {}})
    base = path.read_bytes()
    yield "valid", base
    variants = {
        **{f"declares {s}": (s, "f4") for s in HUGE_SHAPES},
        "string data": ((24, 32), h5py.string_dtype()),
        "compound data": ((24, 32), np.dtype([("a", "<f4"), ("b", "<i4")])),
        "empty": ((0, 0), "f4"),
        "1D": ((50,), "f4"),
    }
    for name, (shape, dtype) in variants.items():
        with h5py.File(path, "r+") as handle:
            group = handle["signals/HAADF"]
            del group["data"]
            chunks = tuple(min(s, 1024) for s in shape) if all(shape) else None
            group.create_dataset("data", shape=shape, dtype=dtype, chunks=chunks)
        yield name, path.read_bytes()
        path.write_bytes(base)
    path.unlink()
    yield from _mutants(base, rng, truncs=15, flips=30, words=15, region=4096)


def _ser_bytes(image: np.ndarray, *, valid: int = 1, total: int = 1, dims=(1,), data_type: int = 7,
               size_xy: tuple[int, int] | None = None) -> bytes:
    """A minimal TIA ``.ser`` file (series version 0x0210, 4-byte offsets) holding ``image``."""
    rows, cols = image.shape
    size_x, size_y = size_xy or (cols, rows)
    head = struct.pack("<HHHIIII", 0x4949, 0x0197, 0x0210, 0x4122, 0x4152, total, valid)
    dim_bytes = b"".join(struct.pack("<IddIII", n, 0.0, 1.0, 0, 0, 0) for n in dims)
    offset_array_offset = 30 + len(dim_bytes)
    data_offset = offset_array_offset + 8  # one element written, whatever the header declares
    element = struct.pack("<ddIddIHII", 0.0, 2e-11, 0, 0.0, 2e-11, 0, data_type, size_x, size_y)
    element += np.ascontiguousarray(image, dtype="<f4").tobytes()
    tag_offset = data_offset + len(element)
    offsets = struct.pack("<II", data_offset, tag_offset)
    header = head + struct.pack("<II", offset_array_offset, len(dims)) + dim_bytes
    return header + offsets + element + struct.pack("<HHI", 0x4152, 0, 0)


def _ser_files(rng):
    image = _image(rng)
    base = _ser_bytes(image)
    yield "valid", base
    for width, height in [s for s in HUGE_SHAPES if len(s) == 2]:
        yield f"declares {width}x{height}", _ser_bytes(image, size_xy=(width, height))
    for valid, total in ((2**31, 2**31), (100_000, 100_000), (1, 2**30), (0, 1)):
        yield f"{valid} of {total} elements", _ser_bytes(image, valid=valid, total=total)
    yield "dims 65535x65535", _ser_bytes(image, dims=(65_535, 65_535))
    yield "10^6 dimensions", base[:26] + struct.pack("<I", 10**6) + base[30:]
    for data_type in (0, 9, 10, 11, 255):
        yield f"data type {data_type}", _ser_bytes(image, data_type=data_type)
    yield from _mutants(base, rng, truncs=25, flips=45, words=25, region=120)


def _mrc_files(rng, tmp: Path):
    image = _image(rng)
    path = tmp / "base.mrc"
    write_mrc(path, image, pixel_size_A=0.3)
    base = path.read_bytes()
    path.unlink()
    yield "valid", base

    def patched(**words):
        raw = bytearray(base)
        offsets = {"nx": 0, "ny": 4, "nz": 8, "mode": 12, "next": 92}
        for name, value in words.items():
            raw[offsets[name]:offsets[name] + 4] = struct.pack("<I", value & 0xFFFFFFFF)
        return bytes(raw)

    for shape in HUGE_SHAPES:
        nz = shape[2] if len(shape) == 3 else 1
        yield f"declares {shape}", patched(nx=shape[-1] if len(shape) == 2 else shape[1], ny=shape[0], nz=nz)
    yield "declares 65535^3 (dask plans 10^7 chunks)", patched(nx=65_535, ny=65_535, nz=65_535)
    for nxt in (2**31, 2**32 - 1, 128 * 1024, 1 << 20, 3):
        yield f"extended header {nxt}", patched(next=nxt)
    for mode in (3, 5, 65538, 101, 2**31):
        yield f"mode {mode}", patched(mode=mode)
    yield "zero size", patched(nx=0)
    yield "stack", patched(nz=2, ny=12)
    yield from _mutants(base, rng, truncs=20, flips=40, words=25, region=1024)


def _csv_texts(rng):
    xy = rng.random((30, 2)) * 100
    lines = ["x_px,y_px,x_A,y_A,species"] + [f"{x:.3f},{y:.3f},{x * 0.2:.4f},{y * 0.2:.4f},Sr" for x, y in xy]
    base = "\n".join(lines) + "\n"
    yield "valid", base.encode()
    yield "napari", ("index,axis-0,axis-1\n" + "".join(f"{i},{y},{x}\n" for i, (x, y) in enumerate(xy))).encode()
    for size in ("0", "-0.2", "inf", "nan", "1e9", "1e-9", "abc", "1e308"):
        rows = "".join(f"{x},{y},{x * float(size) if size != 'abc' else 'abc'},{y}\n" if size != "1e308"
                       else f"{x},{y},1e308,{y}\n" for x, y in xy[:5] + 3)
        yield f"x_A/x_px = {size}", ("x_px,y_px,x_A,y_A\n" + rows).encode()
    yield "field over limit", ("x_px,y_px,note\n1,2," + "a" * 200_000 + "\n").encode()
    yield "unclosed quote", b'x_px,y_px\n1,"2\n3,4\n'
    yield "NUL bytes", b"x_px,y_px\n1,\x002\n"
    yield "latin-1", "x_px,y_px,name\n1,2,caf\xe9\n".encode("latin-1")
    yield "utf-16", base.encode("utf-16")
    yield "ragged", b"x_px,y_px\n1,2,3\n4\n"
    yield "no header", b"1,2\n3,4\n"
    yield "only header", b"x_px,y_px\n"
    yield "huge numbers", b"x_px,y_px\n1e400,2\n"
    yield "binary", bytes(rng.integers(0, 256, 2000, dtype=np.uint8))
    yield from _mutants(base.encode(), rng, truncs=30, flips=50, words=20, region=len(base))


def _folder_cases(rng):
    """(variant, cases.csv text, {file name: bytes}) for folder datasets."""
    image = _image(rng)
    buf = io.BytesIO()
    np.save(buf, image)
    files = {"a.npy": buf.getvalue(), "a.csv": b"x_px,y_px\n3,4\n10,12\n"}
    head = "case,image,labels,pixel_size_A,material"
    good = f"{head}\nA,a.npy,a.csv,0.2,SrTiO3\n"
    yield "valid", good, files
    for size in ("0", "-1", "inf", "-inf", "nan", "1e9", "1e-9", "abc", "0x10", "1e400"):
        yield f"pixel size {size}", f"{head}\nA,a.npy,a.csv,{size},SrTiO3\n", files
    yield "extra field", f"{head}\nA,a.npy,a.csv,0.2,SrTiO3,extra\n", files
    yield "missing field", f"{head}\nA,a.npy,a.csv\n", files
    yield "missing image", f"{head}\nA,nope.npy,a.csv,0.2,x\n", files
    yield "missing labels", f"{head}\nA,a.npy,nope.csv,0.2,x\n", files
    yield "missing column", "case,image,labels\nA,a.npy,a.csv\n", files
    yield "duplicate", f"{head}\nA,a.npy,a.csv,0.2,x\nA,a.npy,a.csv,0.2,x\n", files
    yield "empty", "", files
    yield "binary", bytes(rng.integers(0, 256, 500, dtype=np.uint8)).decode("latin-1"), files
    yield "image is a folder", f"{head}\nA,.,a.csv,0.2,x\n", files
    yield "field over limit", f"{head}\nA,a.npy,a.csv,0.2," + "m" * 200_000 + "\n", files
    for variant, data in _mutants(good.encode(), rng, truncs=10, flips=25, words=5, region=len(good)):
        yield variant, data.decode("latin-1"), files
    for variant, data in _mutants(files["a.npy"], rng, truncs=5, flips=10, words=5, region=128):
        yield f"image {variant}", good, {**files, "a.npy": data}
    for variant, data in _mutants(files["a.csv"], rng, truncs=3, flips=10, words=0, region=30):
        yield f"labels {variant}", good, {**files, "a.csv": data}


def _h5_files(rng, tmp: Path):
    import h5py

    path = tmp / "base.h5"

    def build(n_images=3, coords=None, image_shape=(24, 32), image_dtype="f4", metadata=True, extra=None):
        with h5py.File(path, "w") as handle:
            for i in range(n_images):
                handle.create_dataset(f"imgs/{i}", data=_image(rng, image_shape).astype(image_dtype))
                c = coords if coords is not None else rng.random((12, 2)) * 20
                handle.create_dataset(f"coords/{i}", data=c)
            if metadata:
                table = np.zeros(n_images, dtype=[("name", "S8"), ("pixel_size_pm", "<f8"), ("material", "S16")])
                for i in range(n_images):
                    table[i] = (str(i).encode(), 20.0, b"SrTiO3")
                handle.create_dataset("metadata", data=table)
            if extra:
                extra(handle)
        data = path.read_bytes()
        path.unlink()
        return data

    base = build()
    yield "valid", base
    yield "NaN coords", build(coords=np.array([[1.0, np.nan], [3.0, 4.0]]))
    yield "inf coords", build(coords=np.array([[1.0, np.inf]]))
    yield "coords 3 columns", build(coords=np.ones((5, 3)))
    yield "empty metadata table", build(metadata=False, extra=lambda h: h.create_dataset(
        "metadata", shape=(0,), dtype=[("name", "S8"), ("pixel_size_pm", "<f8")]))
    yield "no imgs", build(n_images=0)
    yield "int images", build(image_dtype="u1")
    yield "3D image", build(image_shape=(2, 24, 32))

    def huge(shape):
        def add(handle):
            del handle["imgs/0"]
            handle.create_dataset("imgs/0", shape=shape, dtype="f4", chunks=tuple(min(s, 512) for s in shape))
        return add

    for shape in [s for s in HUGE_SHAPES if len(s) == 2]:
        yield f"declares {shape}", build(extra=huge(shape))
    yield "string image", build(extra=lambda h: (h.__delitem__("imgs/1"),
                                                 h.create_dataset("imgs/1", data=np.array(["x"] * 4, dtype="S1"))))
    yield from _mutants(base, rng, truncs=20, flips=40, words=20, region=2048)


# ----------------------------------------------------------------------------- driver


def generate(root: str | os.PathLike, seed: int = SEED) -> list[FuzzFile]:
    """Write every malformed file under ``root`` and return them in a fixed order."""
    root = Path(root)
    tmp = root / "_build"
    tmp.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out: list[FuzzFile] = []
    sources = [
        ("tiff", ".tif", _tiff_files(rng)),
        ("npy", ".npy", _npy_files(rng)),
        ("dm3", ".dm3", _dm_files(rng, 3, tmp)),
        ("dm4", ".dm4", _dm_files(rng, 4, tmp)),
        ("emd", ".emd", _emd_files(rng, tmp)),
        ("ser", ".ser", _ser_files(rng)),
        ("mrc", ".mrc", _mrc_files(rng, tmp)),
        ("csv", ".csv", _csv_texts(rng)),
        ("h5", ".h5", _h5_files(rng, tmp)),
    ]
    for kind, suffix, items in sources:
        folder = root / kind
        folder.mkdir(exist_ok=True)
        for i, (variant, data) in enumerate(items):
            path = folder / f"{kind}_{i:03d}{suffix}"
            path.write_bytes(data)
            reader = {"csv": "positions", "h5": "dataset"}.get(kind, "image")
            out.append(FuzzFile(kind, path, reader, variant))
    extra = root / "special"
    extra.mkdir(exist_ok=True)
    if Path("/dev/zero").exists():
        (extra / "zero.csv").symlink_to("/dev/zero")
        out.append(FuzzFile("csv", extra / "zero.csv", "positions", "symlink to /dev/zero"))
        (extra / "zero.npy").symlink_to("/dev/zero")
        out.append(FuzzFile("npy", extra / "zero.npy", "image", "symlink to /dev/zero"))
    (extra / "folder.csv").mkdir()
    out.append(FuzzFile("csv", extra / "folder.csv", "positions", "a folder named .csv"))
    (extra / "folder.tif").mkdir()
    out.append(FuzzFile("tiff", extra / "folder.tif", "image", "a folder named .tif"))
    for i, (variant, table, files) in enumerate(_folder_cases(rng)):
        folder = root / "folders" / f"ds_{i:03d}"
        folder.mkdir(parents=True)
        (folder / "cases.csv").write_bytes(table.encode("latin-1", "replace"))
        for name, data in files.items():
            (folder / name).write_bytes(data)
        out.append(FuzzFile("folder", folder, "dataset", variant))
    return out


def read(item: FuzzFile) -> None:
    """Open ``item`` through the public API (and load every case of a dataset)."""
    from napari_atombench.core.dataset import load_case, open_dataset
    from napari_atombench.core.io import read_image, read_positions

    if item.reader == "image":
        read_image(item.path, allow_stack=item.path.stem.endswith(("1", "3", "5", "7", "9")))
    elif item.reader == "positions":
        read_positions(item.path)
    else:
        for case in open_dataset(item.path):
            load_case(case)


def names_the_file(item: FuzzFile, message: str) -> bool:
    """Whether ``message`` names the file (for a dataset: its folder or a file in it)."""
    names = {item.path.name}
    if item.path.is_dir():
        names |= {p.name for p in item.path.iterdir()}
    return any(name in message for name in names)


def says_in_words(message: str, item: FuzzFile) -> bool:
    """At least four words of three or more letters besides the file name."""
    import re

    text = message.replace(str(item.path), " ").replace(item.path.name, " ")
    return len(re.findall(r"\b[A-Za-z]{3,}\b", text)) >= 4


def _main(argv: list[str]) -> int:
    """Print the outcome table; each read runs under an alarm (hang) and RLIMIT_AS (memory)."""
    import argparse
    import logging
    import resource
    import signal
    import tempfile
    import time
    import warnings
    from collections import Counter, defaultdict

    parser = argparse.ArgumentParser()
    parser.add_argument("--timeout-s", type=float, default=5.0)
    parser.add_argument("--memory-gb", type=float, default=6.0)
    parser.add_argument("--show", default="", help="print messages of this outcome class")
    args = parser.parse_args(argv)
    try:
        from napari_atombench.core.io import FileFormatError as project_error
    except ImportError:  # the code before the fix: ValueError was its error type
        project_error = ValueError
    import h5py, tifffile, rsciio.mrc, rsciio.tia, rsciio.emd, rsciio.digitalmicrograph  # noqa: F401,E401 (import before the limit)

    fired = []

    def on_alarm(signum, frame):
        fired.append(True)
        raise TimeoutError("hang")

    signal.signal(signal.SIGALRM, on_alarm)
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    table: dict[str, Counter] = defaultdict(Counter)
    with tempfile.TemporaryDirectory() as tmp:
        items = generate(tmp)
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (int(args.memory_gb * 2**30), hard))
        for item in items:
            row = table[item.kind]
            row["files"] += 1
            start = time.perf_counter()
            fired.clear()
            outcome, message = "ok", ""
            try:
                signal.setitimer(signal.ITIMER_REAL, args.timeout_s)
                try:
                    read(item)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            except TimeoutError:
                outcome = "hang"
            except MemoryError:
                outcome = "over-memory"
            except (project_error, FileNotFoundError) as exc:
                outcome, message = "project error", str(exc)
            except Exception as exc:  # noqa: BLE001 -- counting, not handling
                outcome, message = "other exception", f"{type(exc).__name__}: {exc}"
            if fired:  # a reader's own catch-all may have swallowed the alarm
                outcome, message = "hang", ""
            if "MemoryError" in message or "Unable to allocate" in message:
                outcome = "over-memory"
            row[outcome] += 1
            if outcome == "ok" and item.variant.startswith(MUST_REFUSE):
                row["hostile accepted"] += 1
            if message and not names_the_file(item, message):
                row["no filename"] += 1
            if outcome == args.show:
                print(f"{item.path.name} [{item.variant}] {time.perf_counter() - start:.1f}s {message[:200]}")
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    columns = ["files", "ok", "project error", "other exception", "hang", "over-memory", "no filename",
               "hostile accepted"]
    print("| class | " + " | ".join(columns) + " |")
    print("|" + "---|" * (len(columns) + 1))
    total = Counter()
    for kind, row in table.items():
        total.update(row)
        print(f"| {kind} | " + " | ".join(str(row[c]) for c in columns) + " |")
    print("| **all** | " + " | ".join(str(total[c]) for c in columns) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
