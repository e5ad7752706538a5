"""Write minimal Gatan DM3/DM4 files (one calibrated 2D image) for reader tests.

The tag-file layout: a big-endian header (version, size, byte order), then a
root tag group. Each tag is a type byte (20 group, 21 data), a name, in DM4 an
8-byte size, and for data a '%%%%' delimiter followed by an "info array" that
encodes the type, then the value in the file's byte order (little here).
DM4 widens every count and info entry from 4 to 8 bytes.
"""

from __future__ import annotations

import struct

import numpy as np

_SIMPLE = {"int32": 3, "uint16": 4, "float32": 6, "float64": 7}
_DM_DATA_TYPE = {np.dtype("float32"): 2, np.dtype("int16"): 1, np.dtype("uint16"): 10, np.dtype("float64"): 12}


class _Writer:
    def __init__(self, version: int):
        self.version = version
        self.word = ">q" if version == 4 else ">l"

    def count(self, value: int) -> bytes:
        return struct.pack(self.word, value)

    def tag(self, kind: int, name: str, payload: bytes) -> bytes:
        encoded = name.encode("latin-1")
        head = struct.pack(">bH", kind, len(encoded)) + encoded
        if self.version == 4:
            head += struct.pack(">q", len(payload))
        return head + payload

    def group(self, name: str, children: list[bytes]) -> bytes:
        body = struct.pack(">bb", 0, 1) + self.count(len(children)) + b"".join(children)
        return self.tag(20, name, body)

    def simple(self, name: str, value, kind: str) -> bytes:
        info = self.count(1) + self.count(_SIMPLE[kind])
        data = np.asarray([value], dtype=np.dtype(kind).newbyteorder("<")).tobytes()
        return self.tag(21, name, b"%%%%" + info + data)

    def array(self, name: str, values: np.ndarray, kind: str) -> bytes:
        values = np.ascontiguousarray(values, dtype=np.dtype(kind).newbyteorder("<")).ravel()
        info = self.count(3) + self.count(20) + self.count(_SIMPLE[kind]) + self.count(values.size)
        return self.tag(21, name, b"%%%%" + info + values.tobytes())

    def string(self, name: str, text: str) -> bytes:  # DM stores strings as uint16 arrays
        return self.array(name, np.frombuffer(text.encode("utf-16-le"), dtype="<u2"), "uint16")


def write_dm(path, image: np.ndarray, *, scale: float, units: str, version: int = 3) -> None:
    """Write ``image`` (2D) with pixel size ``scale`` in ``units`` as a DM3 or DM4 file."""
    image = np.asarray(image)
    rows, cols = image.shape
    w = _Writer(version)
    dimension = [
        w.group("", [w.simple("Origin", 0.0, "float32"), w.simple("Scale", scale, "float32"), w.string("Units", units)])
        for _ in range(2)
    ]
    calibrations = w.group(
        "Calibrations",
        [
            w.group("Brightness", [w.simple("Origin", 0.0, "float32"), w.simple("Scale", 1.0, "float32"), w.string("Units", "counts")]),
            w.group("Dimension", dimension),
        ],
    )
    data_kind = {np.dtype("float32"): "float32", np.dtype("uint16"): "uint16", np.dtype("float64"): "float64"}[image.dtype]
    image_data = w.group(
        "ImageData",
        [
            calibrations,
            w.array("Data", image, data_kind),
            w.simple("DataType", _DM_DATA_TYPE[image.dtype], "int32"),
            w.group("Dimensions", [w.simple("", cols, "int32"), w.simple("", rows, "int32")]),
        ],
    )
    image_group = w.group("", [image_data, w.group("ImageTags", []), w.string("Name", "test image")])
    root_children = [w.group("ImageList", [image_group])]
    root = struct.pack(">bb", 0, 1) + w.count(len(root_children)) + b"".join(root_children)
    size_field = struct.pack(">q" if version == 4 else ">l", len(root))
    header = struct.pack(">l", version) + size_field + struct.pack(">l", 1)  # 1 = little-endian data
    with open(path, "wb") as handle:
        handle.write(header + root + b"\0" * 8)


def write_mrc(path, image: np.ndarray, *, pixel_size_A: float) -> None:
    """Write a 2D float32 image as a minimal MRC2014 file (1024-byte header, mode 2)."""
    image = np.ascontiguousarray(image, dtype="<f4")
    rows, cols = image.shape
    header = np.zeros(256, dtype="<i4")
    header[0:3] = (cols, rows, 1)  # nx, ny, nz
    header[3] = 2  # mode 2: float32
    header[7:10] = (cols, rows, 1)  # mx, my, mz (sampling)
    floats = header.view("<f4")
    floats[10:13] = (cols * pixel_size_A, rows * pixel_size_A, pixel_size_A)  # cell lengths in Å
    floats[13:16] = 90.0
    header[16:19] = (1, 2, 3)  # mapc, mapr, maps
    floats[19:22] = (image.min(), image.max(), image.mean())
    raw = bytearray(header.tobytes())
    raw[208:212] = b"MAP "
    raw[212:216] = bytes([0x44, 0x44, 0, 0])  # little-endian machine stamp
    with open(path, "wb") as handle:
        handle.write(bytes(raw) + image.tobytes())
