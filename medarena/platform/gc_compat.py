"""grand-challenge.org's names and JSON shapes, so that its containers run here unchanged.

Written from grand-challenge's own code (DIAGNijmegen/rse-grand-challenge, commit
4e38c78ba1ff7b7329a5d71ceaa71ff7eacaf053): ``components/models.py`` (InterfaceKindChoices,
super kinds), ``components/serializers.py`` (ComponentInterfaceSerializer,
ComponentInterfaceValueSerializer), ``components/templatetags/civ.py`` (sort_civs: values
before images, each by slug) and ``algorithms/serializers.py`` (JobSerializer, for
``predictions.json``).

A leaf module: it knows sockets only by their attributes, never imports them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from typing import Any

# grand-challenge's display name of a kind -> medarena's kind. Kinds whose values are files
# (PDF, CSV, ZIP...) and DICOM image sets have no counterpart here and are refused.
GC_KINDS: dict[str, str] = {
    "Image": "image",
    "Segmentation": "segmentation",
    "Heat Map": "heat-map",
    "Displacement field": "displacement-field",
    "Multiple 2D bounding boxes": "boxes",
    "Multiple points": "points",
    "Float": "probability",
    "Anything": "json",
    "String": "json",
    "Integer": "json",
    "Bool": "json",
    "Chart": "json",
    "2D bounding box": "json",
    "Distance measurement": "json",
    "Multiple distance measurements": "json",
    "Point": "json",
    "Polygon": "json",
    "Multiple polygons": "json",
    "Line": "json",
    "Multiple lines": "json",
    "Angle": "json",
    "Multiple angles": "json",
    "Ellipse": "json",
    "Multiple ellipses": "json",
    "Three-point angle": "json",
    "Multiple three-point angles": "json",
    "Affine transform registration": "json",
    "Choice": "json",
    "Multiple choice": "json",
}
# medarena's kind -> the name grand-challenge shows for it, when the definition names none
DEFAULT_GC_KIND = {"image": "Image", "segmentation": "Segmentation", "heat-map": "Heat Map",
                   "displacement-field": "Displacement field", "boxes": "Multiple 2D bounding boxes",
                   "points": "Multiple points", "probability": "Float", "json": "Anything"}
UNSUPPORTED_GC_KINDS = ("DICOM Image Set", "PDF file", "SQREG file", "Thumbnail jpg", "Thumbnail png",
                        "OBJ file", "MP4 file", "Newick tree-format file", "BIOM format", "CSV file", "ZIP file")
IMAGE_KINDS = ("image", "segmentation", "heat-map", "displacement-field")

# the keys grand-challenge's serializers write (the contract test checks them one by one)
SOCKET_KEYS = ("title", "description", "slug", "kind", "pk", "default_value", "super_kind", "relative_path",
               "overlay_segments", "look_up_table")
VALUE_KEYS = ("socket", "interface", "value", "file", "image", "pk")
JOB_KEYS = ("pk", "url", "api_url", "algorithm_image", "inputs", "outputs", "status", "hanging_protocol",
            "optional_hanging_protocols", "view_content", "exec_duration", "invoke_duration")

_NAMESPACE = uuid.UUID("6f1d3c2e-5a7b-4c1d-9e8f-0a1b2c3d4e5f")


def resolve_kind(kind: str, gc_kind: str | None) -> tuple[str, str | None]:
    """(medarena kind, grand-challenge name) of a kind given by either name. Unknown names are
    passed on unchanged for the kind's own validation to reject."""
    if kind in GC_KINDS:
        if gc_kind not in (None, kind):
            raise ValueError(f"kind {kind!r} and gc_kind {gc_kind!r} disagree")
        return GC_KINDS[kind], kind
    if kind in UNSUPPORTED_GC_KINDS:
        raise ValueError(f"grand-challenge's kind {kind!r} is not supported (files and DICOM image sets are "
                         f"not); supported: {', '.join(GC_KINDS)}")
    if gc_kind is not None and GC_KINDS.get(gc_kind) != kind:
        raise ValueError(f"gc_kind {gc_kind!r} does not name the kind {kind!r}")
    return kind, gc_kind


def super_kind(kind: str) -> str:
    return "Image" if kind in IMAGE_KINDS else "Value"


def socket_pk(slug: str) -> int:
    """A stable integer id for a socket (grand-challenge's ComponentInterface.pk is an integer)."""
    return int(hashlib.sha256(slug.encode()).hexdigest()[:8], 16) % 2**31


def serialize_socket(socket: Any) -> dict[str, Any]:
    """ComponentInterfaceSerializer's fields, in its order."""
    return {
        "title": socket.title or socket.slug.replace("-", " ").replace("_", " ").capitalize(),
        "description": socket.description,
        "slug": socket.slug,
        "kind": socket.gc_kind or DEFAULT_GC_KIND[socket.kind],
        "pk": socket_pk(socket.slug),
        "default_value": socket.default_value,
        "super_kind": super_kind(socket.kind),
        "relative_path": socket.relative_path,
        "overlay_segments": list(socket.overlay_segments),
        "look_up_table": socket.look_up_table,
    }


def socket_value(socket: Any, *, value: Any = None, image: dict[str, Any] | None = None,
                 file: str | None = None, pk: int | None = None) -> dict[str, Any]:
    """ComponentInterfaceValueSerializer's fields: ``socket`` and the legacy ``interface`` are the
    same object; an image value is ``{"pk", "name"}``."""
    described = serialize_socket(socket)
    return {"socket": described, "interface": described, "value": value, "file": file, "image": image,
            "pk": pk if pk is not None else uuid.uuid4().int % 2**53}


def sort_values(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The order of grand-challenge's SortedCIVSerializer: values, then images, each by slug."""
    return sorted(entries, key=lambda e: (e["socket"]["super_kind"] == "Image", e["socket"]["slug"]))


def image_pk(scope: str, case: str, slug: str) -> str:
    """A stable UUID of one input image (grand-challenge's Image.pk is a UUID)."""
    return str(uuid.uuid5(_NAMESPACE, f"image/{scope}/{case}/{slug}"))


def value_pk(scope: str, case: str | None, slug: str) -> int:
    """A stable integer id of one socket value (grand-challenge's ComponentInterfaceValue.pk)."""
    if case is None:
        return uuid.uuid4().int % 2**53
    return uuid.uuid5(_NAMESPACE, f"value/{scope}/{case}/{slug}").int % 2**53


def job_pk(scope: str, submission_id: int, case: str) -> str:
    """A stable UUID of one algorithm job (grand-challenge's Job.pk): the same on every re-evaluation."""
    return str(uuid.uuid5(_NAMESPACE, f"job/{scope}/{submission_id}/{case}"))


def iso_duration(seconds: float | None) -> str | None:
    """A duration as Django's ``duration_iso_string`` writes it (``P0DT00H01M02.500000S``)."""
    if seconds is None:
        return None
    delta = dt.timedelta(seconds=seconds)
    sign = "-" if delta < dt.timedelta(0) else ""
    delta = abs(delta)
    minutes, secs = divmod(delta.seconds, 60)
    hours, minutes = divmod(minutes, 60)
    micro = f".{delta.microseconds:06d}" if delta.microseconds else ""
    return f"{sign}P{delta.days}DT{hours:02d}H{minutes:02d}M{secs:02d}{micro}S"
