"""Reading registration cases from folders for ``medarena evaluate registration``.

Layout (``--reference REF --prediction PRED``)::

    REF/<case>/fixed_landmarks.csv     landmarks of the fixed image (.csv, .txt or .json)
    REF/<case>/moving_landmarks.csv    landmarks of the moving image, paired by id or by row
    REF/<case>/fixed_labels.nii.gz     label map on the fixed grid (optional)
    REF/<case>/moving_labels.nii.gz    label map on the moving grid (optional)
    REF/<case>/fixed.mha               the fixed image (optional; its grid checks the field's)
    REF/<case>/moving.mha              the moving image (optional; its grid places moving points)
    REF/<case>/mask.nii.gz             mask on the fixed grid for SDlogJ and folding (optional)

    PRED/<case>.mha                    the displacement field, or
    PRED/<case>/field.mha              the field in a case folder, or
    PRED/<case>/**/<any>.mha           the only image anywhere in the case folder (a container's
                                       /output, for example images/displacement-field/<uuid>.mha)

Images are any format SimpleITK reads (``.mha``, ``.mhd``, ``.nii.gz``, ``.nii``, ``.nrrd``, ...);
``fixed_image``/``moving_image`` are accepted as names too. A case needs landmarks (both files),
labels (both files) or at least one image of the fixed grid. When ``REF`` itself holds these files
it is one case, named after the folder, and ``PRED`` may be the field file itself.

Landmark files: CSV with x, y, z in mm (header ``x,y,z`` with an optional ``id``/``name`` column,
or no header: ``x,y,z`` or ``id,x,y,z``), or grand-challenge "Multiple points" JSON. Two files
with ids on both sides pair by id, otherwise by row (then the counts must agree).

The field: a vector image (z, y, x, 3) with components (x, y, z) in mm on the fixed grid; a 4D
scalar image whose last axis has 3 (or 2) values (a nibabel-style (x, y, z, 3) NIfTI) is read
as the vector field it stores; ``.npy`` / ``.npz`` hold a bare (z, y, x, 3) array that takes the
fixed grid of the reference.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from medarena.evaluators.image import Image
from medarena.evaluators.registration import Landmarks, pair_landmarks, parse_landmarks_csv, parse_landmarks_json
from medarena.platform.loaders.images import read_image

IMAGE_EXTENSIONS = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr", ".tif", ".tiff", ".png", ".jpg",
                    ".jpeg", ".bmp")
FIELD_EXTENSIONS = IMAGE_EXTENSIONS + (".npy", ".npz")
LANDMARK_EXTENSIONS = (".csv", ".txt", ".json")

IMAGE_ROLES = {
    "fixed_labels": ("fixed_labels",),
    "moving_labels": ("moving_labels",),
    "fixed_image": ("fixed", "fixed_image"),
    "moving_image": ("moving", "moving_image"),
    "mask": ("mask",),
}
LANDMARK_ROLES = {"fixed_landmarks": "fixed_landmarks", "moving_landmarks": "moving_landmarks"}


def stem(path: Path, extensions: Sequence[str]) -> str | None:
    """The file name without one of ``extensions`` (case-insensitive), or None."""
    lower = path.name.lower()
    for ext in extensions:
        if lower.endswith(ext):
            return path.name[: -len(ext)]
    return None


def find_file(folder: Path, names: Sequence[str], extensions: Sequence[str]) -> Path | None:
    """The file ``folder/<name><ext>`` for the first name that exists; an error when one name has
    several extensions."""
    for name in names:
        hits = [p for p in sorted(folder.iterdir()) if p.is_file() and stem(p, extensions) == name]
        if len(hits) > 1:
            raise ValueError(f"{folder}: several files for {name!r}: {', '.join(p.name for p in hits)}")
        if hits:
            return hits[0]
    return None


def pair_case_folders(reference: Path, prediction: Path, is_case, extensions: Sequence[str]
                      ) -> list[tuple[str, Path, Path | None]]:
    """(case, reference folder, prediction file or folder or None) for every reference case.

    A reference folder for which ``is_case`` holds is a single case; otherwise each of its
    sub-folders for which it holds is a case. A case's prediction is ``PRED/<case><ext>`` or the
    folder ``PRED/<case>``; with a single reference case, ``PRED`` may be the file itself.
    """
    reference, prediction = Path(reference), Path(prediction)
    if is_case(reference):
        if prediction.is_file():
            return [(reference.name, reference, prediction)]
        cases = [reference]
    else:
        cases = [p for p in sorted(reference.iterdir()) if p.is_dir() and is_case(p)]
    pairs = []
    for folder in cases:
        found = _prediction_for(prediction, folder.name, extensions)
        if found is None and len(cases) == 1 and prediction.is_dir() and folder == reference:
            found = prediction
        pairs.append((folder.name, folder, found))
    return pairs


def _prediction_for(prediction: Path, case: str, extensions: Sequence[str]) -> Path | None:
    if not prediction.is_dir():
        return None
    folder = prediction / case
    if folder.is_dir():
        return folder
    files = [p for p in sorted(prediction.iterdir()) if p.is_file() and stem(p, extensions) == case]
    return files[0] if files else None


def single_file(folder: Path, names: Sequence[str], extensions: Sequence[str], what: str) -> Path:
    """``folder/<name><ext>`` for one of ``names``, else the only file with one of ``extensions``
    anywhere under ``folder``."""
    named = find_file(folder, names, extensions)
    if named is not None:
        return named
    candidates = [p for p in sorted(folder.rglob("*")) if p.is_file() and stem(p, extensions) is not None]
    if len(candidates) != 1:
        found = ", ".join(str(p.relative_to(folder)) for p in candidates) or "none"
        raise ValueError(f"{folder}: expected {what} ({' or '.join(names)}) or exactly one image file; "
                         f"found {found}")
    return candidates[0]


def _is_registration_case(folder: Path) -> bool:
    names = {stem(p, IMAGE_EXTENSIONS + LANDMARK_EXTENSIONS) for p in folder.iterdir() if p.is_file()}
    known = set(LANDMARK_ROLES.values()) | {n for names_ in IMAGE_ROLES.values() for n in names_}
    return bool(names & known)


def pair_cases(reference: Path, prediction: Path) -> list[tuple[str, Path, Path | None]]:
    """Every reference case folder with its field (a file or a folder), or None when absent."""
    return pair_case_folders(reference, prediction, _is_registration_case, FIELD_EXTENSIONS)


def read_landmarks(path: Path) -> Landmarks:
    """Landmarks from a CSV/TXT file or grand-challenge JSON; errors name the file."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read landmarks ({exc})") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
        return parse_landmarks_json(data, str(path))
    return parse_landmarks_csv(text, str(path))


def read_reference(source: Path) -> dict[str, Any]:
    """Roles of :class:`~medarena.evaluators.registration.RegistrationTask` from a case folder."""
    folder = Path(source)
    out: dict[str, Any] = {}
    for role, names in IMAGE_ROLES.items():
        path = find_file(folder, names, IMAGE_EXTENSIONS)
        if path is not None:
            out[role] = read_image(path)
    paths = {role: find_file(folder, (name,), LANDMARK_EXTENSIONS) for role, name in LANDMARK_ROLES.items()}
    if (paths["fixed_landmarks"] is None) != (paths["moving_landmarks"] is None):
        present = paths["fixed_landmarks"] or paths["moving_landmarks"]
        raise ValueError(f"{present}: landmarks of only one image; both fixed_landmarks and moving_landmarks "
                         "are needed")
    if paths["fixed_landmarks"] is not None:
        fixed, moving = read_landmarks(paths["fixed_landmarks"]), read_landmarks(paths["moving_landmarks"])
        try:
            out["fixed_landmarks"], out["moving_landmarks"], ids = pair_landmarks(fixed, moving)
        except ValueError as exc:
            raise ValueError(f"{paths['fixed_landmarks'].name} / {paths['moving_landmarks'].name}: {exc}") from None
        out["landmark_ids"] = list(ids)
    if not out:
        raise ValueError(f"{folder}: no landmarks, labels or images")
    return out


def read_prediction(source: Path) -> dict[str, Any]:
    """``{"field": Image or array}`` from a field file or a case folder."""
    path = Path(source)
    if path.is_dir():
        path = single_file(path, ("field", "displacement_field", "deformation_field"), FIELD_EXTENSIONS,
                           "a displacement field")
    return {"field": read_field(path)}


def read_field(path: Path) -> Image | np.ndarray:
    """A displacement field: an :class:`Image` (z, y, x, 3), or a bare array from ``.npy``/``.npz``."""
    path = Path(path)
    lower = path.name.lower()
    if lower.endswith((".npy", ".npz")):
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read the field ({exc})") from None
        if isinstance(data, np.lib.npyio.NpzFile):
            keys = list(data.keys())
            key = "field" if "field" in keys else (keys[0] if len(keys) == 1 else None)
            if key is None:
                raise ValueError(f"{path}: several arrays ({', '.join(keys)}) and none named 'field'")
            return data[key]
        return data
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        dimension, size = reader.GetDimension(), reader.GetSize()
    except RuntimeError:
        return read_image(path)  # read_image gives the error message naming the file
    if dimension == 4 and size[3] in (2, 3) and reader.GetNumberOfComponents() == 1:
        return _field_from_4d(sitk.ReadImage(str(path)), path)
    return read_image(path)


def _field_from_4d(image: sitk.Image, path: Path) -> Image:
    """A 4D scalar image (x, y, z, c) read as a vector field; geometry of its first three axes."""
    array = np.moveaxis(sitk.GetArrayFromImage(image), 0, -1)  # (c, z, y, x) -> (z, y, x, c)
    direction = np.asarray(image.GetDirection()).reshape(4, 4)[:3, :3]
    return Image(np.ascontiguousarray(array), tuple(float(s) for s in reversed(image.GetSpacing()[:3])),
                 tuple(float(o) for o in image.GetOrigin()[:3]), tuple(direction.ravel().tolist()),
                 metadata={"path": str(path)})
