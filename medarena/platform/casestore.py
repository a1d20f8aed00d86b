"""The case store: zarr v3 stores of inputs, references and predictions.

Layout under the store root (a local folder, or an fsspec URL such as ``s3://bucket/medarena``)::

    inputs/<challenge>/<phase>.zarr/<case>/<socket>          what algorithms receive
    references/<challenge>/<phase>.zarr/<case>/<socket>      never mounted into a container
    predictions/<challenge>/<phase>/<submission>.zarr/<case>/<socket>

An image socket is a zarr array, (z, y, x) or (y, x) (vector images with a trailing component
axis), chunked and compressed with blosc-zstd, with ``spacing`` (array order), ``origin`` and
``direction`` (ITK order), ``modality`` and ``checksum`` in its attributes. A JSON socket is a
zarr group whose attribute ``value`` holds the JSON value.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, BloscShuffle

from medarena.evaluators.image import Image

COMPRESSOR = BloscCodec(cname="zstd", clevel=3, shuffle=BloscShuffle.bitshuffle)


def chunk_shape(shape: tuple[int, ...], ndim: int) -> tuple[int, ...]:
    """About 64^3..128^3 voxels for volumes, 512^2 for 2D images; components kept whole."""
    edge = 128 if ndim == 3 and math.prod(shape[:3]) >= 256**3 else 64 if ndim == 3 else 512
    spatial = tuple(min(edge, s) for s in shape[:ndim])
    return spatial + tuple(shape[ndim:])


def image_checksum(image: Image) -> str:
    """sha256 over the voxel bytes, dtype, shape and geometry."""
    h = hashlib.sha256()
    arr = np.ascontiguousarray(image.array)
    h.update(f"{arr.dtype.str}{arr.shape}{image.spacing}{image.origin}{image.direction}".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def store_path(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


def is_local(url: str) -> bool:
    """A plain folder path (not an fsspec URL such as ``s3://`` or ``file://``)."""
    return "://" not in url


def open_store(url: str, mode: str = "a") -> zarr.Group:
    options = {"auto_mkdir": True} if url.startswith("file://") else None
    return zarr.open_group(url, mode=mode, zarr_format=3, storage_options=options)


def exists(url: str) -> bool:
    """Whether a file exists at a path or fsspec URL."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    return fs.exists(path)


def has_case(url: str, case: str) -> bool:
    try:
        return case in open_store(url, mode="r")
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        return False


def delete_cases(url: str, cases: list[str]) -> None:
    group = open_store(url)
    for case in cases:
        if case in group:
            del group[case]


def write_value(group: zarr.Group, socket: str, value: Any) -> str:
    """Write an Image as an array or a JSON value as attributes; return its checksum."""
    if isinstance(value, Image):
        arr = np.ascontiguousarray(value.array)
        checksum = image_checksum(value)
        # the attributes go in with the array's metadata: one write of zarr.json, not two
        node = group.create_array(socket, shape=arr.shape, dtype=arr.dtype,
                                  chunks=chunk_shape(arr.shape, value.ndim),
                                  compressors=[COMPRESSOR], overwrite=True, attributes={
                                      "spacing": list(map(float, value.spacing)),
                                      "origin": list(map(float, value.origin)),
                                      "direction": list(map(float, value.direction)),
                                      "modality": value.modality, "checksum": checksum, "kind": "image"})
        node[...] = arr
        return checksum
    checksum = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()
    group.create_group(socket, overwrite=True, attributes={"kind": "json", "value": value, "checksum": checksum})
    return checksum


def read_value(group: zarr.Group, socket: str, lazy_above: int | None = None) -> Any:
    """An Image or the JSON value of a socket. An image of more than ``lazy_above`` voxels keeps
    its zarr array (read chunk by chunk by whoever uses it); a smaller one is read into memory."""
    node = group[socket]
    attrs = dict(node.attrs)
    if attrs.get("kind") == "json":
        return attrs["value"]
    lazy = lazy_above is not None and node.size > lazy_above
    return Image(array=node if lazy else node[...], spacing=tuple(attrs["spacing"]), origin=tuple(attrs["origin"]),
                 direction=tuple(attrs["direction"]), modality=attrs.get("modality", ""))


def read_case(store_url: str, case: str, sockets: list[str] | None = None,
              lazy_above: int | None = None) -> dict[str, Any]:
    group = open_store(store_url, mode="r")[case]
    names = sockets if sockets is not None else [name for name, _ in group.members()]
    return {name: read_value(group, name, lazy_above) for name in names if name in group}


def write_case(store_url: str, case: str, values: Mapping[str, Any]) -> dict[str, str]:
    """Write one case's sockets (replacing the case group); return socket -> checksum."""
    group = open_store(store_url).require_group(case)
    return {socket: write_value(group, socket, value) for socket, value in values.items()}


def describe(value: Any) -> dict[str, Any]:
    """What the database keeps about a socket value: shape, spacing, modality (no voxels)."""
    if isinstance(value, Image):
        return {"kind": "image", "shape": list(value.array.shape), "spacing": list(value.spacing),
                "dtype": str(value.array.dtype), "modality": value.modality}
    return {"kind": "json"}


def combined_checksum(checksums: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(dict(sorted(checksums.items()))).encode()).hexdigest()


def move_cases(staging_url: str, url: str, cases: list[str]) -> None:
    """Move finished case groups from a staging store into the final store (local folders)."""
    import shutil
    from pathlib import Path

    target = open_store(url)  # creates the store's metadata when new
    del target
    for case in cases:
        src, dst = Path(staging_url) / case, Path(url) / case
        if dst.exists():
            shutil.rmtree(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(src), str(dst))
