"""Synthetic test sets of the demo challenges of detection, classification, registration and
fusion, written in the ingest layout (``SOURCE/<socket>/<case>.<ext>``) with known references.

Every generator is seeded, so a demo's cases and its scores are the same on every machine.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import SimpleITK as sitk

SPACING_XYZ = (0.8, 0.8, 2.0)  # mm
ORIGIN = (-12.8, -12.8, -16.0)  # mm, LPS


def _image(array: np.ndarray, origin=ORIGIN, spacing_xyz=SPACING_XYZ) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in spacing_xyz))
    image.SetOrigin(tuple(float(o) for o in origin))
    return image


def _fresh(folder: Path, sockets: tuple[str, ...]) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    for socket in sockets:
        (folder / socket).mkdir(parents=True)
    return folder


# ---------------------------------------------------------------- detection and classification

def lesion_scan(seed: int, has_lesion: bool, shape=(16, 32, 32)) -> tuple[np.ndarray, np.ndarray]:
    """Soft tissue (about 40 HU, noise 6) and, when asked, one bright box-shaped lesion (about
    220 HU) at a seeded place; returns the scan and the lesion mask, (z, y, x)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, np.uint8)
    if has_lesion:
        size = rng.integers((3, 5, 5), (6, 11, 11))
        start = [int(rng.integers(1, n - s - 1)) for n, s in zip(shape, size, strict=True)]
        mask[tuple(slice(a, a + s) for a, s in zip(start, size, strict=True))] = 1
    scan = np.where(mask, 220.0, 40.0) + rng.normal(0, 6, shape)
    return scan.astype(np.int16), mask


def lesion_box(mask: np.ndarray, origin=ORIGIN, spacing_xyz=SPACING_XYZ) -> list[float]:
    """The physical extent [x0, y0, z0, x1, y1, z1] in mm of the mask's voxels, each voxel
    covering half a spacing on either side of its centre."""
    index = np.argwhere(mask)[:, ::-1]  # (x, y, z)
    low = np.asarray(origin) + (index.min(0) - 0.5) * spacing_xyz
    high = np.asarray(origin) + (index.max(0) + 0.5) * spacing_xyz
    return [*low.tolist(), *high.tolist()]


def lesion_cases(n: int) -> dict[str, bool]:
    """Case name -> whether it has a lesion: two of every three cases have one."""
    return {f"scan-{i:02d}": i % 3 != 2 for i in range(n)}


def write_detection_source(folder: Path, n: int = 6) -> Path:
    """SOURCE/scan/<case>.mha and SOURCE/lesion-boxes/<case>.json ({"boxes": [{"corners": ...}]})."""
    _fresh(folder, ("scan", "lesion-boxes"))
    for i, (case, has_lesion) in enumerate(lesion_cases(n).items()):
        scan, mask = lesion_scan(i, has_lesion)
        sitk.WriteImage(_image(scan), str(folder / "scan" / f"{case}.mha"))
        boxes = [{"corners": lesion_box(mask)}] if has_lesion else []
        (folder / "lesion-boxes" / f"{case}.json").write_text(json.dumps({"boxes": boxes}))
    return folder


def write_classification_source(folder: Path, n: int = 6) -> Path:
    """SOURCE/scan/<case>.mha and SOURCE/has-lesion/<case>.json (1 or 0)."""
    _fresh(folder, ("scan", "has-lesion"))
    for i, (case, has_lesion) in enumerate(lesion_cases(n).items()):
        scan, _ = lesion_scan(i, has_lesion)
        sitk.WriteImage(_image(scan), str(folder / "scan" / f"{case}.mha"))
        (folder / "has-lesion" / f"{case}.json").write_text(json.dumps(int(has_lesion)))
    return folder


# ---------------------------------------------------------------- registration

def _points(points: np.ndarray) -> dict:
    """grand-challenge.org's "Multiple points" document, coordinates in mm."""
    return {"type": "Multiple points", "version": {"major": 1, "minor": 0},
            "points": [{"name": f"p{i}", "point": [round(float(v), 4) for v in p]} for i, p in enumerate(points)]}


def organ_labels(shape=(16, 32, 32)) -> np.ndarray:
    """Two adjacent box-shaped organs (labels 1 and 2) in the middle of the volume."""
    labels = np.zeros(shape, np.uint8)
    labels[5:11, 8:24, 6:16] = 1
    labels[5:11, 8:24, 16:26] = 2
    return labels


def write_registration_source(folder: Path, n: int = 4) -> Path:
    """Pairs of scans whose moving image is the fixed one translated by a seeded shift (mm).

    Inputs: the two images and noisy keypoint correspondences (moving = fixed + shift + noise of
    0.7 mm); references, never shown to the algorithm: exact landmark pairs (moving = fixed +
    shift) and the organ labels of both images.
    """
    sockets = ("fixed-image", "moving-image", "fixed-keypoints", "moving-keypoints",
               "fixed-landmarks", "moving-landmarks", "fixed-labels", "moving-labels")
    _fresh(folder, sockets)
    labels = organ_labels()
    extent = np.array(labels.shape[::-1]) * SPACING_XYZ  # (x, y, z) mm
    for i in range(n):
        rng = np.random.default_rng(100 + i)
        case = f"pair-{i:02d}"
        shift = np.round(rng.uniform(-4, 4, 3), 2)
        scan = (np.choose(labels, [30.0, 120.0, 200.0]) + rng.normal(0, 5, labels.shape)).astype(np.int16)
        moved_origin = np.asarray(ORIGIN) + shift
        sitk.WriteImage(_image(scan), str(folder / "fixed-image" / f"{case}.mha"))
        sitk.WriteImage(_image(scan, moved_origin), str(folder / "moving-image" / f"{case}.mha"))
        sitk.WriteImage(_image(labels), str(folder / "fixed-labels" / f"{case}.mha"))
        sitk.WriteImage(_image(labels, moved_origin), str(folder / "moving-labels" / f"{case}.mha"))
        keypoints = np.asarray(ORIGIN) + rng.uniform(0.2, 0.8, (8, 3)) * extent
        landmarks = np.asarray(ORIGIN) + rng.uniform(0.2, 0.8, (6, 3)) * extent
        noisy = keypoints + shift + rng.normal(0, 0.7, keypoints.shape)
        for socket, points in (("fixed-keypoints", keypoints), ("moving-keypoints", noisy),
                               ("fixed-landmarks", landmarks), ("moving-landmarks", landmarks + shift)):
            (folder / socket / f"{case}.json").write_text(json.dumps(_points(points)))
    return folder


# ---------------------------------------------------------------- fusion

def fusion_scene(seed: int, shape=(48, 64)) -> tuple[np.ndarray, np.ndarray]:
    """A visible image (a lit gradient with two dark buildings) and an infrared image (a dark
    background with a warm figure the visible image hardly shows), 8-bit gray, (y, x)."""
    rng = np.random.default_rng(seed)
    y, x = np.indices(shape, dtype=float)
    visible = 90 + 100 * x / shape[1] + rng.normal(0, 4, shape)
    for x0 in rng.integers(4, shape[1] - 20, 2):
        visible[shape[0] // 3:, x0:x0 + 12] -= 60
    cy, cx = rng.integers(12, shape[0] - 12), rng.integers(12, shape[1] - 12)
    figure = np.exp(-(((y - cy) / 7) ** 2 + ((x - cx) / 3.5) ** 2))
    infrared = 25 + 200 * figure + rng.normal(0, 3, shape)
    return (np.clip(np.rint(visible), 0, 255).astype(np.uint8),
            np.clip(np.rint(infrared), 0, 255).astype(np.uint8))


def write_fusion_source(folder: Path, n: int = 4) -> Path:
    """SOURCE/visible/<case>.png and SOURCE/infrared/<case>.png."""
    _fresh(folder, ("visible", "infrared"))
    for i in range(n):
        visible, infrared = fusion_scene(i)
        sitk.WriteImage(sitk.GetImageFromArray(visible), str(folder / "visible" / f"scene-{i:02d}.png"))
        sitk.WriteImage(sitk.GetImageFromArray(infrared), str(folder / "infrared" / f"scene-{i:02d}.png"))
    return folder
