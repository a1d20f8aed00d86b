"""Ingest an organizer's test set into the case store.

Source layout: one folder per socket of the challenge's interface (inputs and references), one
entry per case, named by the case::

    SOURCE/<socket-slug>/<case>.nii.gz | .mha | .mhd | .nrrd | .png | .tif   an image
    SOURCE/<socket-slug>/<case>/                                             a DICOM series
    SOURCE/<socket-slug>/<case>.json                                         a JSON socket

Every case is read and checked before anything is written; cases are written to a staging store
and moved into place only when all are good, and the database rows are added in one transaction.
DICOM headers are never copied: only voxels, geometry and the modality reach the store. The rules
a source must follow, with their messages, are listed in the README ("Ingest rules").
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from medarena.errors import InvalidInput
from medarena.evaluators.image import Image
from medarena.platform import casestore
from medarena.platform.challenges import ChallengeDefinition
from medarena.platform.definitions import Socket
from medarena.platform.loaders.images import read_image

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr", ".png", ".tif", ".tiff",
                  ".jpg", ".jpeg", ".bmp", ".dcm")
# A case name becomes a folder of the store and a database key: ASCII letters, digits, '-', '_'
# and '.', not starting with '.'.
CASE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
MAX_CASE_NAME = 128
MAX_CASES = 100_000
MAX_JSON_BYTES = 16 << 20
LABEL_MAP_KINDS = ("segmentation",)


class IngestError(InvalidInput, ValueError):
    """The source cannot be ingested; the message names the folder, case or socket."""


def case_name(path: Path) -> str:
    name = path.name
    for suffix in sorted((*IMAGE_SUFFIXES, ".json"), key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def check_case_name(name: str) -> None:
    """Raise ValueError unless ``name`` may name a case (see CASE_NAME)."""
    if not name:
        raise ValueError("the case name is empty")
    if len(name) > MAX_CASE_NAME:
        raise ValueError(f"the case name has {len(name)} characters; at most {MAX_CASE_NAME} are allowed")
    if not CASE_NAME.match(name):
        raise ValueError(f"the case name {name!r} is not allowed: use only letters, digits, '-', '_' and '.', "
                         f"not starting with '.'")


def _check_entry(item: Path, socket: Socket) -> None:
    try:
        mode = item.stat().st_mode
    except OSError as exc:
        raise IngestError(f"{item}: cannot be read ({exc.strerror})") from None
    if stat.S_ISDIR(mode):
        if not socket.is_image:
            raise IngestError(f"{item}: a folder, but the {socket.kind} socket {socket.slug!r} takes one .json "
                              f"file per case")
        return
    if not stat.S_ISREG(mode):  # a FIFO or device would block or never end
        raise IngestError(f"{item}: not a regular file or folder")
    suffixes = (".json",) if socket.is_json else IMAGE_SUFFIXES
    if not item.name.lower().endswith(suffixes):
        raise IngestError(f"{item}: not a file the {socket.kind} socket {socket.slug!r} takes "
                          f"({', '.join(suffixes)}{'' if socket.is_json else ', or a DICOM folder'})")


def scan(source: Path, sockets: list[Socket]) -> dict[str, dict[str, Path]]:
    """case -> socket slug -> source path, checking every case has every socket."""
    if not source.is_dir():
        raise IngestError(f"{source}: not a folder")
    entries: dict[str, dict[str, Path]] = {}
    for socket in sockets:
        folder = source / socket.slug
        if not folder.is_dir():
            raise IngestError(f"{folder}: missing folder for socket {socket.slug!r}")
        items = [p for p in sorted(folder.iterdir()) if not p.name.startswith(".")
                 and not p.name.lower().endswith((".raw", ".zraw"))]
        if not items:
            raise IngestError(f"{folder}: empty folder for socket {socket.slug!r}")
        if len(items) > MAX_CASES:
            raise IngestError(f"{folder}: {len(items)} entries; at most {MAX_CASES} cases can be ingested at once")
        for item in items:
            _check_entry(item, socket)
            name = case_name(item)
            try:
                check_case_name(name)
            except ValueError as exc:
                raise IngestError(f"{folder}: {item.name!r}: {exc}") from None
            case = entries.setdefault(name, {})
            if socket.slug in case:
                raise IngestError(f"{folder}: two files for case {name!r}: "
                                  f"{case[socket.slug].name} and {item.name}")
            case[socket.slug] = item
    by_folded: dict[str, str] = {}
    for name in sorted(entries):
        other = by_folded.setdefault(name.lower(), name)
        if other != name:  # one folder on a case-insensitive file system or object store
            raise IngestError(f"{source}: case names {other!r} and {name!r} differ only in letter case")
    for case, found in entries.items():
        missing = [s.slug for s in sockets if s.slug not in found]
        if missing:
            raise IngestError(f"case {case!r}: no file for socket(s) {', '.join(missing)} in {source}")
    return dict(sorted(entries.items()))


def read_source(path: Path, socket: Socket) -> Any:
    if socket.is_json:
        return _read_json(path)
    try:
        image = read_image(path)
    except (ValueError, RuntimeError, OSError) as exc:
        raise IngestError(f"{path}: cannot read image ({str(exc).splitlines()[0]})") from None
    modality = _dicom_modality(path) if path.is_dir() or path.suffix.lower() == ".dcm" else ""
    array = _label_map(path, image.array) if socket.kind in LABEL_MAP_KINDS else image.array
    # rebuild the Image so that no header (DICOM tags, patient data) travels with it
    return Image(array=array, spacing=image.spacing, origin=image.origin,
                 direction=image.direction, modality=modality or image.modality)


def _read_json(path: Path) -> Any:
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_JSON_BYTES + 1)
        if len(raw) > MAX_JSON_BYTES:
            raise IngestError(f"{path}: larger than {MAX_JSON_BYTES} bytes, the most a JSON socket file may be")
        return json.loads(raw)
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise IngestError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise IngestError(f"{path}: not valid JSON (nested too deeply)") from None


def _label_map(path: Path, array: np.ndarray) -> np.ndarray:
    """A label map holds integers. Floating-point files whose values are all whole numbers (as some
    tools write them) are stored as the smallest integer type that holds their values."""
    if array.dtype.kind in "biu":
        return array
    if array.dtype.kind != "f":
        raise IngestError(f"{path}: a label map must hold integers; found {array.dtype} values")
    finite = np.isfinite(array)
    if not finite.all():
        raise IngestError(f"{path}: a label map must hold integers; found {array[~finite].flat[0]}")
    fraction = array != np.round(array)
    if fraction.any():
        raise IngestError(f"{path}: a label map must hold integers; found {array.dtype} value "
                          f"{array[fraction].flat[0]:g}")
    low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
    if low < np.iinfo(np.int64).min or high > np.iinfo(np.int64).max:
        raise IngestError(f"{path}: a label map must hold integers; found {high if high > 0 else low:g}")
    dtype = np.promote_types(np.min_scalar_type(low), np.min_scalar_type(high))
    return array.astype(dtype)


def _dicom_modality(path: Path) -> str:
    import pydicom

    first = path if path.is_file() else next(iter(sorted(p for p in path.iterdir() if p.is_file())), None)
    if first is None:
        return ""
    try:
        return str(pydicom.dcmread(first, stop_before_pixels=True).get("Modality", ""))
    except Exception:  # noqa: BLE001 - a modality is informative only
        return ""


def check_geometry(case: str, values: dict[str, Any], definition: ChallengeDefinition) -> None:
    for ref in definition.interface.references:
        if ref.same_grid_as:
            a, b = values[ref.slug], values[ref.same_grid_as]
            if isinstance(a, Image) and isinstance(b, Image) and not a.same_geometry(b):
                raise IngestError(
                    f"case {case!r}: reference {ref.slug!r} (shape {a.shape}, spacing {a.spacing}) does not "
                    f"match the grid of input {ref.same_grid_as!r} (shape {b.shape}, spacing {b.spacing})")


def ingest(source: Path, definition: ChallengeDefinition, inputs_url: str, references_url: str,
           progress: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Read, check and write every case; return case -> {"checksum", "info"} for the database.

    Nothing is left in the final stores unless every case is good.
    """
    inputs, refs = definition.interface.inputs, definition.interface.references
    found = scan(Path(source), [*inputs, *refs])
    urls = (inputs_url, references_url)
    # Local stores: write to a staging store, then move the cases in. URL stores (object storage)
    # cannot rename: write in place and delete what this run added if any case fails.
    local = all(casestore.is_local(url) for url in urls)
    target = {url: f"{url.rstrip('/')}.staging-{uuid.uuid4().hex[:8]}" if local else url for url in urls}
    new_cases = {url: [c for c in found if not casestore.has_case(url, c)] for url in urls} if not local else {}
    new_folders = [folder for url in urls for folder in _missing_folders(Path(url).parent)] if local else []
    summary: dict[str, dict[str, Any]] = {}
    failed = True
    try:
        for case, paths in found.items():
            values = {s.slug: read_source(paths[s.slug], s) for s in [*inputs, *refs]}
            check_geometry(case, values, definition)
            sums = casestore.write_case(target[inputs_url], case, {s.slug: values[s.slug] for s in inputs})
            sums |= casestore.write_case(target[references_url], case, {s.slug: values[s.slug] for s in refs})
            summary[case] = {"checksum": casestore.combined_checksum(sums),
                             "info": {slug: casestore.describe(v) for slug, v in values.items()}}
            if progress:
                progress(case)
        if local:
            for url in urls:
                casestore.move_cases(target[url], url, list(found))
        failed = False
    except BaseException:
        if not local:
            for url in urls:
                casestore.delete_cases(url, new_cases[url])
        raise
    finally:
        if local:
            for url in target.values():
                shutil.rmtree(url, ignore_errors=True)
        if failed:  # the folders this run made for its staging stores, deepest first
            for folder in new_folders:
                with contextlib.suppress(OSError):
                    folder.rmdir()
    return summary


def _missing_folders(folder: Path) -> list[Path]:
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing
