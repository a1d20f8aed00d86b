"""A registration baseline: the translation that moves the fixed landmarks' centroid onto the
moving landmarks' centroid, written as a constant displacement field on the fixed image's grid.

Inputs (from /input/inputs.json): two image sockets whose slugs contain "fixed" and "moving", and
two JSON sockets of grand-challenge "Multiple points" whose slugs contain "fixed" and "moving".
Output: /output/images/displacement-field/<uuid>.mha, (z, y, x, 3) float32, components (x, y, z)
in mm, mapping fixed to moving points: x_moving = x_fixed + u(x_fixed).
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import mha
import numpy as np

INPUT, OUTPUT = Path("/input"), Path("/output") / "images" / "displacement-field"


def sockets() -> list[dict]:
    return json.loads((INPUT / "inputs.json").read_text())


def find(kind_is_image: bool, word: str) -> dict:
    for entry in sockets():
        if word in entry["interface"]["slug"] and (entry["value"] is None) == kind_is_image:
            return entry
    sys.exit(f"landmark-translation: no {'image' if kind_is_image else 'JSON'} input with {word!r} in its slug")


def points(entry: dict) -> np.ndarray:
    document = entry["value"]
    if document is None:
        document = json.loads((INPUT / entry["interface"]["relative_path"]).read_text())
    return np.array([p["point"] for p in document["points"]], float)


def main() -> None:
    fixed = find(True, "fixed")
    files = sorted((INPUT / fixed["interface"]["relative_path"]).glob("*.mha"))
    header, _ = mha.read_header(files[0])
    shape = mha.shape_of(header)
    shift = points(find(False, "moving")).mean(0) - points(find(False, "fixed")).mean(0)
    field = np.broadcast_to(shift.astype(np.float32), (*shape, 3))
    OUTPUT.mkdir(parents=True, exist_ok=True)
    mha.write(OUTPUT / f"{uuid.uuid4()}.mha", field, header)
    print(f"landmark-translation: u = {shift.round(3).tolist()} mm")


if __name__ == "__main__":
    main()
