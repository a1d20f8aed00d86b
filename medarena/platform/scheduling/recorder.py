"""What the loop writes to the database: job states as they are dispatched, and each job's
outcome when it comes back. Only the driver writes; an outcome that cannot be written becomes a
platform fault of the case instead of stopping the loop."""

from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload

from medarena.platform.casejob import CaseOutcome
from medarena.platform.database import Job, MetricValue, session_scope, utcnow
from medarena.platform.scheduling.ray_adapter import MAX_PLATFORM_ATTEMPTS
from medarena.platform.settings import Settings
from medarena.platform.states import JobState, SubmissionState, transition

if TYPE_CHECKING:
    from medarena.platform.scheduling.work import Pending

log = logging.getLogger(__name__)


def set_jobs(settings: Settings, job_ids: list[int], state: JobState, started: bool = False) -> set[int]:
    """Mark jobs as handed over, in one transaction; returns those marked (not those that, or
    whose submission, were cancelled since they were picked)."""
    marked = set()
    with session_scope(settings.database_url) as session:
        for job in session.scalars(select(Job).where(Job.id.in_(job_ids)).options(joinedload(Job.submission))):
            if job.state == JobState.CANCELLED or job.submission.state == SubmissionState.CANCELLED:
                continue
            job.state = transition(job.state, state)
            if started:
                job.started_at = utcnow()
                job.attempts += 1
            marked.add(job.id)
    return marked


def record_all_safely(settings: Settings, ended: list[tuple[Pending, CaseOutcome]]) -> list[tuple[bool, CaseOutcome]]:
    """:func:`record_safely` for several jobs, in one transaction; when that fails, each again in
    its own (so that one outcome that cannot be written costs only its own case)."""
    if len(ended) > 1:
        try:
            with session_scope(settings.database_url) as session:
                # the jobs and their metric rows in two statements, not two per job
                ids = [item.job_id for item, _ in ended]
                jobs = {job.id: job for job in session.scalars(
                    select(Job).where(Job.id.in_(ids)).options(selectinload(Job.metrics)))}
                return [(_record_in(session, item, outcome, jobs[item.job_id]), outcome) for item, outcome in ended]
        except Exception:  # noqa: BLE001
            log.warning("recording %d outcomes together failed; recording them one by one", len(ended))
    return [record_safely(settings, item, outcome) for item, outcome in ended]


def record_safely(settings: Settings, item: Pending, outcome: CaseOutcome) -> tuple[bool, CaseOutcome]:
    """:func:`record`, where an unexpected failure ends the case as a platform fault (the
    traceback in the organizer's platform log) instead of ending the scheduler. Returns whether
    to retry, and the outcome as recorded."""
    try:
        return record(settings, item, outcome), outcome
    except Exception:  # noqa: BLE001
        trace = traceback.format_exc()[-4000:]
        log.error("recording job %s failed: %s", item.job_id, trace)
    fault = CaseOutcome(case=outcome.case, state=JobState.FAILED, reason="platform_error", platform_error=True,
                        node=outcome.node, detail="the platform failed while recording the case; the case will "
                        "be run again, and this does not count against the submission",
                        platform_log=f"recording the outcome failed:\n{trace}")
    try:
        return record(settings, item, fault), fault
    except Exception:  # noqa: BLE001 - the database itself is gone: the next run picks the job up again
        log.exception("recording the platform fault of job %s failed too", item.job_id)
        return False, fault


def storable(text: str | None) -> str:
    """Text any database stores: no NUL (PostgreSQL refuses it) and no lone surrogates (what a
    file name that is not UTF-8 becomes in Python; neither driver can encode them)."""
    text = (text or "").replace("\x00", "\\x00")
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


def record(settings: Settings, item: Pending, outcome: CaseOutcome) -> bool:
    """Write a job's outcome; return True when it should be retried (a platform fault). A run's
    outcome that carries its evaluation (``outcome.evaluated``) is written with it, in the same
    transaction; the return value is then the evaluation's."""
    with session_scope(settings.database_url) as session:
        return _record_in(session, item, outcome)


def _record_in(session: Session, item: Pending, outcome: CaseOutcome, job: Job | None = None) -> bool:
    job = job or session.get(Job, item.job_id)
    retry = _apply(session, job, item.stage, outcome)
    if item.stage == "run" and outcome.evaluated is not None and job.state == JobState.EVALUATING:
        retry = _apply(session, job, "evaluate", outcome.evaluated)
    return retry


def _apply(session: Session, job: Job, stage: str, outcome: CaseOutcome) -> bool:
    if job.state == JobState.CANCELLED:
        return False
    if stage == "run":  # the node that ran (or tried) the algorithm, not the one that evaluated it
        job.node = outcome.node
    if outcome.platform_error:  # never the participant's: the job stays queued
        job.state, job.detail = transition(job.state, JobState.QUEUED), storable(outcome.detail)
        job.platform_log = storable(outcome.platform_log or outcome.detail)
        return job.attempts < MAX_PLATFORM_ATTEMPTS  # retry now, or in a later run
    job.state = transition(job.state, JobState(outcome.state))
    job.reason, job.detail = outcome.reason, storable(outcome.detail)
    if outcome.runtime_seconds is not None:
        job.runtime_seconds = outcome.runtime_seconds
    if stage == "run":
        job.stdout_tail, job.stderr_tail = storable(outcome.stdout_tail), storable(outcome.stderr_tail)
        job.cpu_seconds, job.peak_memory_bytes = outcome.cpu_seconds, outcome.peak_memory_bytes
        job.gpu_seconds = outcome.gpu_seconds
    if outcome.state != JobState.EVALUATING:
        job.finished_at = utcnow()
    if outcome.state == JobState.SUCCEEDED:
        job.pooled = {"pooled": outcome.pooled, "notes": outcome.notes}
        if job.metrics:  # scored before (a re-evaluation): the old rows go first
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
