"""Detect the bright blob of a scan: one box around the voxels above Otsu's threshold, and the
probability that the scan holds a lesion at all.

Writes /output/lesion-boxes.json ({"boxes": [{"corners": [x0, y0, z0, x1, y1, z1], "score": s}]},
millimetres in the scanner's (LPS) frame, each voxel covering +-half a spacing around its centre)
and /output/lesion-likelihood.json (a bare number). A phase declares the outputs it wants; the
rest are ignored.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mha
import numpy as np

INPUT, OUTPUT = Path("/input"), Path("/output")


def input_image() -> Path:
    for entry in json.loads((INPUT / "inputs.json").read_text()):
        if entry["value"] is None:
            files = sorted((INPUT / entry["interface"]["relative_path"]).glob("*.mha"))
            if len(files) == 1:
                return files[0]
    sys.exit("blob-detector: no image input with exactly one .mha file in /input/inputs.json")


def otsu(values: np.ndarray) -> float:
    counts, edges = np.histogram(values, bins=256)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(counts)
    w1 = w0[-1] - w0
    m0 = np.cumsum(counts * centres) / np.maximum(w0, 1)
    m1 = ((counts * centres).sum() - np.cumsum(counts * centres)) / np.maximum(w1, 1)
    return float(centres[np.argmax(w0 * w1 * (m0 - m1) ** 2)])


def without_isolated_voxels(mask: np.ndarray) -> np.ndarray:
    """Keep the voxels with at least 3 of their 6 face-neighbours in the mask (box corners have 3)."""
    neighbours = np.zeros(mask.shape, np.int8)
    for axis in range(mask.ndim):
        lower = [slice(None)] * mask.ndim
        upper = [slice(None)] * mask.ndim
        lower[axis], upper[axis] = slice(None, -1), slice(1, None)
        neighbours[tuple(upper)] += mask[tuple(lower)]
        neighbours[tuple(lower)] += mask[tuple(upper)]
    return mask & (neighbours >= 3)


def physical_box(lo: np.ndarray, hi: np.ndarray, header: dict[str, str]) -> list[float]:
    """Index bounds (x, y, z order) to a physical box; the voxel grid must be axis-aligned."""
    spacing = np.array(header["ElementSpacing"].split(), float)
    offset = np.array(header.get("Offset", " ".join(["0"] * len(spacing))).split(), float)
    direction = np.array(header.get("TransformMatrix", " ".join(
        str(float(i == j)) for i in range(len(spacing)) for j in range(len(spacing)))).split(), float)
    matrix = direction.reshape(len(spacing), len(spacing)).T  # MetaImage stores it column-major
    a = offset + matrix @ ((lo - 0.5) * spacing)
    b = offset + matrix @ ((hi + 0.5) * spacing)
    return [*np.minimum(a, b).tolist(), *np.maximum(a, b).tolist()]


def main() -> None:
    array, header = mha.read(input_image())
    array = array.astype(np.float32)
    inside = without_isolated_voxels(array > otsu(array))
    boxes = []
    likelihood = float(inside.mean() > 0.01)
    if inside.any():
        idx = np.argwhere(inside)[:, ::-1]  # (x, y, z)
        contrast = (array[inside].mean() - array[~inside].mean()) / (array.std() + 1e-6)
        score = float(1 / (1 + np.exp(-contrast)))
        boxes.append({"corners": physical_box(idx.min(0), idx.max(0), header), "score": score})
        likelihood = score
    (OUTPUT / "lesion-boxes.json").write_text(json.dumps({"boxes": boxes}))
    (OUTPUT / "lesion-likelihood.json").write_text(json.dumps(likelihood))


if __name__ == "__main__":
    main()
