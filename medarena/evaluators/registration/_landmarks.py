"""Landmark lists: parsing CSV text and grand-challenge "Multiple points" JSON, pairing two lists."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_ID_COLUMNS = ("id", "name", "label", "landmark", "point")


@dataclass(frozen=True)
class Landmarks:
    """Points (N, d) in physical coordinates (mm, ITK order x, y, z) with optional ids."""

    points: np.ndarray
    ids: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return int(self.points.shape[0])


def parse_landmarks_csv(text: str, source: str = "landmarks") -> Landmarks:
    """Landmarks from CSV text: one row per landmark, x, y, z in mm (ITK/LPS order).

    Accepted layouts (comma, semicolon, tab or whitespace separated):

    - a header naming ``x``, ``y``, ``z`` (any case) and optionally an id column named ``id``,
      ``name``, ``label``, ``landmark`` or ``point``; other columns are ignored;
    - no header: three columns ``x, y, z``, or four columns ``id, x, y, z``;
    - two coordinate columns (``x, y``) for 2D.

    Raises:
        ValueError: naming ``source`` and the row at fault.
    """
    rows = [row for row in _split_rows(text) if row]
    if not rows:
        raise ValueError(f"{source}: no landmarks")
    first = [v.strip().lower() for v in rows[0]]
    header = first if "x" in first and "y" in first else None
    body = rows[1:] if header else rows
    if header:
        coords = [header.index(c) for c in ("x", "y", "z") if c in header]
        if len(coords) < 2 or header[coords[0]] != "x" or header[coords[1]] != "y":
            raise ValueError(f"{source}: the header {rows[0]} has no x, y (, z) columns")
        id_col = next((header.index(c) for c in _ID_COLUMNS if c in header), None)
    else:
        width = len(rows[0])
        if width in (2, 3):
            coords, id_col = list(range(width)), None
        elif width == 4:
            coords, id_col = [1, 2, 3], 0
        else:
            raise ValueError(f"{source}: {width} columns without a header; expected x, y, z or id, x, y, z")
    points, ids = [], []
    for number, row in enumerate(body, start=2 if header else 1):
        try:
            points.append([float(row[c]) for c in coords])
        except (IndexError, ValueError):
            raise ValueError(f"{source}: row {number} {row} has no numeric coordinates") from None
        if id_col is not None:
            ids.append(row[id_col].strip() if id_col < len(row) else "")
    if not points:
        raise ValueError(f"{source}: no landmarks")
    array = np.asarray(points, dtype=float)
    if not np.isfinite(array).all():
        raise ValueError(f"{source}: non-finite coordinates")
    return Landmarks(array, tuple(ids) if id_col is not None else None)


def parse_landmarks_json(data: Mapping[str, Any] | Sequence[Any], source: str = "landmarks") -> Landmarks:
    """Landmarks from grand-challenge "Multiple points" JSON (already decoded).

    The shape is ``{"type": "Multiple points", "points": [{"name": "p1", "point": [x, y, z]}, ...]}``
    with points in mm (the world coordinates of the image); a bare list of such point objects, or
    of ``[x, y, z]`` lists, is accepted too. Names become ids when every point has a distinct one.
    """
    items = data.get("points") if isinstance(data, Mapping) else data
    if isinstance(data, Mapping) and "point" in data and items is None:
        items = [data]  # a single "Point" object
    if not isinstance(items, Sequence) or isinstance(items, str) or not items:
        raise ValueError(f"{source}: no \"points\" list")
    points, names = [], []
    for number, item in enumerate(items, start=1):
        value = item.get("point") if isinstance(item, Mapping) else item
        try:
            points.append([float(v) for v in value])
        except (TypeError, ValueError):
            raise ValueError(f"{source}: point {number} has no numeric coordinates") from None
        names.append(str(item.get("name", "")) if isinstance(item, Mapping) else "")
    widths = {len(p) for p in points}
    if len(widths) != 1 or widths.pop() not in (2, 3):
        raise ValueError(f"{source}: points must all have 2 or 3 coordinates")
    array = np.asarray(points, dtype=float)
    if not np.isfinite(array).all():
        raise ValueError(f"{source}: non-finite coordinates")
    distinct = all(names) and len(set(names)) == len(names)
    return Landmarks(array, tuple(names) if distinct else None)


def pair_landmarks(fixed: Landmarks, moving: Landmarks) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Pair two landmark lists: by id when both have ids, otherwise by row.

    Returns the fixed points, the moving points (row k of one pairs with row k of the other) and
    the ids of the pairs (row numbers from 1 when paired by row).

    Raises:
        ValueError: different counts without ids on both sides, fixed ids missing on the moving
            side, duplicated ids, or a different number of coordinates.
    """
    if fixed.points.shape[1] != moving.points.shape[1]:
        raise ValueError(f"fixed landmarks have {fixed.points.shape[1]} coordinates, "
                         f"moving landmarks {moving.points.shape[1]}")
    if fixed.ids is not None and moving.ids is not None:
        for side, ids in (("fixed", fixed.ids), ("moving", moving.ids)):
            if len(set(ids)) != len(ids):
                raise ValueError(f"{side} landmarks have duplicated ids")
        index = {name: k for k, name in enumerate(moving.ids)}
        missing = [name for name in fixed.ids if name not in index]
        if missing:
            raise ValueError(f"fixed landmark ids without a moving landmark: {', '.join(missing[:10])}")
        order = [index[name] for name in fixed.ids]
        return fixed.points, moving.points[order], fixed.ids
    if len(fixed) != len(moving):
        raise ValueError(f"{len(fixed)} fixed and {len(moving)} moving landmarks, and no ids to pair them")
    return fixed.points, moving.points, tuple(str(k) for k in range(1, len(fixed) + 1))


def _split_rows(text: str) -> list[list[str]]:
    sample = text[:4096]
    if "," in sample or ";" in sample or "\t" in sample:
        delimiter = "," if "," in sample else (";" if ";" in sample else "\t")
        return [[v.strip() for v in row] for row in csv.reader(io.StringIO(text), delimiter=delimiter)]
    return [line.split() for line in text.splitlines() if not line.lstrip().startswith("#")]


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
