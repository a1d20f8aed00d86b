"""The container contract (grand-challenge.org's layout): what a container finds in /input and
must leave in /output, one run per case.

- ``/input/inputs.json``: one entry per input socket with the fields grand-challenge.org writes
  (``socket`` and its legacy twin ``interface``, ``value``, ``file``, ``image``, ``pk``; see
  :mod:`medarena.platform.gc_compat`).
- An image socket is exactly one image file in the folder ``<relative_path>/`` (inputs are
  written as ``<image pk>.mha``); a JSON socket is the file ``<relative_path>``.
"""

from __future__ import annotations

import json
import math
import os
import stat
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import SimpleITK as sitk

from medarena.evaluators.image import Image
from medarena.platform import gc_compat
from medarena.platform.definitions import (  # noqa: F401 - defined there, long imported from here
    IMAGE_KINDS,
    JSON_KINDS,
    OUTPUT_IMAGE_SUFFIXES,
    Socket,
    SocketKind,
)
from medarena.platform.loaders.images import read_image

_IMAGE_IO = {".nii.gz": "NiftiImageIO", ".tiff": "TIFFImageIO", ".mha": "MetaImageIO", ".tif": "TIFFImageIO"}
# Generous bounds: a small compressed file can declare a grid that would exhaust the worker's memory.
MAX_OUTPUT_VOXELS = 2**31  # an image output without an expected grid
MAX_OUTPUT_BYTES = 16 * 2**30  # all output files together, unless the caller gives the run's limit
MAX_OUTPUT_DEPTH = 32
MAX_OUTPUT_ENTRIES = 10_000


class MissingOutput(ValueError):
    """An output socket the container did not write."""


class InvalidOutput(ValueError):
    """An output socket whose file cannot be used (unreadable, duplicated, wrong grid, ...)."""


class OutputTooLarge(InvalidOutput):
    """More in /output (bytes or entries) than a run may leave."""


# ---------------------------------------------------------------------------------------------
# inputs


def write_inputs(input_dir: Path, sockets: list[Socket], values: Mapping[str, Any], *,
                 compress: bool = False, case: str | None = None, scope: str = "") -> list[dict[str, Any]]:
    """Write one case's inputs in the contract layout under ``input_dir`` (created if needed);
    return the ``inputs.json`` entries.

    ``values`` maps each socket slug to an :class:`Image` (image kinds) or a JSON-serializable
    value (JSON kinds). Everything written is world-readable, since the container's user is the
    image's own, not the caller's. With ``case`` (and ``scope``, e.g. challenge/phase), the image
    and value ids are stable, and an input image is named ``<case>.mha`` in ``inputs.json``.
    """
    input_dir = Path(input_dir)
    input_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(input_dir, 0o755)
    entries = []
    for socket in sockets:
        if socket.slug not in values:
            raise ValueError(f"input socket {socket.slug!r}: no value given")
        value = values[socket.slug]
        target = input_dir / socket.relative_path
        if socket.is_image:
            if not isinstance(value, Image):
                raise ValueError(f"input socket {socket.slug!r}: expected an Image, "
                                 f"got {type(value).__name__}")
            _make_dirs(input_dir, target)
            image_pk = gc_compat.image_pk(scope, case, socket.slug) if case is not None else str(uuid.uuid4())
            _write_mha(value, target / f"{image_pk}.mha", compress=compress)
            name = f"{case}.mha" if case is not None else f"{image_pk}.mha"
            entries.append(gc_compat.socket_value(socket, image={"pk": image_pk, "name": name},
                                                  pk=gc_compat.value_pk(scope, case, socket.slug)))
        else:
            _make_dirs(input_dir, target.parent)
            try:
                text = json.dumps(value, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"input socket {socket.slug!r}: value is not JSON ({exc})") from None
            target.write_text(text)
            os.chmod(target, 0o644)
            entries.append(gc_compat.socket_value(socket, value=value,
                                                  pk=gc_compat.value_pk(scope, case, socket.slug)))
    entries = gc_compat.sort_values(entries)
    (input_dir / "inputs.json").write_text(json.dumps(entries, indent=2))
    os.chmod(input_dir / "inputs.json", 0o644)
    return entries


def _make_dirs(root: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    while folder != root and root in folder.parents:
        os.chmod(folder, 0o755)
        folder = folder.parent


def image_to_sitk(image: Image) -> sitk.Image:
    """An :class:`Image` as a SimpleITK image (spacing back in ITK order, components as a vector)."""
    array = np.asarray(image.array)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    elif array.dtype == np.float16:
        array = array.astype(np.float32)
    is_vector = array.ndim == image.ndim + 1
    if array.ndim not in (image.ndim, image.ndim + 1):
        raise ValueError(f"an array of shape {array.shape} does not fit a {image.ndim}D image")
    result = sitk.GetImageFromArray(array, isVector=is_vector)
    result.SetSpacing([float(s) for s in reversed(image.spacing)])
    result.SetOrigin([float(o) for o in image.origin])
    result.SetDirection([float(d) for d in image.direction])
    return result


def _write_mha(image: Image, path: Path, *, compress: bool) -> None:
    sitk.WriteImage(image_to_sitk(image), str(path), useCompression=compress)
    os.chmod(path, 0o644)


# ---------------------------------------------------------------------------------------------
# outputs


def read_outputs(output_dir: Path, sockets: list[Socket], *,
                 expected_geometry: Image | Mapping[str, Image] | None = None,
                 max_bytes: int = MAX_OUTPUT_BYTES) -> dict[str, Any]:
    """Read and check every output socket of one run: slug -> :class:`Image` or JSON value.

    ``expected_geometry`` is the grid every image output must sample (one Image for all, or one
    per slug). Raises :class:`MissingOutput` or :class:`InvalidOutput` (:class:`OutputTooLarge`
    beyond ``max_bytes`` or :data:`MAX_OUTPUT_ENTRIES`) for the first socket that fails, with a
    one-line message naming the socket and the file as the container saw it (``/output/...``).
    """
    output_dir = Path(output_dir)
    _check_tree(output_dir, max_bytes)
    results: dict[str, Any] = {}
    for socket in sockets:
        if socket.is_image:
            expected = (expected_geometry.get(socket.slug) if isinstance(expected_geometry, Mapping)
                        else expected_geometry)
            results[socket.slug] = _read_image_output(output_dir, socket, expected)
        else:
            results[socket.slug] = _read_json_output(output_dir, socket)
    return results


def _shown(socket: Socket, name: str | None = None) -> str:
    return shown_output_path(f"{socket.relative_path}/{name}" if name else socket.relative_path)


def _check_tree(output_dir: Path, max_bytes: int) -> None:
    """Walk the whole output folder before anything in it is read, iteratively and on bytes names
    (a container may leave any bytes, any depth, any count): refuse links, fifos, sockets and
    devices (a link made in the container points into the host's file system when the host
    follows it), hard links, entries their owner cannot read, names that are not UTF-8, folders
    nested deeper than :data:`MAX_OUTPUT_DEPTH`, more than :data:`MAX_OUTPUT_ENTRIES` entries and
    more than ``max_bytes`` of (apparent) file size."""
    root = os.fsencode(output_dir)
    _check_entry(b"", os.lstat(root))
    stack, entries, total = [(root, b"", 0)], 0, 0
    while stack:
        folder, relative, depth = stack.pop()
        try:
            with os.scandir(folder) as found:
                for entry in found:
                    entries += 1
                    if entries > MAX_OUTPUT_ENTRIES:
                        raise OutputTooLarge(f"/output holds more than {MAX_OUTPUT_ENTRIES} files and folders")
                    path = relative + b"/" + entry.name if relative else entry.name
                    info = entry.stat(follow_symlinks=False)
                    _check_entry(path, info)
                    if stat.S_ISDIR(info.st_mode):
                        if depth + 1 > MAX_OUTPUT_DEPTH:
                            raise InvalidOutput(f"{shown_output_path(path)}: folders nested more than "
                                                f"{MAX_OUTPUT_DEPTH} deep")
                        stack.append((entry.path, path, depth + 1))
                        continue
                    total += info.st_size
                    if info.st_size > max_bytes:
                        raise OutputTooLarge(f"{shown_output_path(path)}: {_size(info.st_size)}, more than the "
                                             f"output limit of {_size(max_bytes)}")
                    if total > max_bytes:
                        raise OutputTooLarge(f"the files in /output add up to more than the output limit of "
                                             f"{_size(max_bytes)}")
        except OSError as exc:
            raise InvalidOutput(f"{shown_output_path(relative)}: cannot be read ({exc.strerror})") from None


def _check_entry(path: bytes, info: os.stat_result) -> None:
    shown = shown_output_path(path)
    try:
        path.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidOutput(f"{shown}: a file name that is not UTF-8") from None
    mode = info.st_mode
    if stat.S_ISLNK(mode):
        raise InvalidOutput(f"{shown}: a symbolic link; outputs must be regular files and folders")
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise InvalidOutput(f"{shown}: not a regular file or folder (a fifo, socket or device); outputs must be "
                            "regular files and folders")
    if stat.S_ISREG(mode) and info.st_nlink > 1:
        raise InvalidOutput(f"{shown}: a hard link ({info.st_nlink} names for one file); outputs must be "
                            "plain files")
    needed = stat.S_IRUSR | (stat.S_IXUSR if stat.S_ISDIR(mode) else 0)
    if mode & needed != needed:
        raise InvalidOutput(f"{shown}: not readable by its owner (mode {stat.S_IMODE(mode):03o}); "
                            "leave outputs readable")


def shown_output_path(relative: bytes | str) -> str:
    """``/output/<relative>`` as one printable line: bytes that are not UTF-8 as ``\\xNN``,
    control and other invisible characters escaped, at most 200 characters."""
    if isinstance(relative, str):
        relative = os.fsencode(relative)
    text = escape_text(relative.decode("utf-8", errors="backslashreplace"))
    text = "/output" + ("/" + text if text else "")
    return text if len(text) <= 200 else text[:197] + "..."


def escape_text(text: str) -> str:
    """``text`` with every character that is not printable (controls, separators other than the
    space, lone surrogates) written as a Python escape, so that it is one visible line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape", errors="backslashreplace").decode("ascii")
                   for c in text)


def _size(n: int) -> str:
    return f"{n} bytes" if n < 2**20 else f"{n / 2**20:.0f} MB" if n < 2**30 else f"{n / 2**30:.1f} GB"


def _read_json_output(output_dir: Path, socket: Socket) -> Any:
    path = output_dir / socket.relative_path
    where = f"output socket {socket.slug!r}: {_shown(socket)}"
    if not path.is_file():
        raise MissingOutput(f"{where}: missing" + (" (a folder, not a file)" if path.is_dir() else ""))

    def reject_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a valid JSON value")

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise InvalidOutput(f"{where}: not a regular file")
            data = file.read()
    except OSError as exc:
        raise InvalidOutput(f"{where}: cannot be read ({exc.strerror})") from None
    try:
        return json.loads(data, parse_constant=reject_constant)
    except json.JSONDecodeError as exc:
        raise InvalidOutput(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
                            ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidOutput(f"{where}: not valid JSON ({exc})") from None


def _image_suffix(name: str) -> str | None:
    lower = name.lower()
    return next((s for s in OUTPUT_IMAGE_SUFFIXES if lower.endswith(s)), None)


def _read_image_output(output_dir: Path, socket: Socket, expected: Image | None) -> Image:
    folder = output_dir / socket.relative_path
    where = f"output socket {socket.slug!r}"
    if not folder.is_dir():
        raise MissingOutput(f"{where}: {_shown(socket)}/ missing")
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    images = [n for n in names if _image_suffix(n)]
    if not images and (mhd := next((n for n in names if n.lower().endswith(".mhd")), None)):
        raise InvalidOutput(f"{where}: {_shown(socket, mhd)}: .mhd is not accepted (its voxels would be "
                            f"read from another file); write one .mha instead")
    if not images:
        found = f" (found only: {escape_text(', '.join(names[:5]))})" if names else ""
        raise MissingOutput(f"{where}: no image file (.mha, .tif, .tiff, .nii.gz) in "
                            f"{_shown(socket)}/{found}")
    if len(images) > 1:
        raise InvalidOutput(f"{where}: expected exactly one image file in {_shown(socket)}/, "
                            f"found {len(images)}: {escape_text(', '.join(images[:5]))}")
    name = images[0]
    where = f"{where}: {_shown(socket, name)}"
    path = folder / name
    try:
        if name.lower().endswith(".mha"):
            _check_local_data(path)
        _check_header(where, socket, _read_header(path), expected)  # before any voxel is read
        if name.lower().endswith(".mha"):
            _check_mha_data_size(path)
        image = read_image(path)
    except InvalidOutput:
        raise
    except (ValueError, RuntimeError, OSError) as exc:
        reason = str(exc).splitlines()[0].removeprefix(f"{path}: ").replace(str(path), _shown(socket, name))
        raise InvalidOutput(f"{where}: {reason[:300]}") from None
    _check_values(where, socket, image)
    return image


def _check_local_data(path: Path) -> None:
    """A MetaImage may keep its voxels in another file (``ElementDataFile = /some/path``), which
    the host would read: only ``ElementDataFile = LOCAL`` (voxels after the header) is accepted."""
    with open(path, "rb", opener=lambda p, flags: os.open(p, flags | os.O_NOFOLLOW)) as file:
        head = file.read(1 << 20)
    # the first line naming the field, in any case, must be the header's last, exact field
    line = next((line for line in head.split(b"\n") if b"elementdatafile" in line.lower()), None)
    key, _, value = (line or b"").partition(b"=")
    if key.strip() != b"ElementDataFile" or value.strip().lower() != b"local":
        raise ValueError("a MetaImage must hold its voxels itself (ElementDataFile = LOCAL)")


# bytes per component of each MetaImage ElementType (MetaIO's MET_ValueTypeSize, ITK 5.x)
_MET_SIZES = {b"MET_CHAR": 1, b"MET_UCHAR": 1, b"MET_SHORT": 2, b"MET_USHORT": 2, b"MET_INT": 4, b"MET_UINT": 4,
              b"MET_LONG": 4, b"MET_ULONG": 4, b"MET_LONG_LONG": 8, b"MET_ULONG_LONG": 8, b"MET_FLOAT": 4,
              b"MET_DOUBLE": 8}


def _check_mha_data_size(path: Path) -> None:
    """A MetaImage cut short (a container stopped while writing): say by how much, from the
    header's own sizes (DimSize x ElementNumberOfChannels x the ElementType's size, or
    CompressedDataSize), instead of the reader's internal message."""
    with open(path, "rb", opener=lambda p, flags: os.open(p, flags | os.O_NOFOLLOW)) as file:
        head = file.read(1 << 16)
        size = os.fstat(file.fileno()).st_size
    fields, offset = {}, 0
    for line in head.split(b"\n"):
        offset += len(line) + 1
        key, _, value = line.partition(b"=")
        fields[key.strip().lower()] = value.strip()
        if key.strip().lower() == b"elementdatafile":
            break
    else:
        return  # no end of header in the first 64 KiB: the reader says what is wrong
    try:
        if fields.get(b"compresseddata", b"false").lower() == b"true":
            if b"compresseddatasize" not in fields:
                return
            expected = int(fields[b"compresseddatasize"])
        else:
            dims = [int(d) for d in fields[b"dimsize"].split()]
            expected = (math.prod(dims) * int(fields.get(b"elementnumberofchannels", b"1"))
                        * _MET_SIZES[fields[b"elementtype"].upper()])
    except (KeyError, ValueError):
        return  # a header the reader refuses with its own message
    if size - offset < expected:
        raise ValueError(f"the file is truncated: {max(size - offset, 0)} of {expected} bytes of voxel data")


class _Header(NamedTuple):
    shape: tuple[int, ...]  # array order, as Image.shape
    spacing: tuple[float, ...]  # array order
    origin: tuple[float, ...]
    direction: tuple[float, ...]
    components: int


def _read_header(path: Path) -> _Header:
    reader = sitk.ImageFileReader()
    reader.SetImageIO(_IMAGE_IO[_image_suffix(path.name) or ""])
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise ValueError(f"cannot read image ({lines[-1] if lines else 'unknown error'})") from None
    return _Header(tuple(reversed(reader.GetSize())), tuple(reversed(reader.GetSpacing())), reader.GetOrigin(),
                   reader.GetDirection(), reader.GetNumberOfComponents())


def _check_header(where: str, socket: Socket, header: _Header, expected: Image | None) -> None:
    ndim, components = len(header.shape), header.components
    if ndim not in (2, 3):
        raise InvalidOutput(f"{where}: a {ndim}D image; only 2D and 3D images are supported")
    if socket.kind == "displacement-field":
        if components != ndim:
            raise InvalidOutput(f"{where}: a displacement field needs {ndim} components per voxel, "
                                f"found {components}")
    elif components != 1:
        raise InvalidOutput(f"{where}: expected a scalar image, found {components} components per voxel")
    if expected is None:
        if math.prod(header.shape) > MAX_OUTPUT_VOXELS:
            raise InvalidOutput(f"{where}: shape {_fmt(header.shape)} has more than the "
                                f"{MAX_OUTPUT_VOXELS} voxels accepted")
        return
    grids = (("shape", header.shape, expected.shape), ("spacing", header.spacing, expected.spacing),
             ("origin", header.origin, expected.origin), ("direction", header.direction, expected.direction))
    # the tolerance of Image.same_geometry
    if header.shape != expected.shape or not all(np.allclose(got, want, atol=1e-4) for _, got, want in grids[1:]):
        differences = [f"{label} {_fmt(got)} instead of {_fmt(want)}" for label, got, want in grids
                       if not _close(got, want)]
        raise InvalidOutput(f"{where}: not on the input's grid: {'; '.join(differences)}")


def _check_values(where: str, socket: Socket, image: Image) -> None:
    array = image.array
    if array.dtype.kind == "c":
        raise InvalidOutput(f"{where}: complex voxel values are not supported")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InvalidOutput(f"{where}: {int((~np.isfinite(array)).sum())} voxels are NaN or infinite")
    if socket.kind == "segmentation":
        if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
            raise InvalidOutput(f"{where}: a segmentation must hold integer labels, found fractional values")
        if array.size and array.min() < 0:
            raise InvalidOutput(f"{where}: a segmentation must hold labels >= 0, found {array.min()}")


def _close(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(math.isclose(x, y, abs_tol=1e-4) for x, y in zip(a, b, strict=True))


def _fmt(values: tuple) -> str:
    return "(" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values) + ")"
