"""Reading classification references and predictions from files, paired by case.

``--reference`` and ``--prediction`` may each be one JSON file, a folder of per-case JSON files
(case name = file name without ``.json``), or one CSV for the whole data set with a case column
(``case``, ``case_id``, ``id`` or ``seriesuid``) and ``label`` (references), ``probability``,
``probability_<class>`` columns or ``label`` (predictions).

A per-case JSON file is ``{"label": l}`` or ``{"probability": p}`` (p a number, a list in class
order, or an object class -> probability); grand-challenge's bare values are accepted too: a
number is a probability, a string or a boolean a label. A case absent from the prediction is a
missing prediction.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from medarena.evaluators.tasks import CaseError
from medarena.platform.loaders.detection import CsvRows, Problem, pair_files, read_json

PROBABILITY_PREFIX = "probability_"


def pair_cases(reference: Path, prediction: Path) -> list[tuple[str, Any, Any]]:
    """(case, reference source, prediction source or None); prediction-only cases get a
    reference that fails with a message naming them."""
    return pair_files(reference, prediction, csv_means_all_cases=False)


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CaseError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise CaseError(f"{where}: {text} is not finite")
    return value


def _from_rows(source: CsvRows) -> dict[str, Any]:
    where = f"{source.path.name}, case {source.case}"
    if len(source.rows) != 1:
        raise CaseError(f"{where}: {len(source.rows)} rows; expected one row per case")
    row = {k: (v or "").strip() for k, v in source.rows[0].items()}
    per_class = {k[len(PROBABILITY_PREFIX):]: v for k, v in row.items()
                 if k.startswith(PROBABILITY_PREFIX) and v}
    if per_class:
        return {"probability": {c: _number(v, f"{where}, {PROBABILITY_PREFIX}{c}")
                                for c, v in per_class.items()}}
    if row.get("probability"):
        return {"probability": _number(row["probability"], f"{where}, probability")}
    if row.get("label"):
        return {"label": row["label"]}
    raise CaseError(f"{where}: no probability or label value")


def _from_document(document: Any, path: Path) -> dict[str, Any]:
    if isinstance(document, bool) or isinstance(document, str):
        return {"label": document}
    if isinstance(document, (int, float)):
        return {"probability": document}
    if isinstance(document, dict) and ("label" in document or "probability" in document):
        return {k: document[k] for k in ("label", "probability") if k in document}
    raise CaseError(f"{path.name}: expected {{\"label\": ...}} or {{\"probability\": ...}}, "
                    f"got {str(document)[:80]}")


def _read(source: Any) -> dict[str, Any]:
    if isinstance(source, Problem):
        raise CaseError(source.message)
    if isinstance(source, CsvRows):
        return _from_rows(source)
    path = Path(source)
    return _from_document(read_json(path), path)


def read_reference(source: Any) -> dict[str, Any]:
    """``{"label": l}``."""
    values = _read(source)
    if "label" not in values or values["label"] is None:
        raise CaseError(f"{_name(source)}: a reference needs a label")
    return {"label": values["label"]}


def read_prediction(source: Any) -> dict[str, Any]:
    """``{"probability": p}`` or ``{"label": l}``."""
    return _read(source)


def _name(source: Any) -> str:
    if isinstance(source, CsvRows):
        return f"{source.path.name}, case {source.case}"
    return Path(source).name
