"""What there is to run: submissions expanded into one job per case, the unfinished jobs picked
up (also those a stopped driver left), cancelling, re-evaluation, and closing the submissions
whose jobs have all ended."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from medarena.platform import casejob, casestore, leaderboard
from medarena.platform.casejob import CaseJob
from medarena.platform.challenges import ChallengeDefinition
from medarena.platform.containers import get_backend
from medarena.platform.database import Job, Phase, Submission, session_scope, utcnow
from medarena.platform.layout import (
    image_archive_url,
    inputs_url,
    model_url,
    namespace,
    predictions_url,
    references_url,
)
from medarena.platform.settings import Settings
from medarena.platform.states import EVALUATIONS, JobState, SubmissionState, transition
from medarena.platform.submissions import SubmissionError

UNFINISHED = (JobState.QUEUED, JobState.RUNNING, JobState.EVALUATING)


@dataclass
class Pending:
    job_id: int
    submission_id: int
    case_job: CaseJob
    stage: str  # "run" or "evaluate"
    resources: dict
    participant: str = ""
    cap: int = 0  # the phase's max_jobs_in_flight_per_participant (0: none)
    per_task: int = 1  # how many cases of its submission one task may run (see SERVED_CASES_PER_TASK)


# A phase whose inference servers serve many cases per start hands a slot its cases this many at a
# time: one task and one database transaction for them, where each case costs milliseconds.
SERVED_CASES_PER_TASK = 8


def expand(session: Session, submission: Submission) -> None:
    """Create the missing (submission, case) jobs; existing ones are kept as they are."""
    have = {job.case_id for job in submission.jobs}
    for case in submission.phase.cases:
        if case.id not in have:
            submission.jobs.append(Job(case=case, state=transition(None, JobState.QUEUED)))
    session.flush()


def case_job(settings: Settings, submission: Submission, job: Job, definition: ChallengeDefinition) -> CaseJob:
    challenge, phase = submission.phase.challenge.slug, submission.phase.slug
    return CaseJob(case=job.case.name, image=submission.image_digest, definition=definition,
                   inputs_url=inputs_url(settings, challenge, phase),
                   references_url=references_url(settings, challenge, phase),
                   predictions_url=predictions_url(settings, challenge, phase, submission.id),
                   scratch=str(settings.scratch), submission_id=submission.id, job_id=job.id,
                   image_archive=image_archive_url(settings, submission.image_digest) if settings.ray_address else None,
                   namespace=namespace(settings), scope=f"{challenge}/{phase}",
                   model_digest=submission.model_digest,
                   model_url=model_url(settings, submission.model_digest) if submission.model_digest else None,
                   backend=settings.container_backend)


def collect_work(settings: Settings, submission_ids: Iterable[int] | None = None,
                 definitions: dict[int, ChallengeDefinition] | None = None) -> list[Pending]:
    """Mark the chosen unfinished submissions running and list their unfinished jobs.
    ``definitions`` (challenge id -> validated definition) is the run's: each definition is
    validated once per run, and its cases share it."""
    definitions = {} if definitions is None else definitions
    pending: list[Pending] = []
    leftovers: list[str] = []
    with session_scope(settings.database_url) as session:
        query = select(Submission).where(Submission.state.in_(UNFINISHED)).order_by(Submission.id)
        if submission_ids is not None:
            query = query.where(Submission.id.in_(list(submission_ids)))
        for submission in session.scalars(query):
            expand(session, submission)
            challenge = submission.phase.challenge
            if challenge.id not in definitions:
                definitions[challenge.id] = ChallengeDefinition.model_validate(challenge.definition)
            definition = definitions[challenge.id]
            resources = {"num_cpus": definition.limits.cpus, "num_gpus": definition.limits.gpus}
            phase = definition.phase(submission.phase.slug)
            cap = phase.max_jobs_in_flight_per_participant
            per_task = SERVED_CASES_PER_TASK if phase.many_cases_per_start else 1
            if submission.state == SubmissionState.QUEUED:
                submission.state = transition(submission.state, SubmissionState.RUNNING)
                submission.started_at = utcnow()
            for job in submission.jobs:
                if job.state not in UNFINISHED:
                    continue
                stage = "evaluate" if job.state == JobState.EVALUATING else "run"
                item = case_job(settings, submission, job, definition)
                if job.state == JobState.RUNNING:  # its driver stopped: its container may still run
                    leftovers.append(casejob.container_name(item))
                pending.append(Pending(job.id, submission.id, item, stage, resources, submission.participant, cap,
                                       per_task))
    if leftovers:
        backend = get_backend(settings.container_backend)
        for name in leftovers:
            backend.remove(name)
    return pending


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
            job.state, job.finished_at = transition(job.state, JobState.CANCELLED), utcnow()
        submission.state, submission.finished_at = transition(submission.state, SubmissionState.CANCELLED), utcnow()
        return len(jobs)


def finish_ready(settings: Settings, submission_ids: Iterable[int] | None,
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
            submission.state = transition(submission.state, SubmissionState.SUCCEEDED if any(
                j.state == JobState.SUCCEEDED for j in submission.jobs) else SubmissionState.FAILED)
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


def prepare_reevaluation(settings: Settings, submission_ids: Iterable[int]) -> list[int]:
    """Put ended submissions back to evaluating their stored predictions (a worker then runs them)."""
    ids = list(submission_ids)
    with session_scope(settings.database_url) as session:
        found = {s.id: s for s in session.scalars(select(Submission).where(Submission.id.in_(ids)))}
        for sid in ids:
            if sid not in found:
                raise SubmissionError(f"no submission {sid}")
            if found[sid].state not in (SubmissionState.SUCCEEDED, SubmissionState.FAILED):
                raise SubmissionError(f"submission {sid} is {found[sid].state}: only ended submissions are "
                                      "re-evaluated")
        for submission in found.values():
            submission.evaluation_state = EVALUATIONS.move(submission.evaluation_state, None)  # it runs again
            submission.evaluation_detail = ""
            if submission.phase.challenge.definition["evaluation"].get("task") is None:
                # scored by the evaluation container alone: no job reruns
                submission.state = transition(submission.state, SubmissionState.RUNNING)
                continue
            for job in submission.jobs:
                # an output the evaluator rejected is stored too, and may pass a changed recipe
                if job.state == JobState.SUCCEEDED or (job.reason == "invalid_output"
                                                and has_prediction(settings, submission, job)):
                    job.state = transition(job.state, JobState.EVALUATING)
            submission.state = transition(submission.state, SubmissionState.RUNNING)
    return ids


def has_prediction(settings: Settings, submission: Submission, job: Job) -> bool:
    url = predictions_url(settings, submission.phase.challenge.slug, submission.phase.slug, submission.id)
    return casestore.has_case(url, job.case.name)
