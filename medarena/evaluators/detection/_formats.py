"""Detections and lesions of one case: box and point sets, and parsing them from documents.

Accepted documents (already parsed from JSON; coordinates in mm):

- medarena's own: ``{"boxes": [{"corners": [x0, y0, (z0,) x1, y1, (z1)], "score": s, "label": l}]}``
  or ``{"points": [{"point": [x, y, (z)], "score": s, "radius": r, "label": l}]}``; ``score``
  matters on predictions, ``radius`` on references, ``label`` is optional (boxes match only boxes
  of the same label, like COCO categories); ``"ignore": true`` on a reference point marks an
  irrelevant finding (LUNA16's excluded annotations: hits on it are neither TP nor FP).
- grand-challenge.org's "Multiple 2D bounding boxes":
  ``{"type": "Multiple 2D bounding boxes", "boxes": [{"corners": [[x, y, z] x 4], "probability": p,
  "name": n}], "version": {"major": 1, "minor": 0}}``; each box becomes the 2D box spanning its four
  corners in (x, y), lying in the plane z (boxes in different planes never overlap).
- grand-challenge.org's "Multiple points":
  ``{"type": "Multiple points", "points": [{"point": [x, y, z], "probability": p, "name": n}], ...}``.
  grand-challenge's ``name`` is a free-text name, not a class, and is not used for matching.

A prediction without a score (or probability) is a hard detection with score 1.0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medarena.evaluators.tasks import CaseError

GC_BOXES = "Multiple 2D bounding boxes"
GC_POINTS = "Multiple points"
AXES = "xyz"


@dataclass(frozen=True)
class Boxes:
    """Boxes of one case: ``corners`` (n, 2d), ``scores`` (n,), ``labels`` (n,), ``planes`` (n,)."""

    corners: np.ndarray
    scores: np.ndarray
    labels: tuple[str | None, ...]
    planes: np.ndarray  # z of a grand-challenge 2D box; NaN for boxes without a plane

    @property
    def ndim(self) -> int:
        """2 or 3; 0 for an empty set, which is compatible with either."""
        return self.corners.shape[1] // 2 if len(self.corners) else 0

    def __len__(self) -> int:
        return len(self.corners)


@dataclass(frozen=True)
class Points:
    """Points of one case: ``coords`` (n, d), ``scores``, ``radii`` (NaN when absent), ``ignore``."""

    coords: np.ndarray
    scores: np.ndarray
    radii: np.ndarray
    labels: tuple[str | None, ...]
    ignore: np.ndarray

    @property
    def ndim(self) -> int:
        return self.coords.shape[1] if len(self.coords) else 0

    def __len__(self) -> int:
        return len(self.coords)


def empty_boxes() -> Boxes:
    return Boxes(np.zeros((0, 0)), np.zeros(0), (), np.zeros(0))


def parse_detections(document: Any, what: str = "detections") -> Boxes | Points:
    """Boxes or points from a parsed JSON document in one of the formats of this module.

    ``what`` names the document in error messages (for example ``"prediction of case001"``).
    Raises :class:`CaseError` for anything malformed: a wrong type, a non-finite coordinate, score
    or radius, ``x1 < x0``, a box or point whose dimension differs from the others.
    """
    if isinstance(document, (Boxes, Points)):
        return document
    if not isinstance(document, Mapping):
        raise CaseError(f"{what}: expected a JSON object with 'boxes' or 'points', "
                        f"got {type(document).__name__}")
    has_boxes, has_points = "boxes" in document, "points" in document
    if has_boxes and has_points:
        raise CaseError(f"{what}: has both 'boxes' and 'points'; give one of them")
    if not has_boxes and not has_points:
        if document.get("type") in (GC_BOXES, GC_POINTS) or not document:
            return empty_boxes()
        raise CaseError(f"{what}: expected a 'boxes' or 'points' list, found keys {sorted(document)}")
    items = document["boxes" if has_boxes else "points"]
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
        raise CaseError(f"{what}: 'boxes'/'points' must be a list")
    return _parse_boxes(items, what) if has_boxes else _parse_points(items, what)


def _number(value: Any, where: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CaseError(f"{where}: {name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise CaseError(f"{where}: {name} is {value} (not finite)")
    return float(value)


def _score(item: Mapping, where: str) -> float:
    for key in ("score", "probability"):
        if key in item and item[key] is not None:
            return _number(item[key], where, key)
    return 1.0


def _label(item: Mapping, where: str) -> str | None:
    label = item.get("label")
    if label is None:
        return None
    if not isinstance(label, (str, int)) or isinstance(label, bool):
        raise CaseError(f"{where}: label must be a string or an integer, got {label!r}")
    return str(label)


def _coords(values: Any, where: str, name: str, sizes: tuple[int, ...]) -> list[float]:
    if not isinstance(values, Sequence) or isinstance(values, (str, bytes)) or len(values) not in sizes:
        raise CaseError(f"{where}: {name} must be a list of {' or '.join(map(str, sizes))} numbers, "
                        f"got {values!r}")
    return [_number(v, where, f"{name}[{i}]") for i, v in enumerate(values)]


def _fast_boxes(items: Sequence) -> Boxes | None:
    """Boxes of the common flat form in a few array operations; None when anything is unusual
    (the item-by-item parser then names the problem)."""
    try:
        if not items or not all(isinstance(item, dict) for item in items):
            return None
        corners = np.array([item["corners"] for item in items])
        scores = np.array([item.get("score", item.get("probability", 1.0)) for item in items])
        labels = tuple(item.get("label") for item in items)
    except (KeyError, ValueError, TypeError):
        return None
    if (corners.ndim != 2 or corners.shape[1] not in (4, 6) or corners.dtype.kind not in "fi"
            or scores.dtype.kind not in "fi" or any(label is not None for label in labels)):
        return None
    corners = corners.astype(float)
    ndim = corners.shape[1] // 2
    if not (np.isfinite(corners).all() and np.isfinite(scores).all()
            and (corners[:, ndim:] >= corners[:, :ndim]).all()):
        return None
    return Boxes(corners, scores.astype(float), labels, np.full(len(items), np.nan))


def _parse_boxes(items: Sequence, what: str) -> Boxes:
    fast = _fast_boxes(items)
    if fast is not None:
        return fast
    corners, scores, labels, planes = [], [], [], []
    for i, item in enumerate(items):
        where = f"{what}, box {i}"
        if not isinstance(item, Mapping) or "corners" not in item:
            raise CaseError(f"{where}: expected an object with 'corners'")
        raw = item["corners"]
        plane = math.nan
        nested = isinstance(raw, list) and raw and all(isinstance(c, (list, tuple)) for c in raw)
        if nested:
            box, plane = _grand_challenge_box(raw, where)
        else:
            box = _coords(raw, where, "corners", (4, 6))
            ndim = len(box) // 2
            for axis in range(ndim):
                if box[ndim + axis] < box[axis]:
                    raise CaseError(f"{where}: {AXES[axis]}1 < {AXES[axis]}0 "
                                    f"({box[ndim + axis]} < {box[axis]})")
        corners.append(box)
        scores.append(_score(item, where))
        labels.append(_label(item, where))
        planes.append(plane)
    _same_dimension([len(c) // 2 for c in corners], what, "box")
    array = np.asarray(corners, dtype=float) if corners else np.zeros((0, 0))
    return Boxes(array, np.asarray(scores, dtype=float), tuple(labels), np.asarray(planes, dtype=float))


def _grand_challenge_box(raw: Sequence, where: str) -> tuple[list[float], float]:
    """The 2D box [x0, y0, x1, y1] spanned by grand-challenge's four [x, y, z] corners, and its z."""
    if len(raw) != 4:
        raise CaseError(f"{where}: a grand-challenge box has 4 corners, got {len(raw)}")
    points = np.asarray([_coords(c, where, f"corner {k}", (3,)) for k, c in enumerate(raw)])
    if np.ptp(points[:, 2]) > 1e-6:
        raise CaseError(f"{where}: the 4 corners are not in one z plane ({points[:, 2].tolist()})")
    low, high = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
    return [*low.tolist(), *high.tolist()], float(points[0, 2])


def _parse_points(items: Sequence, what: str) -> Points:
    coords, scores, radii, labels, ignore = [], [], [], [], []
    for i, item in enumerate(items):
        where = f"{what}, point {i}"
        if not isinstance(item, Mapping) or "point" not in item:
            raise CaseError(f"{where}: expected an object with 'point'")
        coords.append(_coords(item["point"], where, "point", (2, 3)))
        scores.append(_score(item, where))
        radius = item.get("radius")
        if radius is None and item.get("diameter") is not None:
            radius = _number(item["diameter"], where, "diameter") / 2
        radius = math.nan if radius is None else _number(radius, where, "radius")
        if radius < 0:
            raise CaseError(f"{where}: radius is negative ({radius})")
        radii.append(radius)
        labels.append(_label(item, where))
        ignore.append(bool(item.get("ignore", False)))
    _same_dimension([len(c) for c in coords], what, "point")
    array = np.asarray(coords, dtype=float) if coords else np.zeros((0, 0))
    return Points(array, np.asarray(scores, dtype=float), np.asarray(radii, dtype=float), tuple(labels),
                  np.asarray(ignore, dtype=bool))


def _same_dimension(dims: list[int], what: str, kind: str) -> None:
    if len(set(dims)) > 1:
        first = dims[0]
        odd = next(i for i, d in enumerate(dims) if d != first)
        raise CaseError(f"{what}: {kind} {odd} is {dims[odd]}D but {kind} 0 is {first}D")


def points_from_rows(rows: Sequence[Mapping[str, str]], what: str) -> Points:
    """Points from LUNA16-style CSV rows (``coordX, coordY, coordZ`` and ``probability`` or
    ``diameter_mm``; Setio et al. 2017). An empty ``coordX`` marks a case without any finding."""
    items = []
    for i, row in enumerate(rows):
        where = f"{what}, row {i + 1}"
        if not str(row.get("coordX") or "").strip():
            continue
        has_z = bool(str(row.get("coordZ") or "").strip())
        axes = ("coordX", "coordY", "coordZ") if has_z else ("coordX", "coordY")
        item: dict[str, Any] = {"point": [_csv_number(row, key, where) for key in axes]}
        if str(row.get("probability") or "").strip():
            item["score"] = _csv_number(row, "probability", where)
        if str(row.get("diameter_mm") or "").strip():
            item["diameter"] = _csv_number(row, "diameter_mm", where)
        if str(row.get("label") or "").strip():
            item["label"] = row["label"].strip()
        items.append(item)
    return _parse_points(items, what)


def _csv_number(row: Mapping[str, str], key: str, where: str) -> float:
    text = str(row.get(key) or "").strip()
    try:
        value = float(text)
    except ValueError:
        raise CaseError(f"{where}: {key} is {text!r}, not a number") from None
    if not math.isfinite(value):
        raise CaseError(f"{where}: {key} is {text} (not finite)")
    return value
