"""Reading fusion cases from folders for ``medarena evaluate fusion``.

Layout (``--reference REF --prediction PRED``)::

    REF/<case>/a.png          source A (for example the infrared image)
    REF/<case>/b.png          source B (for example the visible image)

    PRED/<case>.png           the fused image, or
    PRED/<case>/fused.png     the fused image in a case folder, or
    PRED/<case>/**/<any>.png  the only image anywhere in the case folder (a container's /output)

``source_a``/``source_b`` are accepted as names for the sources. Images are any format SimpleITK
reads (``.png``, ``.jpg``, ``.bmp``, ``.tif``, ``.mha``, ``.nii.gz``, ...); 2D or 3D, gray or RGB.
When ``REF`` itself holds ``a`` and ``b`` it is one case, named after the folder, and ``PRED`` may
be the fused file itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medarena.platform.loaders.images import read_image
from medarena.platform.loaders.registration import IMAGE_EXTENSIONS, find_file, pair_case_folders, single_file

SOURCE_NAMES = {"source_a": ("a", "source_a"), "source_b": ("b", "source_b")}


def _is_fusion_case(folder: Path) -> bool:
    return all(find_file(folder, names, IMAGE_EXTENSIONS) is not None for names in SOURCE_NAMES.values())


def pair_cases(reference: Path, prediction: Path) -> list[tuple[str, Path, Path | None]]:
    """Every reference case folder with its fused image (a file or a folder), or None when absent."""
    return pair_case_folders(reference, prediction, _is_fusion_case, IMAGE_EXTENSIONS)


def read_reference(source: Path) -> dict[str, Any]:
    """``{"source_a": Image, "source_b": Image}`` from a case folder."""
    folder = Path(source)
    out = {}
    for role, names in SOURCE_NAMES.items():
        path = find_file(folder, names, IMAGE_EXTENSIONS)
        if path is None:
            raise ValueError(f"{folder}: no {role} image ({' or '.join(names)} with an image extension)")
        out[role] = read_image(path)
    return out


def read_prediction(source: Path) -> dict[str, Any]:
    """``{"fused": Image}`` from a file or a case folder."""
    path = Path(source)
    if path.is_dir():
        path = single_file(path, ("fused",), IMAGE_EXTENSIONS, "a fused image")
    return {"fused": read_image(path)}
