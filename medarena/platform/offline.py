"""``medarena evaluate``: score prediction files against reference files, without a container,
a database or Ray.

Each task family has a loader module, ``medarena.platform.loaders.<task>``, with
``pair_cases(reference, prediction)`` (case name, reference source, prediction source or None),
``read_reference(source)`` and ``read_prediction(source)`` (role -> value). One bad case is
reported and never stops the others.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from medarena.errors import InvalidInput
from medarena.evaluators.tasks import CaseError, CaseResult, aggregate, get_task, jsonable


class EvaluationSetupError(InvalidInput, ValueError):
    """The run cannot start (unknown task, bad settings, missing folder)."""


def build_settings(task_name: str, config: dict[str, Any], options: dict[str, Any]):
    """Validate the config file's settings overlaid with the command-line options."""
    try:
        task = get_task(task_name)
    except ValueError as exc:
        raise EvaluationSetupError(str(exc)) from None
    fields = task.Settings.model_fields
    merged = dict(config)
    for key, value in options.items():
        if value is None:
            continue
        if key not in fields:
            flag = "--" + key.replace("_threshold", "").replace("_", "-") if key != "score_threshold" \
                else "--score-threshold"
            raise EvaluationSetupError(f"{flag} does not apply to the {task_name} task "
                                       f"(its settings: {', '.join(fields)})")
        merged[key] = value
    try:
        return task.Settings.model_validate(merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise EvaluationSetupError(f"setting {where}: {err['msg']}") from None


def evaluate_files(task_name: str, reference: Path, prediction: Path, settings,
                   on_case: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Score every case; return the JSON of docs/file-layouts.md (``medarena evaluate``)."""
    task = get_task(task_name)
    loader = importlib.import_module(f"medarena.platform.loaders.{task_name}")
    for path, side in ((reference, "reference"), (prediction, "prediction")):
        if not Path(path).exists():
            raise EvaluationSetupError(f"{path}: the {side} path does not exist")
    try:
        pairs = loader.pair_cases(Path(reference), Path(prediction))
    except (ValueError, OSError) as exc:  # the loaders name the folder and the case
        raise EvaluationSetupError(_one_line(exc)) from None
    if not pairs:
        raise EvaluationSetupError(f"{reference}: no reference cases found")
    rows: list[dict[str, Any]] = []
    results: list[CaseResult] = []
    errors: list[dict[str, str]] = []
    notes: list[dict[str, str]] = []
    for case, ref_source, pred_source in pairs:
        try:
            ref = loader.read_reference(ref_source)
            if pred_source is None:
                result = task.missing_prediction(ref, settings)
                if result is None:
                    raise CaseError("no prediction for this case")
                if not result.notes:
                    notes.append({"case": case, "note": "no prediction: scored as an empty prediction"})
            else:
                result = task.score_case(ref, loader.read_prediction(pred_source), settings)
        except (CaseError, ValueError, OSError, KeyError, RuntimeError) as exc:
            errors.append({"case": case, "error": _one_line(exc)})
        else:
            results.append(result)
            rows.extend({"case": case, "label": None, **row} for row in result.rows)
            notes.extend({"case": case, "note": n} for n in result.notes)
        if on_case:
            on_case(case)
    dataset = task.score_dataset(results, settings) if results else {}
    return jsonable({"task": task_name, "cases": rows, "aggregates": aggregate(rows), "dataset": dataset,
                     "errors": errors, "notes": notes})


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def write_json(result: dict[str, Any], path: Path) -> None:
    """Write atomically: a partial file never replaces a good one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, allow_nan=False))
    tmp.replace(path)
