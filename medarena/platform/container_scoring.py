"""Scoring submissions with a phase's evaluation container: choosing what to run, recording what
it gave, and ranking a phase on its leaderboard columns. Only the driver calls this."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from medarena.platform import evaluation_container as ec
from medarena.platform import layout
from medarena.platform.challenges import ChallengeDefinition
from medarena.platform.database import MetricValue, Phase, Submission, session_scope
from medarena.platform.settings import Settings
from medarena.platform.states import ENDED_SUBMISSION, UNFINISHED, EvaluationState, JobState, transition


def evaluate_ready(settings: Settings, submission_ids: Iterable[int] | None,
                   on_notice: Callable[[str], None] | None = None) -> None:
    """Run the evaluation container over each chosen unfinished submission of a container-scored
    phase whose algorithm jobs have all ended, and record what it gave."""

    runs: list[ec.EvaluationRun] = []
    with session_scope(settings.database_url) as session:
        query = select(Submission).where(Submission.state.in_(UNFINISHED), Submission.evaluation_state.is_(None))
        if submission_ids is not None:
            query = query.where(Submission.id.in_(list(submission_ids)))
        for submission in session.scalars(query):
            definition = ChallengeDefinition.model_validate(submission.phase.challenge.definition)
            container = definition.evaluation.container
            if container is None or not submission.jobs or any(j.state in UNFINISHED for j in submission.jobs):
                continue
            challenge, phase = submission.phase.challenge.slug, submission.phase.slug
            if not any(j.state == JobState.SUCCEEDED for j in submission.jobs):
                submission.evaluation_detail = "no case succeeded: there is nothing to evaluate"
                continue
            runs.append(ec.EvaluationRun(
                challenge=challenge, phase=phase, submission_id=submission.id,
                definition=submission.phase.challenge.definition, image_digest=submission.image_digest,
                jobs=[ec.JobRecord(j.case.name, j.state, j.runtime_seconds,
                                   j.started_at.isoformat() + "Z" if j.started_at else None,
                                   j.finished_at.isoformat() + "Z" if j.finished_at else None)
                      for j in submission.jobs],
                inputs_url=layout.inputs_url(settings, challenge, phase),
                predictions_url=layout.predictions_url(settings, challenge, phase, submission.id),
                scratch=str(settings.scratch),
                ground_truth_url=(layout.ground_truth_url(settings, challenge, container.ground_truth_digest)
                                  if container.ground_truth_digest else None),
                evaluation_archive=(layout.image_archive_url(settings, container.image_digest)
                                    if settings.ray_address and container.image_digest else None),
                container_name=f"medarena-{layout.namespace(settings)}-eval{submission.id}",
                backend=settings.container_backend))
    for run in runs:
        try:
            outcome = ec.run_evaluation(run)
        except Exception as exc:  # noqa: BLE001 - podman or the store failed: neither side's fault
            outcome = ec.EvaluationOutcome(
                False, f"{run.where}: the platform failed while running the evaluation container "
                       f"({type(exc).__name__}: {str(exc)[:300]}); `medarena reevaluate {run.submission_id}` "
                       "runs it again", traceback.format_exc()[-4000:])
        record(settings, run.submission_id, outcome)
        if not outcome.ok and on_notice:
            on_notice(f"evaluation failed ({outcome.detail}); the organizer sees its log with "
                      f"`medarena results {run.submission_id} --logs`")


def record(settings: Settings, submission_id: int, outcome: ec.EvaluationOutcome) -> None:
    """Write an evaluation's outcome in one transaction: all of it or, on failure, only why."""
    with session_scope(settings.database_url) as session:
        submission = session.get(Submission, submission_id)
        definition = ChallengeDefinition.model_validate(submission.phase.challenge.definition)
        submission.evaluation_log = outcome.log
        submission.evaluation_detail = outcome.detail or outcome.note
        submission.evaluation_state = transition(submission.evaluation_state,
                                                 EvaluationState.SUCCEEDED if outcome.ok else EvaluationState.FAILED)
        submission.metrics_json = outcome.metrics if outcome.ok else None
        if definition.evaluation.task is not None:
            return  # per-case rows come from the built-in evaluator
        for job in submission.jobs:
            job.metrics.clear()
        session.flush()
        for job in submission.jobs:
            for metric, value in outcome.case_rows.get(job.case.name, {}).items():
                job.metrics.append(MetricValue(label="", metric=metric, value=value))


def columns_of(submission: Submission, definition: ChallengeDefinition) -> dict[str, Any]:
    """The leaderboard columns of a submission's metrics.json ({} when none)."""
    container = definition.evaluation.container
    if container is None or submission.evaluation_state != EvaluationState.SUCCEEDED or submission.metrics_json is None:
        return {}
    try:
        columns, errors = ec.leaderboard_columns(submission.metrics_json, container)
    except ec.EvaluationError:
        return {}
    return {**columns, **{f"{title} error": value for title, value in errors.items()}}


def ranks_on_columns(definition: ChallengeDefinition, table: pd.DataFrame) -> bool:
    """A container-scored phase ranks on its score column unless it declares a ranking recipe and
    its metrics.json gave per-case rows."""
    return definition.evaluation.container is not None and (not definition.ranking or table.empty)


def column_ranking(session: Session, phase: Phase, definition: ChallengeDefinition) -> tuple[pd.DataFrame, str]:
    """Rank on the score column (ascending or descending as declared); ties share the best rank."""
    container = definition.evaluation.container
    rows = []
    for submission in phase.submissions:
        if submission.state in ENDED_SUBMISSION:
            value = columns_of(submission, definition).get(container.score_title)
            if value is not None:
                rows.append({"submission": submission.id, "score": value})
    ranking = pd.DataFrame(rows, columns=["submission", "score"])
    if not ranking.empty:
        ranking["rank"] = ranking["score"].rank(method="min", ascending=container.score_default_sort == "asc")
        ranking["rank"] = ranking["rank"].astype(int)
        ranking = ranking.sort_values(["rank", "submission"]).reset_index(drop=True)
    note = (f"ranked on {container.score_title!r} of the evaluation container's metrics.json "
            f"({container.score_default_sort}ending); no per-case ranking or bootstrap")
    return ranking, note
