"""One case of one submission, as it runs on a worker: no database, only stores and a container.

``run_algorithm`` exports the case's inputs to the container contract layout in a scratch
folder, runs the container, checks its outputs against the interface and stores them as
predictions; ``evaluate_case`` scores stored (or in-memory) predictions against the references.
The scheduler runs both as Ray tasks and writes what they return to the database; ``medarena try``
runs them in-process.
"""

from __future__ import annotations

import platform as _platform
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medarena.evaluators.tasks import CaseError, get_task, jsonable
from medarena.platform import casestore, outputfs
from medarena.platform.challenges import ChallengeDefinition
from medarena.platform.containers import ContainerSpec, get_backend
from medarena.platform.containers import servers as case_servers
from medarena.platform.contract import InvalidOutput, MissingOutput, OutputTooLarge, read_outputs, write_inputs
from medarena.platform.outputfs import remove_tree
from medarena.platform.runner import RunnerError
from medarena.platform.states import JobState

MODEL_MOUNT = "/opt/ml/model"
LAZY_VOXELS = 256**3  # above this, a segmentation case is evaluated from its zarr chunks


@dataclass
class CaseJob:
    case: str
    image: str  # the pinned image ID that runs
    # validated once per run by the scheduler and shared by its cases (a dict is validated here)
    definition: ChallengeDefinition | dict[str, Any]
    inputs_url: str
    references_url: str
    predictions_url: str | None  # None: keep predictions in memory (``medarena try``)
    scratch: str
    submission_id: int | None = None
    job_id: int | None = None  # None for ``medarena try``
    image_archive: str | None = None  # on a cluster: the image in the shared store, for nodes without it
    namespace: str = ""  # tells apart the platforms that share one podman (a hash of the database URL)
    scope: str = ""  # "<challenge>/<phase>": makes the ids in inputs.json stable
    model_digest: str | None = None  # the model tarball, extracted read-only at /opt/ml/model
    model_url: str | None = None  # where the node fetches it (the store), or a local tarball
    model_dir: str | None = None  # ``medarena try`` with a model folder: mounted as it is
    backend: str = "podman"  # the container backend that runs it (Settings.container_backend)


@dataclass
class CaseOutcome:
    case: str
    state: JobState  # EVALUATING (algorithm done), SUCCEEDED or FAILED
    reason: str | None = None
    detail: str = ""
    stdout_tail: str = ""
    stderr_tail: str = ""
    runtime_seconds: float | None = None
    cpu_seconds: float | None = None  # None: not measurable on the node
    peak_memory_bytes: int | None = None
    gpu_seconds: float | None = None  # the run's wall time times the GPUs Ray assigned it
    rows: list[dict[str, Any]] = field(default_factory=list)
    pooled: Any = None
    notes: list[str] = field(default_factory=list)
    node: str = field(default_factory=_platform.node)
    platform_error: bool = False  # not the participant's fault: retried, never charged
    platform_log: str = ""  # for the organizer only: what failed, with the traceback
    predictions: dict[str, Any] | None = None
    evaluated: CaseOutcome | None = None  # the evaluation, when it ran in the same task (see run_case)


def definition_of(job: CaseJob) -> ChallengeDefinition:
    if isinstance(job.definition, ChallengeDefinition):
        return job.definition
    return ChallengeDefinition.model_validate(job.definition)


def run_case(job: CaseJob, gpu_ids: tuple[str, ...] = ()) -> CaseOutcome:
    """The algorithm and, on a case that holds no GPU, its evaluation in the same task
    (``outcome.evaluated``) from the inputs and predictions already in memory: one hand-over and
    no read-back of the predictions per case. A case that holds GPUs is evaluated by a task of its
    own, so that the GPUs go to the next case as soon as the algorithm ends; so is a case whose
    predictions are large enough to be scored chunk by chunk from the store."""
    return run_algorithm(job, gpu_ids, evaluate=not gpu_ids)


def run_algorithm(job: CaseJob, gpu_ids: tuple[str, ...] = (), evaluate: bool = False) -> CaseOutcome:
    definition = definition_of(job)
    if _many_cases_per_start(job, definition):
        return _run_on_server(job, definition, gpu_ids, evaluate)
    prefix = f"j{job.job_id}-" if job.job_id is not None else "try-"
    workdir = Path(job.scratch) / f"{prefix}{uuid.uuid4().hex[:8]}"
    if job.job_id is not None:  # the folder of an earlier attempt whose worker or node was lost
        for stale in Path(job.scratch).glob(prefix + "?" * 8):
            remove_tree(stale)
    output = None
    try:
        try:
            (workdir / "input").mkdir(parents=True)
            # /output: a file system of the run's output limit (one this worker made for an earlier
            # case of the same submission, emptied, when there is one)
            output = outputfs.take(Path(job.scratch), definition.limits.output_mb * 2**20, owner=job.submission_id)
            values = casestore.read_case(job.inputs_url, job.case, [s.slug for s in definition.interface.inputs])
            write_inputs(workdir / "input", definition.interface.inputs, values, case=job.case, scope=job.scope)
        except Exception as exc:  # noqa: BLE001 - the platform's fault, not the participant's
            return _platform_error(job.case, "exporting the inputs", exc)
        try:
            mounts = model_mounts(job)
        except Exception as exc:  # noqa: BLE001 - checked at submission: a fault here is the platform's
            return _platform_error(job.case, "preparing the model", exc)
        limits = definition.limits
        name = container_name(job)
        try:
            backend = get_backend(job.backend)
            if job.image_archive:
                backend.ensure_image(job.image, job.image_archive)
            result = backend.run(ContainerSpec(job.image, workdir / "input", output.path, limits, name=name,
                                               gpu_ids=gpu_ids, read_only_mounts=mounts, output=output))
        except RunnerError as exc:  # podman itself failed (a node without the GPU, ...)
            return _platform_error(job.case, "starting the container", exc)
        return _collect(job, definition, values, result, output.path, gpu_ids, evaluate)
    except Exception as exc:  # noqa: BLE001 - never the participant's: their faults are outcomes above
        return _platform_error(job.case, "running the case", exc)
    finally:
        if output is not None:
            outputfs.give_back(output)
        remove_tree(workdir)


def _collect(job: CaseJob, definition: ChallengeDefinition, values: dict[str, Any], result,
             output_path: Path, gpu_ids: tuple[str, ...], evaluate: bool = False) -> CaseOutcome:
    """The outcome of a container run: its failure, or its outputs checked and stored (and
    evaluated, when ``evaluate`` and they are small enough to score in memory)."""
    outcome = CaseOutcome(case=job.case, state=JobState.FAILED, stdout_tail=result.stdout_tail,
                          stderr_tail=result.stderr_tail, runtime_seconds=result.runtime_seconds,
                          cpu_seconds=result.cpu_seconds, peak_memory_bytes=result.peak_memory_bytes,
                          gpu_seconds=round(result.runtime_seconds * len(gpu_ids), 3))
    if result.status != "ok":
        outcome.reason = result.status
        outcome.detail = _describe_failure(result)
        return outcome
    try:
        grids = {s.slug: values[s.same_grid_as] for s in definition.interface.outputs if s.same_grid_as}
        predictions = read_outputs(output_path, definition.interface.outputs, expected_geometry=grids,
                                   max_bytes=definition.limits.output_mb * 2**20)
    except MissingOutput as exc:
        outcome.reason, outcome.detail = "missing_output", str(exc)
        return outcome
    except OutputTooLarge as exc:
        outcome.reason, outcome.detail = "output_too_large", str(exc)
        return outcome
    except InvalidOutput as exc:
        outcome.reason, outcome.detail = "invalid_output", str(exc)
        return outcome
    try:
        if job.predictions_url:
            casestore.write_case(job.predictions_url, job.case, predictions)
        else:
            outcome.predictions = predictions
    except Exception as exc:  # noqa: BLE001
        return _platform_error(job.case, "storing the predictions", exc)
    outcome.state = JobState.EVALUATING
    if evaluate and all(getattr(getattr(p, "array", None), "size", 0) <= LAZY_VOXELS for p in predictions.values()):
        outcome.evaluated = evaluate_case(job, predictions, inputs=values)
    return outcome


def _many_cases_per_start(job: CaseJob, definition: ChallengeDefinition) -> bool:
    phase_slug = job.scope.partition("/")[2]
    phase = next((p for p in definition.phases if p.slug == phase_slug), None)
    if phase is None or not phase.many_cases_per_start or job.model_dir or job.backend != "podman":
        return False
    try:
        if job.image_archive:
            get_backend(job.backend).ensure_image(job.image, job.image_archive)
        return case_servers.use_server(job.image)
    except RunnerError:
        return False  # the one-case path reports the fault


def _run_on_server(job: CaseJob, definition: ChallengeDefinition, gpu_ids: tuple[str, ...],
                   evaluate: bool = False) -> CaseOutcome:
    """The case served by this worker's running inference server (started on the first case)."""
    try:
        values = casestore.read_case(job.inputs_url, job.case, [s.slug for s in definition.interface.inputs])
        mounts = model_mounts(job)
        server = case_servers.server_for(job.image, definition.limits, owner=job.submission_id or job.scope,
                                         scratch=Path(job.scratch),
                                         namespace=job.namespace or "try", read_only_mounts=mounts,
                                         gpu_ids=gpu_ids)
    except Exception as exc:  # noqa: BLE001 - the platform's fault, not the participant's
        return _platform_error(job.case, "preparing the inference server", exc)
    try:
        try:
            result = server.run_case(lambda folder: write_inputs(folder, definition.interface.inputs, values,
                                                                  case=job.case, scope=job.scope))
        except RunnerError as exc:
            server.stop()
            return _platform_error(job.case, "starting the container", exc)
        outcome = _collect(job, definition, values, result, server.output.path, gpu_ids, evaluate)
        if result.status == "ok":
            outcome.stdout_tail, outcome.stderr_tail = server.case_logs()
        return outcome
    except Exception as exc:  # noqa: BLE001
        return _platform_error(job.case, "running the case", exc)
    finally:
        case_servers.release(server)


def evaluate_case(job: CaseJob, predictions: dict[str, Any] | None = None,
                  inputs: dict[str, Any] | None = None) -> CaseOutcome:
    """Score one case's predictions (read from the predictions store when not given; the inputs
    likewise from the inputs store)."""
    definition = definition_of(job)
    evaluation = definition.evaluation
    if evaluation.task is None:  # scored by the phase's evaluation container, once all cases ran
        return CaseOutcome(case=job.case, state=JobState.SUCCEEDED)
    task = get_task(evaluation.task)
    settings = evaluation.task_settings()
    outcome = CaseOutcome(case=job.case, state=JobState.FAILED)
    # the segmentation evaluator scores zarr arrays chunk by chunk: large volumes stay on disk
    lazy = LAZY_VOXELS if evaluation.task == "segmentation" else None
    try:
        if predictions is None:
            predictions = casestore.read_case(job.predictions_url, job.case, lazy_above=lazy)
        if inputs is None:
            inputs = casestore.read_case(job.inputs_url, job.case, lazy_above=lazy)
        context = inputs | casestore.read_case(job.references_url, job.case, lazy_above=lazy)
    except Exception as exc:  # noqa: BLE001
        return _platform_error(job.case, "reading the case for evaluation", exc)
    try:
        reference = {role: context[slug] for role, slug in evaluation.reference.items()}
        prediction = {role: predictions[slug] for role, slug in evaluation.prediction.items()}
        result = task.score_case(reference, prediction, settings)
    except (CaseError, ValueError, KeyError) as exc:
        outcome.reason, outcome.detail = "invalid_output", f"case {job.case}: {exc}"
        return outcome
    except Exception as exc:  # noqa: BLE001
        return _platform_error(job.case, "evaluating", exc)
    outcome.state = JobState.SUCCEEDED
    outcome.rows = jsonable(result.rows)
    outcome.pooled = jsonable(result.pooled)
    outcome.notes = list(result.notes)
    return outcome


def model_mounts(job: CaseJob) -> list[tuple[Path, str]]:
    """The model, extracted once per node (keyed by its digest), mounted read-only at /opt/ml/model."""
    if job.model_dir:
        return [(Path(job.model_dir), MODEL_MOUNT)]
    if not job.model_digest:
        return []
    from medarena.platform.tarballs import ensure_extracted

    return [(ensure_extracted(job.model_digest, job.model_url, Path(job.scratch) / "models"), MODEL_MOUNT)]


def container_name(job: CaseJob) -> str:
    """Fixed per job, so a restarted scheduler finds and removes a leftover; made of the job's id,
    never of the case name (which may hold any character)."""
    if job.job_id is None:
        return f"medarena-try-{uuid.uuid4().hex[:12]}"
    return f"medarena-{job.namespace}-j{job.job_id}"


def _describe_failure(result) -> str:
    if result.status == "exit_code":
        last = (result.stderr_tail.strip().splitlines() or [""])[-1]
        return f"the algorithm exited with code {result.exit_code}" + (f": {last}" if last else "")
    return result.message or result.status


def _platform_error(case: str, doing: str, exc: BaseException) -> CaseOutcome:
    """A fault of the platform: the participant sees only that, the organizer the traceback."""
    return CaseOutcome(case=case, state=JobState.FAILED, reason="platform_error", platform_error=True,
                       detail=f"the platform failed while {doing}; the case will be run again, "
                              "and this does not count against the submission",
                       platform_log=f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-4000:]}")
