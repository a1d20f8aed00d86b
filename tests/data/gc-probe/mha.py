"""A minimal MetaImage (.mha, data in the same file) reader and writer in pure NumPy.

The same file is copied into every example's build context (contexts cannot share files).
The header is kept as read, so that a result written with ``like=`` keeps the input's geometry
(Offset, ElementSpacing, TransformMatrix) untouched.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

TYPES = {"MET_CHAR": "i1", "MET_UCHAR": "u1", "MET_SHORT": "i2", "MET_USHORT": "u2", "MET_INT": "i4",
         "MET_UINT": "u4", "MET_LONG_LONG": "i8", "MET_ULONG_LONG": "u8", "MET_FLOAT": "f4",
         "MET_DOUBLE": "f8"}
GEOMETRY = ("Offset", "Position", "Origin", "CenterOfRotation", "AnatomicalOrientation", "ElementSpacing",
            "TransformMatrix", "Rotation", "Orientation")


def read_header(path: str | Path) -> tuple[dict[str, str], int]:
    """The header (key -> text) of a .mha file and the byte offset where its data starts."""
    header: dict[str, str] = {}
    position = 0
    with open(path, "rb") as file:
        for line in file:
            key, _, value = line.decode("ascii").partition("=")
            header[key.strip()] = value.strip()
            position += len(line)
            if key.strip() == "ElementDataFile":
                break
    if header.get("ElementDataFile") != "LOCAL":
        raise ValueError(f"{path}: only .mha files with the data inside (ElementDataFile = LOCAL)")
    return header, position


def shape_of(header: dict[str, str]) -> tuple[int, ...]:
    """The array shape (z, y, x[, channel]) that a header describes."""
    shape = [int(n) for n in reversed(header["DimSize"].split())]
    channels = int(header.get("ElementNumberOfChannels", "1"))
    return tuple(shape + [channels] if channels > 1 else shape)


def read(path: str | Path) -> tuple[np.ndarray, dict[str, str]]:
    """The voxels (z, y, x[, channel]) and the header (key -> text) of a .mha file."""
    header, position = read_header(path)
    msb = header.get("BinaryDataByteOrderMSB", header.get("ElementByteOrderMSB", "False")) == "True"
    dtype = np.dtype(TYPES[header["ElementType"]]).newbyteorder(">" if msb else "<")
    data = Path(path).read_bytes()[position:]
    if header.get("CompressedData", "False") == "True":
        data = zlib.decompress(data)
    shape = shape_of(header)
    array = np.frombuffer(data, dtype=dtype, count=int(np.prod(shape))).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False), header


def write(path: str | Path, array: np.ndarray, like: dict[str, str], *, compress: bool = True) -> None:
    """Write ``array`` (same grid as the image whose header is ``like``) as a .mha file."""
    array = np.ascontiguousarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    ndim = int(like["NDims"])
    element_type = next(k for k, v in TYPES.items() if np.dtype(v) == array.dtype.newbyteorder("<"))
    data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    if compress:
        data = zlib.compress(data, 1)
    lines = ["ObjectType = Image", f"NDims = {ndim}", "BinaryData = True", "BinaryDataByteOrderMSB = False",
             f"CompressedData = {compress}"]
    if compress:
        lines.append(f"CompressedDataSize = {len(data)}")
    lines += [f"{key} = {like[key]}" for key in GEOMETRY if key in like]
    lines.append("DimSize = " + " ".join(str(n) for n in reversed(array.shape[:ndim])))
    if array.ndim > ndim:
        lines.append(f"ElementNumberOfChannels = {array.shape[-1]}")
    lines += [f"ElementType = {element_type}", "ElementDataFile = LOCAL"]
    Path(path).write_bytes(("\n".join(lines) + "\n").encode("ascii") + data)
