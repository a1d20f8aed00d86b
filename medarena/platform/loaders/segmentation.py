"""Reading segmentation label maps from files, paired by case.

``--reference`` and ``--prediction`` are each one image file or a folder of them (any format
SimpleITK reads: NIfTI, MHA/MHD, NRRD, TIFF, PNG, DICOM; a sub-folder is read as one DICOM
series). Files are matched by case name, the file name without its extensions
(``case001.nii.gz`` -> ``case001``). A reference without a prediction is a missing prediction;
predictions without a reference are left for the caller to report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medarena.evaluators.tasks import CaseError
from medarena.platform.loaders.images import read_image

# Longest first, so that ".nii.gz" wins over ".gz".
IMAGE_SUFFIXES = (
    ".nii.gz", ".nrrd.gz", ".mha.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr", ".tif", ".tiff",
    ".png", ".dcm", ".gipl", ".hdr", ".img.gz", ".img", ".vtk", ".jpg", ".jpeg", ".bmp",
)
# Data files that belong to a header file and are not cases of their own.
_COMPANION_SUFFIXES = (".raw", ".zraw", ".raw.gz")


def case_name(path: Path) -> str:
    """The case name of an image path: its name without the image extensions."""
    name = path.name
    lower = name.lower()
    for suffix in IMAGE_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name if path.is_dir() else path.stem


def _is_image(path: Path) -> bool:
    if path.name.startswith("."):
        return False
    if path.is_dir():
        return True
    lower = path.name.lower()
    if lower.endswith(_COMPANION_SUFFIXES):
        return False
    if lower.endswith(".img") and path.with_suffix(".hdr").exists():
        return False  # the data file of an Analyze header
    return lower.endswith(IMAGE_SUFFIXES)


def list_cases(path: Path) -> dict[str, Path]:
    """Case name -> image path, for one file, one DICOM series folder, or a folder of images.

    A folder holding only ``.dcm`` or extension-less files is one DICOM series (one case).
    """
    path = Path(path)
    if path.is_file():
        return {case_name(path): path}
    entries = [p for p in sorted(path.iterdir()) if not p.name.startswith(".")]
    if entries and all(p.is_file() and p.suffix.lower() in (".dcm", "") for p in entries):
        return {path.name: path}
    cases: dict[str, Path] = {}
    for entry in entries:
        if not _is_image(entry):
            continue
        name = case_name(entry)
        if name in cases:
            raise ValueError(f"{path}: two files for case {name!r}: {cases[name].name} and {entry.name}")
        cases[name] = entry
    return cases


def pair_cases(reference: Path, prediction: Path) -> list[tuple[str, Any, Any]]:
    """(case, reference path, prediction path or None) for every reference case."""
    references = list_cases(Path(reference))
    predictions = list_cases(Path(prediction))
    if Path(reference).is_file() and Path(prediction).is_file():
        return [(case_name(Path(reference)), Path(reference), Path(prediction))]
    return [(case, source, predictions.get(case)) for case, source in references.items()]


def _read_mask(source: Any, side: str) -> dict[str, Any]:
    try:
        return {"mask": read_image(source)}
    except ValueError as error:
        raise CaseError(f"{side} {error}") from None


def read_reference(source: Any) -> dict[str, Any]:
    """{"mask": Image} of a reference file; CaseError naming the file when it cannot be read."""
    return _read_mask(source, "reference")


def read_prediction(source: Any) -> dict[str, Any]:
    """{"mask": Image} of a prediction file; CaseError naming the file when it cannot be read."""
    return _read_mask(source, "prediction")
