"""Reading detection references and predictions from files, paired by case.

``--reference`` and ``--prediction`` may each be:

- one file (a JSON document, or an image for the picai convention): one case;
- a folder of per-case files, the case name being the file name without its extension
  (``.json``, ``.csv``, ``.nii.gz``, ``.nii``, ``.mha``, ``.mhd``, ``.nrrd``, ``.npy``; only these
  are removed, so a DICOM-style UID such as ``1.3.6.1.4.1.9328.1`` keeps its dots); in a folder
  of images the PI-CAI postfixes ``_label`` (references) and ``_detection_map`` (predictions) are
  removed too;
- a LUNA16-style CSV for the whole data set: ``seriesuid`` (or ``case``), ``coordX``, ``coordY``,
  ``coordZ`` and ``diameter_mm`` (references) or ``probability`` (predictions), one row per point.
  A reference row with an empty ``coordX`` lists a case without any finding; a case absent from a
  prediction CSV has no detections (the file covers the whole data set).

JSON documents are in one of the formats of :func:`medarena.evaluators.detection.parse_detections`.
Roles: the reference gives ``lesions``, the prediction ``detections``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medarena.evaluators.detection import parse_detections, points_from_rows
from medarena.evaluators.tasks import CaseError

EXTENSIONS = (".nii.gz", ".json", ".csv", ".nii", ".mha", ".mhd", ".nrrd", ".npy", ".tif", ".tiff", ".png")
IMAGE_EXTENSIONS = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".npy", ".tif", ".tiff", ".png")
CASE_COLUMNS = ("seriesuid", "case", "case_id", "id")


@dataclass(frozen=True)
class CsvRows:
    """The rows of one case in a whole-data-set CSV."""

    path: Path
    case: str
    rows: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Problem:
    """A case that cannot be read: reading it raises :class:`CaseError` with ``message``."""

    message: str


def case_name(path: Path, postfix: str = "") -> str:
    """File name without a known extension (and without ``postfix`` when it ends so)."""
    name = path.name
    for ext in EXTENSIONS:
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    if postfix and name.endswith(postfix) and len(name) > len(postfix):
        name = name[: -len(postfix)]
    return name


def _is_case_file(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.name.lower().endswith(EXTENSIONS)


def read_csv_rows(path: Path) -> tuple[str, list[dict[str, str]]]:
    """The case column's name and the rows of a CSV file; ValueError for an unusable file."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in (reader.fieldnames or [])]
            rows = [{(k or "").strip(): (v if isinstance(v, str) else "") for k, v in row.items()}
                    for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"{path}: cannot read CSV ({error})") from None
    column = next((c for c in CASE_COLUMNS if c in header), None)
    if column is None:
        raise ValueError(f"{path}: malformed CSV: no case column (one of {', '.join(CASE_COLUMNS)}); "
                         f"header is {header}")
    return column, rows


def csv_cases(path: Path) -> dict[str, CsvRows]:
    """Rows of a whole-data-set CSV grouped by case."""
    column, rows = read_csv_rows(path)
    cases: dict[str, CsvRows] = {}
    for row in rows:
        name = (row.get(column) or "").strip()
        if name:
            cases.setdefault(name, CsvRows(path, name)).rows.append(row)
    return cases


def file_cases(path: Path, postfix: str = "", exclude: str = "") -> dict[str, Any]:
    """Case name -> file for a file or a folder; several files of one case become a Problem.

    Images whose name (without extension) ends with ``exclude`` belong to the other side (PI-CAI's
    layout keeps ``_label`` and ``_detection_map`` files in one folder) and are skipped.
    """
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if _is_case_file(p))
    if exclude:
        files = [f for f in files if not (f.name.lower().endswith(IMAGE_EXTENSIONS)
                                          and case_name(f).endswith(exclude))]
    found: dict[str, list[Path]] = {}
    for file in files:
        image = file.name.lower().endswith(IMAGE_EXTENSIONS)
        found.setdefault(case_name(file, postfix if image else ""), []).append(file)
    return {name: paths[0] if len(paths) == 1 else
            Problem(f"several files for case {name}: {', '.join(p.name for p in paths)}")
            for name, paths in found.items()}


def _side(path: Path, postfix: str, exclude: str = "") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file or folder")
    if path.is_file() and path.suffix.lower() == ".csv":
        return csv_cases(path)
    return file_cases(path, postfix, exclude)


def pair_files(reference: Path, prediction: Path, ref_postfix: str = "", pred_postfix: str = "",
               csv_means_all_cases: bool = True) -> list[tuple[str, Any, Any]]:
    """(case, reference source, prediction source or None) for every case with a reference, then
    a :class:`Problem` reference for every case that only the prediction has.

    Two single files pair whatever their names. A case absent from a prediction CSV gets an empty
    :class:`CsvRows` when ``csv_means_all_cases`` (the CSV covers the data set), else None.
    """
    reference, prediction = Path(reference), Path(prediction)
    refs = _side(reference, ref_postfix, exclude=pred_postfix)
    preds = _side(prediction, pred_postfix, exclude=ref_postfix)
    single = reference.is_file() and prediction.is_file() and reference.suffix.lower() != ".csv" \
        and prediction.suffix.lower() != ".csv"
    if single:
        (ref_case, ref_source), = refs.items()
        return [(ref_case, ref_source, next(iter(preds.values())))]
    pred_is_csv = prediction.is_file() and prediction.suffix.lower() == ".csv"
    pairs: list[tuple[str, Any, Any]] = []
    for case in sorted(refs):
        source = preds.get(case)
        if source is None and pred_is_csv and csv_means_all_cases:
            source = CsvRows(prediction, case)
        pairs.append((case, refs[case], source))
    for case in sorted(set(preds) - set(refs)):
        pairs.append((case, Problem(f"case {case}: the prediction has no reference "
                                    f"({_describe(preds[case])}); it is not scored"), preds[case]))
    return pairs


def _describe(source: Any) -> str:
    if isinstance(source, CsvRows):
        return f"rows of {source.path.name}"
    return str(getattr(source, "name", source))


def read_json(path: Path) -> Any:
    """A parsed JSON file; CaseError naming the file for unreadable or malformed JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CaseError(f"{path}: malformed JSON (line {error.lineno}, column {error.colno}: "
                        f"{error.msg})") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CaseError(f"{path}: cannot read ({error})") from None


def _read(source: Any, side: str) -> Any:
    if isinstance(source, Problem):
        raise CaseError(source.message)
    if isinstance(source, CsvRows):
        return points_from_rows(source.rows, f"{source.path.name}, case {source.case}")
    path = Path(source)
    if path.name.lower().endswith(IMAGE_EXTENSIONS):
        if path.suffix.lower() == ".npy":
            return np.load(path)
        from medarena.platform.loaders.images import read_image

        return read_image(path)
    return parse_detections(read_json(path), f"{path.name}")


def pair_cases(reference: Path, prediction: Path) -> list[tuple[str, Any, Any]]:
    """Cases of a detection evaluation (see the module text)."""
    return pair_files(reference, prediction, ref_postfix="_label", pred_postfix="_detection_map")


def read_reference(source: Any) -> dict[str, Any]:
    """``{"lesions": Boxes | Points | Image}``."""
    return {"lesions": _read(source, "reference")}


def read_prediction(source: Any) -> dict[str, Any]:
    """``{"detections": Boxes | Points | Image}``."""
    return {"detections": _read(source, "prediction")}
