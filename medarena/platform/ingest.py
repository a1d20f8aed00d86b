"""Ingest an organizer's test set into the case store.

Source layout: one folder per socket of the challenge's interface (inputs and references), one
entry per case, named by the case::

    SOURCE/<socket-slug>/<case>.nii.gz | .mha | .mhd | .nrrd | .png | .tif   an image
    SOURCE/<socket-slug>/<case>/                                             a DICOM series
    SOURCE/<socket-slug>/<case>.json                                         a JSON socket

Every case is read and checked before anything is written; cases are written to a staging store
and moved into place only when all are good, and the database rows are added in one transaction.
DICOM headers are never copied: only voxels, geometry and the modality reach the store.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medarena.errors import InvalidInput
from medarena.evaluators.image import Image
from medarena.platform import casestore
from medarena.platform.challenges import ChallengeDefinition
from medarena.platform.contract import Socket
from medarena.platform.loaders.images import read_image

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr", ".png", ".tif", ".tiff",
                  ".jpg", ".jpeg", ".bmp", ".dcm")


class IngestError(InvalidInput, ValueError):
    """The source cannot be ingested; the message names the folder, case or socket."""


def case_name(path: Path) -> str:
    name = path.name
    for suffix in sorted((*IMAGE_SUFFIXES, ".json"), key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


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
        for item in items:
            case = entries.setdefault(case_name(item), {})
            if socket.slug in case:
                raise IngestError(f"{folder}: two files for case {case_name(item)!r}: "
                                  f"{case[socket.slug].name} and {item.name}")
            case[socket.slug] = item
    for case, found in entries.items():
        missing = [s.slug for s in sockets if s.slug not in found]
        if missing:
            raise IngestError(f"case {case!r}: no file for socket(s) {', '.join(missing)} in {source}")
    return dict(sorted(entries.items()))


def read_source(path: Path, socket: Socket) -> Any:
    if socket.is_json:
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise IngestError(f"{path}: not valid JSON ({exc})") from None
    try:
        image = read_image(path)
    except (ValueError, RuntimeError, OSError) as exc:
        raise IngestError(f"{path}: cannot read image ({str(exc).splitlines()[0]})") from None
    modality = _dicom_modality(path) if path.is_dir() or path.suffix.lower() == ".dcm" else ""
    # rebuild the Image so that no header (DICOM tags, patient data) travels with it
    return Image(array=image.array, spacing=image.spacing, origin=image.origin,
                 direction=image.direction, modality=modality or image.modality)


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
    summary: dict[str, dict[str, Any]] = {}
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
    except BaseException:
        if not local:
            for url in urls:
                casestore.delete_cases(url, new_cases[url])
        raise
    finally:
        if local:
            for url in target.values():
                shutil.rmtree(url, ignore_errors=True)
    return summary
