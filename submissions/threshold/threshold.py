"""Segment the input image by Otsu's threshold: voxels above it are label 1, the rest 0."""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

import mha
import numpy as np

INPUT = Path("/input")
OUTPUT = Path("/output") / os.environ.get("SEGMENTATION_FOLDER", "images/segmentation")


def input_image() -> Path:
    """The single .mha file of the first image socket named in /input/inputs.json."""
    for entry in json.loads((INPUT / "inputs.json").read_text()):
        if entry["value"] is None:
            files = sorted((INPUT / entry["interface"]["relative_path"]).glob("*.mha"))
            if len(files) == 1:
                return files[0]
    sys.exit("threshold: no image input with exactly one .mha file in /input/inputs.json")


def otsu(values: np.ndarray, bins: int = 256) -> float:
    counts, edges = np.histogram(values, bins=bins)
    centers = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)
    weight_high = weight_low[-1] - weight_low
    mean_low = np.cumsum(counts * centers) / np.maximum(weight_low, 1)
    mean_high = (np.sum(counts * centers) - np.cumsum(counts * centers)) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(centers[int(np.argmax(between))])


def main() -> None:
    array, header = mha.read(input_image())
    level = otsu(array.astype(np.float64).ravel())
    OUTPUT.mkdir(parents=True, exist_ok=True)
    mha.write(OUTPUT / f"{uuid.uuid4()}.mha", (array > level).astype(np.uint8), like=header)
    print(f"threshold: level {level:g}, {int((array > level).sum())} voxels of {array.size} labelled")


if __name__ == "__main__":
    main()
