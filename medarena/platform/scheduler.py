"""The scheduler: submissions -> one Ray task per case -> results in the database.

Only this driver writes the database; Ray tasks return :class:`CaseOutcome` values. Jobs are
keyed by (submission, case), so running the scheduler again never duplicates work: finished jobs
are kept, and jobs left ``running`` or ``evaluating`` by a stopped driver are picked up again
(an ``evaluating`` job whose predictions are stored is only evaluated, not rerun).
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import traceback
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from medarena.errors import Conflict
from medarena.platform import casejob, casestore, fairness, leaderboard, objectstore
from medarena.platform.casejob import CaseJob, CaseOutcome
from medarena.platform.challenges import ChallengeDefinition
from medarena.platform.database import Job, MetricValue, Phase, Submission, engine_for, session_scope, utcnow
from medarena.platform.layout import (  # noqa: F401 - where things live in the store, used here and by callers
    image_archive_url,
    inputs_url,
    model_url,
    namespace,
    predictions_url,
    references_url,
)
from medarena.platform.runner import remove_container
from medarena.platform.settings import Settings
from medarena.platform.submissions import SubmissionError

log = logging.getLogger(__name__)
MAX_PLATFORM_ATTEMPTS = 3
UNFINISHED = ("queued", "running", "evaluating")


class SchedulerError(Conflict, RuntimeError):
    """The scheduler cannot run (another one runs on this database, a cluster without shared storage)."""


@contextmanager
def exclusive(settings: Settings):
    """Hold the one-scheduler-per-database lock: a second `medarena run` or `worker` on the same
    database stops at once instead of running the same jobs twice."""
    url = settings.database_url
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///") + ".scheduler-lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SchedulerError(f"another scheduler is running on this database ({path})") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    with engine_for(url).connect() as connection:  # PostgreSQL: a session-level advisory lock
        if not connection.exec_driver_sql("SELECT pg_try_advisory_lock(7315047)").scalar():
            raise SchedulerError("another scheduler is running on this database")
        try:
            yield
        finally:
            connection.exec_driver_sql("SELECT pg_advisory_unlock(7315047)")
            connection.commit()


def start_ray(settings: Settings) -> None:
    import ray

    if ray.is_initialized():
        return
    if settings.ray_address and not settings.store_is_shared:
        raise SchedulerError("MEDARENA_RAY_ADDRESS is set but MEDARENA_STORE is not: on a cluster the case "
                             "store must be storage every node reaches (a shared folder or an s3:// URL)")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    kwargs = dict(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                  configure_logging=False)
    if settings.ray_address:
        ray.init(address=settings.ray_address, **kwargs)
    else:
        gpus = os.environ.get("MEDARENA_RAY_GPUS")  # logical GPUs for a local cluster
        # "local": a Ray of our own, never one that happens to run on this machine
        ray.init(address="local", num_gpus=int(gpus) if gpus else None, **kwargs)


def _run_on_worker(job: CaseJob) -> CaseOutcome:
    import ray

    gpu_ids = tuple(str(int(g)) for g in ray.get_gpu_ids())
    outcome = casejob.run_algorithm(job, gpu_ids)
    outcome.node = f"{outcome.node}/{ray.get_runtime_context().get_node_id()}"  # hosts may run several nodes
    return outcome


def _evaluate_on_worker(job: CaseJob) -> CaseOutcome:
    return casejob.evaluate_case(job)


@dataclass
class _Pending:
    job_id: int
    submission_id: int
    case_job: CaseJob
    stage: str  # "run" or "evaluate"
    resources: dict
    participant: str = ""
    cap: int = 0  # the phase's max_jobs_in_flight_per_participant (0: none)


def expand(session: Session, submission: Submission) -> None:
    """Create the missing (submission, case) jobs; existing ones are kept as they are."""
    have = {job.case_id for job in submission.jobs}
    for case in submission.phase.cases:
        if case.id not in have:
            submission.jobs.append(Job(case=case, state="queued"))
    session.flush()


def _case_job(settings: Settings, submission: Submission, job: Job, definition: ChallengeDefinition) -> CaseJob:
    challenge, phase = submission.phase.challenge.slug, submission.phase.slug
    return CaseJob(case=job.case.name, image=submission.image_digest, definition=submission.phase.challenge.definition,
                   inputs_url=inputs_url(settings, challenge, phase),
                   references_url=references_url(settings, challenge, phase),
                   predictions_url=predictions_url(settings, challenge, phase, submission.id),
                   scratch=str(settings.scratch), submission_id=submission.id, job_id=job.id,
                   image_archive=image_archive_url(settings, submission.image_digest) if settings.ray_address else None,
                   namespace=namespace(settings), scope=f"{challenge}/{phase}",
                   model_digest=submission.model_digest,
                   model_url=model_url(settings, submission.model_digest) if submission.model_digest else None)


def collect_work(settings: Settings, submission_ids: Iterable[int] | None = None) -> list[_Pending]:
    """Mark the chosen unfinished submissions running and list their unfinished jobs."""
    pending: list[_Pending] = []
    leftovers: list[str] = []
    with session_scope(settings.database_url) as session:
        query = select(Submission).where(Submission.state.in_(UNFINISHED)).order_by(Submission.id)
        if submission_ids is not None:
            query = query.where(Submission.id.in_(list(submission_ids)))
        for submission in session.scalars(query):
            expand(session, submission)
            definition = ChallengeDefinition.model_validate(submission.phase.challenge.definition)
            resources = {"num_cpus": definition.limits.cpus, "num_gpus": definition.limits.gpus}
            cap = definition.phase(submission.phase.slug).max_jobs_in_flight_per_participant
            if submission.state == "queued":
                submission.state, submission.started_at = "running", utcnow()
            for job in submission.jobs:
                if job.state not in UNFINISHED:
                    continue
                stage = "evaluate" if job.state == "evaluating" else "run"
                if job.state == "running":  # its driver stopped: its container may still run
                    leftovers.append(casejob.container_name(_case_job(settings, submission, job, definition)))
                pending.append(_Pending(job.id, submission.id, _case_job(settings, submission, job, definition),
                                        stage, resources, submission.participant, cap))
    for name in leftovers:
        remove_container(name)
    return pending


def run(settings: Settings, submission_ids: Iterable[int] | None = None,
        on_progress: Callable[[int, int, CaseOutcome | None], None] | None = None,
        on_notice: Callable[[str], None] | None = None) -> list[int]:
    """Run every unfinished job of the chosen submissions to its end; return the submissions done.

    Only one scheduler runs on a database at a time (:func:`exclusive`).

    ``on_progress(done, total, outcome)`` is called once at the start and after each finished job.
    """
    with exclusive(settings):
        return _run(settings, submission_ids, on_progress, on_notice)


def _run(settings: Settings, submission_ids, on_progress, on_notice) -> list[int]:
    import ray

    pending = collect_work(settings, submission_ids)
    submissions = sorted({p.submission_id for p in pending})
    if not pending:
        return _finish_ready(settings, submission_ids, on_notice)
    objectstore.check_store(settings.store)  # jobs not dispatched stay as they are: a later run resumes them
    start_ray(settings)
    # tasks reach an object store with the driver's settings (worker nodes need none of their own)
    store_env = objectstore.worker_env(settings.store)
    task_env = {"runtime_env": {"env_vars": store_env}} if store_env else {}
    run_remote = ray.remote(max_retries=MAX_PLATFORM_ATTEMPTS, retry_exceptions=False, **task_env)(_run_on_worker)
    evaluate_remote = ray.remote(max_retries=MAX_PLATFORM_ATTEMPTS, retry_exceptions=False,
                                 num_cpus=1, **task_env)(_evaluate_on_worker)

    def dispatch(item: _Pending):
        _set_job(settings, item.job_id, state="running" if item.stage == "run" else "evaluating",
                 started=item.stage == "run")
        if item.stage == "run":
            return run_remote.options(**item.resources).remote(item.case_job)
        return evaluate_remote.remote(item.case_job)

    # Only as many jobs as the cluster can run at once are handed to Ray, so that a job marked
    # "running" in the database really runs; the rest wait as "queued".
    waiting = fairness.FairQueue(pending)
    in_flight: dict = {}
    watch = fairness.NewWorkWatch(settings.database_url) if submission_ids is None else None

    def pick_up_new_work() -> None:  # submissions queued while this run goes on join the queue
        nonlocal total
        new = watch.new_submissions(set(submissions)) if watch else []
        fresh = collect_work(settings, new) if new else []
        waiting.extend(fresh)
        total += len(fresh)
        submissions.extend(sorted({p.submission_id for p in fresh}))

    def fill() -> None:
        nonlocal done
        while item := waiting.next_up(in_flight.values()):  # None: every waiting one is at its cap
            slots = _slots(item.resources)
            if slots == 0:  # the cluster lacks what the phase asks for: leave the job queued
                unschedulable.append(waiting.take(item))
                continue
            if sum(p.stage == "run" for p in in_flight.values()) >= slots:
                break
            waiting.take(item)
            if _cancelled(settings, item.submission_id):
                done += 1
                continue
            in_flight[dispatch(item)] = item

    unschedulable: list[_Pending] = []
    stuck: list[_Pending] = []  # platform faults beyond this run's retries: they stay queued
    total = len(pending)
    done = 0
    fill()
    if on_progress:
        on_progress(done, total, None)
    while True:
        pick_up_new_work()
        fill()  # also after a job that ended with nothing else in flight, when others still wait
        if not in_flight:
            break
        ready, _ = ray.wait(list(in_flight), num_returns=1)
        item = in_flight.pop(ready[0])
        try:
            outcome = ray.get(ready[0])
        except Exception as exc:  # noqa: BLE001 - a worker or node lost beyond Ray's own retries
            outcome = CaseOutcome(case=item.case_job.case, state="failed", reason="platform_error",
                                  platform_error=True, platform_log=f"{type(exc).__name__}: {exc}",
                                  detail="the platform lost the case's worker; the case will be run again, "
                                         "and this does not count against the submission")
        retry, outcome = _record_safely(settings, item, outcome)
        if outcome.state == "evaluating" and not _cancelled(settings, item.submission_id):
            nxt = dataclasses.replace(item, stage="evaluate")
            in_flight[dispatch(nxt)] = nxt
            continue
        if retry:
            in_flight[dispatch(item)] = item
            continue
        if outcome.platform_error:
            stuck.append(item)
        done += 1
        if on_progress:
            on_progress(done, total, outcome)
        if not any(p.submission_id == item.submission_id for p in in_flight.values()):
            try:
                _finish_ready(settings, [item.submission_id], on_notice)
            except Exception:  # noqa: BLE001 - one submission's summary never stops the others
                log.exception("closing submission %s failed", item.submission_id)
                if on_notice:
                    on_notice(f"submission {item.submission_id} could not be closed (see the log); "
                              "`medarena run` tries again")
    if unschedulable and on_notice:
        need = unschedulable[0].resources
        on_notice(f"{len(unschedulable)} case(s) stay queued: they need {need['num_cpus']:g} CPU and "
                  f"{need['num_gpus']:g} GPU each, more than this Ray cluster has "
                  f"({_describe_cluster()}); they run once such nodes join")
    if stuck and on_notice:
        on_notice(f"{len(stuck)} case(s) stay queued after {MAX_PLATFORM_ATTEMPTS} platform faults (not counted "
                  f"against anyone); the organizer sees why in Job.platform_log; `medarena run` tries them again")
    with session_scope(settings.database_url) as session:
        return [sid for sid in submissions if session.get(Submission, sid).state not in UNFINISHED]


def _cancelled(settings: Settings, submission_id: int) -> bool:
    with session_scope(settings.database_url) as session:
        return session.get(Submission, submission_id).state == "cancelled"


def cancel(settings: Settings, submission_id: int) -> int:
    """Cancel a submission: its unfinished jobs end as ``cancelled`` (a running scheduler stops
    dispatching them, and a case already running is not recorded). Returns the jobs cancelled."""
    with session_scope(settings.database_url) as session:
        submission = session.get(Submission, submission_id)
        if submission is None:
            raise SubmissionError(f"no submission {submission_id}")
        if submission.state not in UNFINISHED:
            raise SubmissionError(f"submission {submission_id} has already ended ({submission.state})")
        expand(session, submission)
        jobs = [j for j in submission.jobs if j.state in UNFINISHED]
        for job in jobs:
            job.state, job.finished_at = "cancelled", utcnow()
        submission.state, submission.finished_at = "cancelled", utcnow()
        return len(jobs)


def _slots(resources: dict) -> int:
    """How many jobs with these resources the cluster holds at once (0: not even one)."""
    import ray

    total = ray.cluster_resources()
    fits = [total.get("CPU", 0) / resources["num_cpus"]]
    if resources.get("num_gpus"):
        fits.append(total.get("GPU", 0) / resources["num_gpus"])
    return int(min(fits))


def _describe_cluster() -> str:
    import ray

    total = ray.cluster_resources()
    return f"{total.get('CPU', 0):g} CPU, {total.get('GPU', 0):g} GPU in all"


def _set_job(settings: Settings, job_id: int, state: str, started: bool = False) -> None:
    with session_scope(settings.database_url) as session:
        job = session.get(Job, job_id)
        job.state = state
        if started:
            job.started_at = utcnow()
            job.attempts += 1


def _record_safely(settings: Settings, item: _Pending, outcome: CaseOutcome) -> tuple[bool, CaseOutcome]:
    """:func:`_record`, where an unexpected failure ends the case as a platform fault (the
    traceback in the organizer's platform log) instead of ending the scheduler. Returns whether
    to retry, and the outcome as recorded."""
    try:
        return _record(settings, item, outcome), outcome
    except Exception:  # noqa: BLE001
        trace = traceback.format_exc()[-4000:]
        log.error("recording job %s failed: %s", item.job_id, trace)
    fault = CaseOutcome(case=outcome.case, state="failed", reason="platform_error", platform_error=True,
                        node=outcome.node, detail="the platform failed while recording the case; the case will "
                        "be run again, and this does not count against the submission",
                        platform_log=f"recording the outcome failed:\n{trace}")
    try:
        return _record(settings, item, fault), fault
    except Exception:  # noqa: BLE001 - the database itself is gone: the next run picks the job up again
        log.exception("recording the platform fault of job %s failed too", item.job_id)
        return False, fault


def _storable(text: str | None) -> str:
    """Text any database stores: no NUL (PostgreSQL refuses it) and no lone surrogates (what a
    file name that is not UTF-8 becomes in Python; neither driver can encode them)."""
    text = (text or "").replace("\x00", "\\x00")
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


def _record(settings: Settings, item: _Pending, outcome: CaseOutcome) -> bool:
    """Write a job's outcome; return True when it should be retried (a platform fault)."""
    with session_scope(settings.database_url) as session:
        job = session.get(Job, item.job_id)
        if job.state == "cancelled":
            return False
        if item.stage == "run":  # the node that ran (or tried) the algorithm, not the one that evaluated it
            job.node = outcome.node
        if outcome.platform_error:  # never the participant's: the job stays queued
            job.state, job.detail = "queued", _storable(outcome.detail)
            job.platform_log = _storable(outcome.platform_log or outcome.detail)
            return job.attempts < MAX_PLATFORM_ATTEMPTS  # retry now, or in a later run
        job.state = outcome.state
        job.reason, job.detail = outcome.reason, _storable(outcome.detail)
        if outcome.runtime_seconds is not None:
            job.runtime_seconds = outcome.runtime_seconds
        if item.stage == "run":
            job.stdout_tail, job.stderr_tail = _storable(outcome.stdout_tail), _storable(outcome.stderr_tail)
            job.cpu_seconds, job.peak_memory_bytes = outcome.cpu_seconds, outcome.peak_memory_bytes
            job.gpu_seconds = outcome.gpu_seconds
        if outcome.state != "evaluating":
            job.finished_at = utcnow()
        if outcome.state == "succeeded":
            job.pooled = {"pooled": outcome.pooled, "notes": outcome.notes}
            job.metrics.clear()
            session.flush()
            for row in outcome.rows:
                label = str(row.get("label") or "")
                for metric, value in row.items():
                    if metric in ("label", "case") or isinstance(value, (str, bool)) or not (
                            value is None or isinstance(value, (int, float))):
                        continue
                    job.metrics.append(MetricValue(label=label, metric=metric,
                                                   value=None if value is None else float(value)))
        return False


def _finish_ready(settings: Settings, submission_ids: Iterable[int] | None,
                  on_notice: Callable[[str], None] | None = None) -> list[int]:
    """Close the submissions whose jobs have all ended (aggregates, pooled metrics), then re-rank
    their phases; a ranking that fails is reported and never keeps a submission open."""
    from medarena.platform.container_scoring import evaluate_ready

    evaluate_ready(settings, submission_ids, on_notice)  # the phase's evaluation container, if it has one
    finished, phases = [], set()
    with session_scope(settings.database_url) as session:
        query = select(Submission).where(Submission.state.in_(UNFINISHED))
        if submission_ids is not None:
            query = query.where(Submission.id.in_(list(submission_ids)))
        for submission in session.scalars(query):
            if not submission.jobs or any(j.state in UNFINISHED for j in submission.jobs):
                continue
            leaderboard.summarize_submission(session, submission)
            submission.state = "succeeded" if any(j.state == "succeeded" for j in submission.jobs) else "failed"
            submission.finished_at = utcnow()
            finished.append(submission.id)
            phases.add(submission.phase_id)
    for phase_id in phases:
        try:
            with session_scope(settings.database_url) as session:
                leaderboard.rank_phase(session, session.get(Phase, phase_id))
        except ValueError as exc:  # RankingError among them: the recipe does not fit the results
            if on_notice:
                on_notice(f"the leaderboard was not updated: {exc}")
    return finished


def reevaluate(settings: Settings, submission_ids: Iterable[int], **kwargs) -> list[int]:
    """Score stored predictions again (after a change of the scoring recipe); never reruns an
    algorithm. Jobs whose algorithm failed keep their failure; the others go back to
    ``evaluating``. A phase's evaluation container runs again over the stored outputs.
    """
    ids = prepare_reevaluation(settings, submission_ids)
    return run(settings, ids, **kwargs)


def prepare_reevaluation(settings: Settings, submission_ids: Iterable[int]) -> list[int]:
    """Put ended submissions back to evaluating their stored predictions (a worker then runs them)."""
    ids = list(submission_ids)
    with session_scope(settings.database_url) as session:
        found = {s.id: s for s in session.scalars(select(Submission).where(Submission.id.in_(ids)))}
        for sid in ids:
            if sid not in found:
                raise SubmissionError(f"no submission {sid}")
            if found[sid].state not in ("succeeded", "failed"):
                raise SubmissionError(f"submission {sid} is {found[sid].state}: only ended submissions are "
                                      "re-evaluated")
        for submission in found.values():
            submission.evaluation_state, submission.evaluation_detail = None, ""  # its container runs again
            if submission.phase.challenge.definition["evaluation"].get("task") is None:
                submission.state = "running"  # scored by the evaluation container alone: no job reruns
                continue
            for job in submission.jobs:
                # an output the evaluator rejected is stored too, and may pass a changed recipe
                if job.state == "succeeded" or (job.reason == "invalid_output"
                                                and _has_prediction(settings, submission, job)):
                    job.state = "evaluating"
            submission.state = "running"
    return ids


def _has_prediction(settings: Settings, submission: Submission, job: Job) -> bool:
    url = predictions_url(settings, submission.phase.challenge.slug, submission.phase.slug, submission.id)
    return casestore.has_case(url, job.case.name)
