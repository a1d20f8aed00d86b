"""Small challenges and test sets for the platform tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
import yaml

SPACING_ZYX = (2.0, 1.0, 0.5)


def definition(**overrides) -> dict:
    data = {
        "slug": "toy",
        "title": "Toy challenge",
        "phases": [{"slug": "test", "opens": "2020-01-01T00:00:00Z", "submission_limit": 3}],
        "interface": {
            "inputs": [{"slug": "scan", "kind": "image", "relative_path": "images/scan"}],
            "outputs": [{"slug": "segmentation", "kind": "segmentation", "relative_path": "images/segmentation"}],
            "references": [{"slug": "segmentation", "kind": "segmentation",
                            "relative_path": "images/segmentation", "same_grid_as": "scan"}],
        },
        "evaluation": {"task": "segmentation", "settings": {"labels": {"fg": 1}, "metrics": ["dice", "hd95"]}},
        "ranking": {"method": "aggregate-then-rank", "metrics": [{"metric": "dice", "label": "fg"}],
                    "bootstrap": 20},
        "limits": {"wall_time_seconds": 4, "memory_mb": 256, "cpus": 1},
    }
    data.update(overrides)
    return data


def write_definition(path: Path, **overrides) -> Path:
    path.write_text(yaml.safe_dump(definition(**overrides), sort_keys=False))
    return path


def cube_case(seed: int, shape=(12, 24, 24)) -> tuple[np.ndarray, np.ndarray]:
    """A bright box on a dark, slightly noisy background; the box is the reference."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, np.uint8)
    z0, y0, x0 = 3 + seed % 3, 5 + seed % 4, 6
    mask[z0:z0 + 5, y0:y0 + 10, x0:x0 + 9] = 1
    scan = (mask * 200 + rng.normal(50, 5, shape)).astype(np.int16)
    return scan, mask


def to_sitk(array: np.ndarray, spacing_zyx=SPACING_ZYX, origin=(10.0, -5.0, 3.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(reversed(spacing_zyx)))
    image.SetOrigin(origin)
    return image


def write_source(folder: Path, n: int = 3, suffix: str = ".nii.gz") -> Path:
    """folder/scan/<case><suffix> and folder/segmentation/<case><suffix>."""
    (folder / "scan").mkdir(parents=True, exist_ok=True)
    (folder / "segmentation").mkdir(exist_ok=True)
    for i in range(n):
        scan, mask = cube_case(i)
        sitk.WriteImage(to_sitk(scan), str(folder / "scan" / f"case{i}{suffix}"))
        sitk.WriteImage(to_sitk(mask), str(folder / "segmentation" / f"case{i}{suffix}"))
    return folder
