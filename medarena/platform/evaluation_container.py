"""A phase's own evaluation container, run once per submission with grand-challenge.org's
evaluation contract (its ``evaluation/tasks.py`` set_evaluation_inputs and
``algorithms/serializers.py`` JobSerializer, commit 4e38c78ba1ff7b7329a5d71ceaa71ff7eacaf053):

- ``/input/predictions.json``: one entry per algorithm job that succeeded (as grand-challenge
  passes only successful jobs), with ``pk`` (a UUID, stable across re-evaluations), ``inputs``
  and ``outputs`` (socket values as in ``inputs.json``), ``status``, the durations and more;
- each job's outputs at ``/input/<job pk>/output/<relative_path>`` (an image as one
  ``<image pk>.mha`` in its folder, a JSON value as its file);
- the ground truth read-only at ``/opt/ml/input/data/ground_truth`` (never given to algorithms);
- ``/output/metrics.json`` read back: bounded in size and depth, NaN and infinities refused.

Leaderboard columns come from ``score_jsonpath`` and ``extra_results_columns``: dotted paths of
object keys (``aggregates.dice.mean``), the subset grand-challenge's own ``get_jsonpath``
reads. Per-case rows are taken from a list ``cases`` (or ``results``) at the top of
metrics.json whose objects name their case by ``pk`` (the job's pk in predictions.json) or
``image_name`` (the ``name`` of an input image there, ``<case>.mha``); their numeric fields
become the case's metrics. Without such rows the phase ranks on the columns only.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import stat
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from medarena.errors import InvalidInput
from medarena.evaluators.image import Image
from medarena.platform import casestore, gc_compat
from medarena.platform.challenges import ChallengeDefinition, EvaluationContainer
from medarena.platform.containers import ContainerSpec, RunResult, get_backend
from medarena.platform.contract import image_to_sitk
from medarena.platform.states import JobState

GROUND_TRUTH_MOUNT = "/opt/ml/input/data/ground_truth"
MAX_METRICS_BYTES = 4 * 2**20
MAX_METRICS_DEPTH = 32
CASE_LISTS = ("cases", "results")
CASE_KEYS = ("pk", "image_name")


class EvaluationError(InvalidInput, ValueError):
    """The evaluation container's output cannot be used: the organizer's to fix."""


@dataclass
class JobRecord:
    """What the evaluation needs to know of one algorithm job."""

    case: str
    state: str
    runtime_seconds: float | None
    started_at: str | None
    finished_at: str | None


@dataclass
class EvaluationRun:
    """Everything needed to run a submission's evaluation container, without the database."""

    challenge: str
    phase: str
    submission_id: int
    definition: dict[str, Any]
    image_digest: str  # the algorithm's
    jobs: list[JobRecord]
    inputs_url: str
    predictions_url: str
    scratch: str
    ground_truth_url: str | None = None
    evaluation_archive: str | None = None  # on a cluster: the evaluation image in the shared store
    container_name: str | None = None
    backend: str = "podman"  # the container backend that runs it (Settings.container_backend)

    @property
    def scope(self) -> str:
        return f"{self.challenge}/{self.phase}"

    @property
    def where(self) -> str:
        return f"phase {self.challenge}/{self.phase}, submission {self.submission_id}"


@dataclass
class EvaluationOutcome:
    ok: bool
    detail: str = ""  # one line naming the phase, the submission and the problem
    log: str = ""  # the container's stdout and stderr tails, for the organizer
    columns: dict[str, float] = field(default_factory=dict)  # leaderboard title -> value
    errors: dict[str, float] = field(default_factory=dict)  # title -> its error value (error_path)
    case_rows: dict[str, dict[str, float]] = field(default_factory=dict)  # case -> metric -> value
    metrics: Any = None
    note: str = ""


def container_of(definition: dict[str, Any]) -> EvaluationContainer | None:
    return ChallengeDefinition.model_validate(definition).evaluation.container


def run_evaluation(run: EvaluationRun) -> EvaluationOutcome:
    """Prepare the input, run the container, read and check metrics.json. Faults of the
    container or its output are outcomes (``ok`` False); faults of the platform raise."""
    definition = ChallengeDefinition.model_validate(run.definition)
    container = definition.evaluation.container
    if container is None or container.image_digest is None:
        raise ValueError(f"{run.where}: the phase has no pinned evaluation container")
    workdir = Path(run.scratch) / f"eval-{run.submission_id}-{uuid.uuid4().hex[:8]}"
    try:
        (workdir / "output").mkdir(parents=True)
        jobs = write_evaluation_input(workdir / "input", run, definition)
        mounts = []
        if run.ground_truth_url and container.ground_truth_digest:
            from medarena.platform.tarballs import ensure_extracted

            folder = ensure_extracted(container.ground_truth_digest, run.ground_truth_url,
                                      Path(run.scratch) / "ground-truth")
            mounts.append((folder, GROUND_TRUTH_MOUNT))
        backend = get_backend(run.backend)
        if run.evaluation_archive:
            backend.ensure_image(container.image_digest, run.evaluation_archive)
        result = backend.run(ContainerSpec(container.image_digest, workdir / "input", workdir / "output",
                                           container.limits, name=run.container_name, read_only_mounts=mounts))
        log = _log(result)
        if not result.ok:
            return EvaluationOutcome(False, f"{run.where}: the evaluation container failed: {result.message}", log)
        try:
            metrics = read_metrics(workdir / "output")
            columns, errors = leaderboard_columns(metrics, container)
            rows, note = case_rows(metrics, jobs)
        except EvaluationError as exc:
            return EvaluationOutcome(False, f"{run.where}: {exc}", log)
        return EvaluationOutcome(True, "", log, columns, errors, rows, metrics, note)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _log(result: RunResult) -> str:
    return f"--- stdout (tail)\n{result.stdout_tail}\n--- stderr (tail)\n{result.stderr_tail}"


# ---------------------------------------------------------------------------------------------
# /input


def write_evaluation_input(input_dir: Path, run: EvaluationRun, definition: ChallengeDefinition) -> dict[str, str]:
    """Write predictions.json and every successful job's outputs; return job pk -> case."""
    interface = definition.interface
    input_dir.mkdir(parents=True)
    os.chmod(input_dir, 0o755)
    json_inputs = [s.slug for s in interface.inputs if not s.is_image]
    entries, jobs = [], {}
    for job in run.jobs:
        if job.state != JobState.SUCCEEDED:
            continue
        pk = gc_compat.job_pk(run.scope, run.submission_id, job.case)
        jobs[pk] = job.case
        values = casestore.read_case(run.inputs_url, job.case, json_inputs) if json_inputs else {}
        inputs = []
        for socket in interface.inputs:
            value_pk = gc_compat.value_pk(run.scope, job.case, socket.slug)
            if socket.is_image:
                image = {"pk": gc_compat.image_pk(run.scope, job.case, socket.slug), "name": f"{job.case}.mha"}
                inputs.append(gc_compat.socket_value(socket, image=image, pk=value_pk))
            else:
                inputs.append(gc_compat.socket_value(socket, value=values.get(socket.slug), pk=value_pk))
        predictions = casestore.read_case(run.predictions_url, job.case, [s.slug for s in interface.outputs])
        outputs = []
        for socket in interface.outputs:
            value = predictions[socket.slug]
            target = input_dir / pk / "output" / socket.relative_path
            value_pk = gc_compat.value_pk(f"{run.scope}/{run.submission_id}", job.case, socket.slug)
            if socket.is_image:
                image_pk = str(uuid.uuid5(uuid.UUID(pk), socket.slug))
                _write_image(value, target / f"{image_pk}.mha", input_dir)
                outputs.append(gc_compat.socket_value(socket, image={"pk": image_pk, "name": f"{image_pk}.mha"},
                                                      pk=value_pk))
            else:
                _write_json(value, target, input_dir)
                outputs.append(gc_compat.socket_value(socket, value=value, pk=value_pk))
        entries.append({
            "pk": pk, "url": None, "api_url": None, "algorithm_image": run.image_digest,
            "inputs": gc_compat.sort_values(inputs), "outputs": gc_compat.sort_values(outputs),
            "status": "Succeeded", "hanging_protocol": None, "optional_hanging_protocols": [], "view_content": {},
            "exec_duration": gc_compat.iso_duration(job.runtime_seconds),
            "invoke_duration": gc_compat.iso_duration(job.runtime_seconds),
            "started_at": job.started_at, "completed_at": job.finished_at,
        })
    (input_dir / "predictions.json").write_text(json.dumps(entries, indent=2, allow_nan=False))
    os.chmod(input_dir / "predictions.json", 0o644)
    return jobs


def _make_dirs(root: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    while folder != root and root in folder.parents:
        os.chmod(folder, 0o755)
        folder = folder.parent


def _write_image(image: Image, path: Path, root: Path) -> None:
    _make_dirs(root, path.parent)
    sitk.WriteImage(image_to_sitk(image), str(path), useCompression=True)
    os.chmod(path, 0o644)


def _write_json(value: Any, path: Path, root: Path) -> None:
    _make_dirs(root, path.parent)
    path.write_text(json.dumps(value))
    os.chmod(path, 0o644)


# ---------------------------------------------------------------------------------------------
# /output/metrics.json


def read_metrics(output_dir: Path) -> Any:
    """metrics.json as JSON: a regular file of bounded size and depth, without NaN or infinities."""
    path = Path(output_dir) / "metrics.json"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise EvaluationError("the evaluation container wrote no /output/metrics.json") from None
    except OSError as exc:
        raise EvaluationError(f"/output/metrics.json cannot be read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise EvaluationError("/output/metrics.json is not a regular file")
        if info.st_size > MAX_METRICS_BYTES:
            raise EvaluationError(f"/output/metrics.json has {info.st_size} bytes, more than the "
                                  f"{MAX_METRICS_BYTES} accepted")
        data = file.read(MAX_METRICS_BYTES + 1)

    def refuse(name: str) -> Any:
        raise EvaluationError(f"/output/metrics.json holds {name}, which is not a JSON number")

    try:
        metrics = json.loads(data, parse_constant=refuse)
    except json.JSONDecodeError as exc:
        raise EvaluationError(f"/output/metrics.json is not valid JSON ({exc.msg} at line {exc.lineno}, "
                              f"column {exc.colno})") from None
    except (UnicodeDecodeError, RecursionError) as exc:
        raise EvaluationError(f"/output/metrics.json is not valid JSON ({type(exc).__name__})") from None
    if _depth(metrics) > MAX_METRICS_DEPTH:
        raise EvaluationError(f"/output/metrics.json is nested deeper than {MAX_METRICS_DEPTH} levels")
    return metrics


def _depth(value: Any) -> int:
    stack, deepest = [(value, 1)], 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_METRICS_DEPTH:
            break
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest


def jsonpath(metrics: Any, path: str) -> Any:
    """The value at a dotted path of object keys (``aggregates.dice.mean``); KeyError if none."""
    value = metrics
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise KeyError(path)
        value = value[key]
    return value


def _number(metrics: Any, path: str, what: str) -> float:
    try:
        value = jsonpath(metrics, path)
    except KeyError:
        raise EvaluationError(f"{what} {path!r} does not resolve in /output/metrics.json") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise EvaluationError(f"{what} {path!r} in /output/metrics.json is {json.dumps(value)[:80]}, not a number")
    return float(value)


def leaderboard_columns(metrics: Any, container: EvaluationContainer) -> tuple[dict[str, float], dict[str, float]]:
    """(title -> value, title -> error) of the score and the extra columns."""
    columns = {container.score_title: _number(metrics, container.score_jsonpath, "score_jsonpath")}
    errors = {}
    if container.score_error_jsonpath:
        errors[container.score_title] = _number(metrics, container.score_error_jsonpath, "score_error_jsonpath")
    for i, column in enumerate(container.extra_results_columns):
        columns[column.title] = _number(metrics, column.path, f"extra_results_columns.{i}.path")
        if column.error_path:
            errors[column.title] = _number(metrics, column.error_path, f"extra_results_columns.{i}.error_path")
    return columns, errors


def case_rows(metrics: Any, jobs: dict[str, str]) -> tuple[dict[str, dict[str, float]], str]:
    """Per-case metrics from metrics.json, keyed by case (see the module's docstring); with a
    note when there are none."""
    items = next((metrics[key] for key in CASE_LISTS if isinstance(metrics, dict)
                  and isinstance(metrics.get(key), list)), None)
    if not items or not any(isinstance(item, dict) and any(k in item for k in CASE_KEYS) for item in items):
        return {}, ("metrics.json names no case (a 'cases' or 'results' list of objects with 'pk' or "
                    "'image_name'): the phase ranks on the leaderboard columns only")
    by_name = {f"{case}.mha": case for case in jobs.values()}
    rows: dict[str, dict[str, float]] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise EvaluationError(f"metrics.json: item {i} of the case list is not an object")
        pk, name = item.get("pk"), item.get("image_name")
        case = jobs.get(pk) if isinstance(pk, str) else by_name.get(name) if isinstance(name, str) else None
        if case is None:
            named = item.get("pk", item.get("image_name"))
            raise EvaluationError(f"metrics.json: item {i} of the case list names no job of this submission "
                                  f"({json.dumps(named)[:80]})")
        if case in rows:
            raise EvaluationError(f"metrics.json: case {case!r} appears twice in the case list")
        rows[case] = {str(k)[:100]: float(v) for k, v in item.items()
                      if k not in CASE_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool)}
    return rows, ""
