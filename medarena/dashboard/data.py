"""The dashboard's queries: plain reads through SQLAlchemy, returned as DataFrames and dataclasses.

Nothing here writes the database. Visibility rules of a phase (``leaderboard_public``,
``case_results_public``) are applied here, so that every view gets them the same way.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from medarena.evaluators.tasks import WHOLE_CASE
from medarena.platform.challenges import PhaseDefinition
from medarena.platform.database import (
    Case,
    Challenge,
    Job,
    LeaderboardEntry,
    MetricValue,
    Phase,
    Submission,
    read_session,
    utcnow,
)

FINISHED = "succeeded"
JOB_STATES = ("queued", "running", "evaluating", "succeeded", "failed", "cancelled")


def inputs_store_url(store: str, challenge: str, phase: str) -> str:
    return f"{store.rstrip('/')}/inputs/{challenge}/{phase}.zarr"


def references_store_url(store: str, challenge: str, phase: str) -> str:
    return f"{store.rstrip('/')}/references/{challenge}/{phase}.zarr"


def prediction_store_url(store: str, challenge: str, phase: str, submission_id: int) -> str:
    return f"{store.rstrip('/')}/predictions/{challenge}/{phase}/{submission_id}.zarr"


@dataclass(frozen=True)
class PhaseInfo:
    challenge: str
    challenge_title: str
    slug: str
    title: str
    state: str  # "open", "closed" or "upcoming"
    opens: dt.datetime | None
    closes: dt.datetime | None
    leaderboard_public: bool
    case_results_public: bool
    cases: int
    submissions: int
    definition: dict[str, Any] = field(repr=False, default_factory=dict)


@dataclass(frozen=True)
class ChallengeInfo:
    slug: str
    title: str
    description: str
    phases: list[PhaseInfo]


@dataclass(frozen=True)
class SubmissionInfo:
    id: int
    challenge: str
    phase: str
    participant: str
    image: str
    image_digest: str
    comment: str
    state: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    job_states: dict[str, int]
    dataset_metrics: dict[str, Any]
    aggregates: dict[str, Any]
    rules: PhaseInfo
    model_digest: str | None = None  # the model tarball's sha256, when one came with the image
    evaluation_state: str | None = None  # the phase's evaluation container: succeeded or failed


def _rules(definition: dict[str, Any], phase_slug: str) -> PhaseDefinition:
    for phase in definition.get("phases", []):
        if phase.get("slug") == phase_slug:
            return PhaseDefinition.model_validate(phase)
    # a phase the definition no longer names: keep everything hidden but the job states
    return PhaseDefinition(slug=phase_slug, leaderboard_public=False, case_results_public=False)


def _phase_state(rules: PhaseDefinition, now: dt.datetime) -> str:
    if rules.is_open(now):
        return "open"
    return "upcoming" if rules.opens and now < rules.opens else "closed"


def _phase_info(session: Session, phase: Phase, now: dt.datetime | None = None) -> PhaseInfo:
    challenge = phase.challenge
    rules = _rules(challenge.definition, phase.slug)
    count_cases = select(func.count(Case.id)).where(Case.phase_id == phase.id)
    count_submissions = select(func.count(Submission.id)).where(Submission.phase_id == phase.id)
    return PhaseInfo(
        challenge=challenge.slug, challenge_title=challenge.title, slug=phase.slug,
        title=phase.title or rules.title or phase.slug, state=_phase_state(rules, now or utcnow()),
        opens=rules.opens, closes=rules.closes, leaderboard_public=rules.leaderboard_public,
        case_results_public=rules.case_results_public, cases=session.scalar(count_cases) or 0,
        submissions=session.scalar(count_submissions) or 0, definition=challenge.definition)


def _find_phase(session: Session, challenge_slug: str, phase_slug: str) -> Phase | None:
    return session.scalar(select(Phase).join(Challenge).where(
        Challenge.slug == challenge_slug, Phase.slug == phase_slug))


def list_challenges(url: str, now: dt.datetime | None = None) -> list[ChallengeInfo]:
    with read_session(url) as session:
        challenges = session.scalars(select(Challenge).order_by(Challenge.created_at, Challenge.id)).all()
        return [ChallengeInfo(slug=c.slug, title=c.title, description=c.description,
                              phases=[_phase_info(session, p, now) for p in c.phases])
                for c in challenges]


def phase_info(url: str, challenge_slug: str, phase_slug: str) -> PhaseInfo | None:
    with read_session(url) as session:
        phase = _find_phase(session, challenge_slug, phase_slug)
        return None if phase is None else _phase_info(session, phase)


def metric_column(label: str | None, metric: str) -> str:
    """``dice`` for a whole-case metric, ``liver/dice`` for a labelled one."""
    return metric if not label or label == WHOLE_CASE else f"{label}/{metric}"


def aggregate_means(aggregates: dict[str, Any]) -> dict[str, float | None]:
    """Column -> mean from ``Submission.aggregates`` ({label: {metric: {"mean": ...}}})."""
    means: dict[str, float | None] = {}
    for label, metrics in aggregates.items():
        if not isinstance(metrics, dict):
            continue
        for metric, stats in metrics.items():
            if isinstance(stats, dict) and "mean" in stats:
                means[metric_column(label, metric)] = stats["mean"]
    return means


def rank_interval(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return ""
    return f"{low:g}–{high:g}"


LEADERBOARD_COLUMNS = ["rank", "participant", "submission", "submitted", "score", "rank interval"]


def leaderboard(url: str, challenge_slug: str, phase_slug: str) -> pd.DataFrame:
    """The ranked rows of a phase (empty when none, or when the leaderboard is not public).

    Columns: rank, participant, submission (id), submitted, score, rank interval, then the metric
    columns of the ranking in their stored order.
    """
    with read_session(url) as session:
        phase = _find_phase(session, challenge_slug, phase_slug)
        if phase is None or not _rules(phase.challenge.definition, phase_slug).leaderboard_public:
            return pd.DataFrame(columns=LEADERBOARD_COLUMNS)
        entries = session.scalars(
            select(LeaderboardEntry).where(LeaderboardEntry.phase_id == phase.id)
            .order_by(LeaderboardEntry.rank, LeaderboardEntry.submission_id)).all()
        rows = [{"rank": e.rank, "participant": e.submission.participant, "submission": e.submission_id,
                 "submitted": e.submission.created_at, "score": e.score,
                 "rank interval": rank_interval(e.rank_low, e.rank_high), **(e.columns or {})}
                for e in entries]
    return pd.DataFrame(rows, columns=_columns(LEADERBOARD_COLUMNS, rows))


UNRANKED_COLUMNS = ["participant", "submission", "submitted", "finished"]


def unranked_results(url: str, challenge_slug: str, phase_slug: str) -> pd.DataFrame:
    """Finished submissions with the means of their aggregates, for a phase not ranked yet."""
    with read_session(url) as session:
        phase = _find_phase(session, challenge_slug, phase_slug)
        if phase is None or not _rules(phase.challenge.definition, phase_slug).leaderboard_public:
            return pd.DataFrame(columns=UNRANKED_COLUMNS)
        submissions = session.scalars(
            select(Submission).where(Submission.phase_id == phase.id, Submission.state == FINISHED)
            .order_by(Submission.created_at, Submission.id)).all()
        rows = [{"participant": s.participant, "submission": s.id, "submitted": s.created_at,
                 "finished": s.finished_at, **aggregate_means(s.aggregates or {})} for s in submissions]
    return pd.DataFrame(rows, columns=_columns(UNRANKED_COLUMNS, rows))


def _columns(fixed: list[str], rows: list[dict[str, Any]]) -> list[str]:
    extra = [key for row in rows for key in row if key not in fixed]
    return fixed + list(dict.fromkeys(extra))


def _job_counts(session: Session, submission_ids: list[int]) -> dict[int, Counter[str]]:
    counts: dict[int, Counter[str]] = {sid: Counter() for sid in submission_ids}
    if submission_ids:
        query = (select(Job.submission_id, Job.state, func.count(Job.id))
                 .where(Job.submission_id.in_(submission_ids)).group_by(Job.submission_id, Job.state))
        for sid, state, n in session.execute(query):
            counts[sid][state] = n
    return counts


def unfinished_submissions(url: str, challenge_slug: str, phase_slug: str) -> pd.DataFrame:
    """Submissions that have not succeeded (queued, running, evaluating, failed, cancelled), with
    their number of jobs per state; newest first."""
    columns = ["submission", "participant", "state", "submitted", *JOB_STATES]
    with read_session(url) as session:
        phase = _find_phase(session, challenge_slug, phase_slug)
        if phase is None:
            return pd.DataFrame(columns=columns)
        submissions = session.scalars(
            select(Submission).where(Submission.phase_id == phase.id, Submission.state != FINISHED)
            .order_by(Submission.created_at.desc(), Submission.id.desc())).all()
        counts = _job_counts(session, [s.id for s in submissions])
        rows = [{"submission": s.id, "participant": s.participant, "state": s.state,
                 "submitted": s.created_at, **{state: counts[s.id][state] for state in JOB_STATES}}
                for s in submissions]
    return pd.DataFrame(rows, columns=columns)


def phase_submissions(url: str, challenge_slug: str, phase_slug: str) -> pd.DataFrame:
    """Every submission of a phase (id, participant, state, submitted), newest first."""
    with read_session(url) as session:
        phase = _find_phase(session, challenge_slug, phase_slug)
        submissions = [] if phase is None else session.scalars(
            select(Submission).where(Submission.phase_id == phase.id)
            .order_by(Submission.created_at.desc(), Submission.id.desc())).all()
        rows = [{"submission": s.id, "participant": s.participant, "state": s.state,
                 "submitted": s.created_at} for s in submissions]
    return pd.DataFrame(rows, columns=["submission", "participant", "state", "submitted"])


def submission_info(url: str, submission_id: int) -> SubmissionInfo | None:
    """A submission's header; scores (dataset metrics, aggregates) only when its leaderboard is
    public, since they would reveal it."""
    with read_session(url) as session:
        submission = session.get(Submission, submission_id)
        if submission is None:
            return None
        rules = _phase_info(session, submission.phase)
        public = rules.leaderboard_public
        return SubmissionInfo(
            id=submission.id, challenge=rules.challenge, phase=rules.slug,
            participant=submission.participant, image=submission.image,
            image_digest=submission.image_digest, comment=submission.comment, state=submission.state,
            created_at=submission.created_at, started_at=submission.started_at,
            finished_at=submission.finished_at,
            job_states=dict(_job_counts(session, [submission.id])[submission.id]),
            dataset_metrics=(submission.dataset_metrics or {}) if public else {},
            aggregates=(submission.aggregates or {}) if public else {}, rules=rules,
            model_digest=submission.model_digest, evaluation_state=submission.evaluation_state)


CASE_COLUMNS = ["case", "state", "reason", "detail", "runtime (s)", "attempts"]


def case_results(url: str, submission_id: int) -> pd.DataFrame:
    """One row per job of a submission: case, state, reason, detail (first line), runtime,
    attempts, then one column per (label, metric) when the phase's case results are public."""
    with read_session(url) as session:
        submission = session.get(Submission, submission_id)
        if submission is None:
            return pd.DataFrame(columns=CASE_COLUMNS)
        public = _rules(submission.phase.challenge.definition, submission.phase.slug).case_results_public
        jobs = session.execute(
            select(Job, Case.name).join(Case, Job.case_id == Case.id)
            .where(Job.submission_id == submission_id).order_by(Case.name)).all()
        rows: list[dict[str, Any]] = [
            {"case": name, "state": job.state, "reason": job.reason or "",
             "detail": first_line(job.detail), "runtime (s)": job.runtime_seconds, "attempts": job.attempts}
            for job, name in jobs]
        if public and rows:
            values = metric_values(url, submission_id, session=session)
            if not values.empty:
                wide = values.assign(column=[metric_column(lb, m) for lb, m in
                                             zip(values["label"], values["metric"], strict=True)])
                wide = wide.pivot(index="case", columns="column", values="value")
                ordered = list(dict.fromkeys(wide.columns))
                table = pd.DataFrame(rows).set_index("case").join(wide[ordered]).reset_index()
                return table
    return pd.DataFrame(rows, columns=CASE_COLUMNS)


def metric_values(url: str, submission_id: int, *, session: Session | None = None) -> pd.DataFrame:
    """Long table (case, label, metric, value) of a submission's per-case metrics; empty when the
    phase's case results are not public."""
    columns = ["case", "label", "metric", "value"]
    own = session is None
    session = session or read_session(url)
    try:
        submission = session.get(Submission, submission_id)
        if submission is None or not _rules(submission.phase.challenge.definition,
                                            submission.phase.slug).case_results_public:
            return pd.DataFrame(columns=columns)
        query = (select(Case.name, MetricValue.label, MetricValue.metric, MetricValue.value)
                 .join(Job, MetricValue.job_id == Job.id).join(Case, Job.case_id == Case.id)
                 .where(Job.submission_id == submission_id).order_by(Case.name, MetricValue.id))
        rows = [tuple(r) for r in session.execute(query)]
    finally:
        if own:
            session.close()
    frame = pd.DataFrame(rows, columns=columns)
    frame["value"] = pd.to_numeric(frame["value"])
    return frame


@dataclass(frozen=True)
class FailedCase:
    case: str
    reason: str
    detail: str
    stdout_tail: str
    stderr_tail: str


def failed_cases(url: str, submission_id: int) -> list[FailedCase]:
    """The failed jobs of a submission with reason and detail; the log tails only when the phase's
    case results are public (an algorithm could print a hidden test set into its logs)."""
    with read_session(url) as session:
        submission = session.get(Submission, submission_id)
        if submission is None:
            return []
        public = _rules(submission.phase.challenge.definition, submission.phase.slug).case_results_public
        jobs = session.execute(
            select(Job, Case.name).join(Case, Job.case_id == Case.id)
            .where(Job.submission_id == submission_id, Job.state == "failed").order_by(Case.name)).all()
        return [FailedCase(case=name, reason=job.reason or "", detail=job.detail or "",
                           stdout_tail=job.stdout_tail if public else "",
                           stderr_tail=job.stderr_tail if public else "")
                for job, name in jobs]


def first_line(text: str | None, limit: int = 200) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def split_dataset_metrics(metrics: dict[str, Any]) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
    """Numbers (``{"ap": 0.8}``) and curves (``{"roc": {"fpr": [...], "tpr": [...]}}``, any dict of
    two or more equally long numeric lists) of ``Submission.dataset_metrics``."""
    numbers: dict[str, float] = {}
    curves: dict[str, pd.DataFrame] = {}
    for name, value in metrics.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float) or value is None:
            numbers[name] = value
        elif isinstance(value, dict):
            lists = {k: v for k, v in value.items() if isinstance(v, list)}
            scalars = {k: v for k, v in value.items()
                       if isinstance(v, int | float) and not isinstance(v, bool)}
            lengths = {len(v) for v in lists.values()}
            if len(lists) >= 2 and len(lengths) == 1:
                curves[name] = pd.DataFrame(lists)
            for key, number in scalars.items():
                numbers[f"{name}.{key}"] = number
    return numbers, curves


def submission_cases(url: str, submission_id: int) -> list[str]:
    """Names of the cases that a submission has jobs for, sorted."""
    with read_session(url) as session:
        query = (select(Case.name).join(Job, Job.case_id == Case.id)
                 .where(Job.submission_id == submission_id).order_by(Case.name))
        return list(session.scalars(query))


def phase_case_values(url: str, challenge_slug: str, phase_slug: str) -> pd.DataFrame:
    """Per-case metric values of the ranked submissions of a phase (participant, submission, case,
    column, value) in rank order; empty unless both the leaderboard and case results are public."""
    columns = ["participant", "submission", "case", "column", "value"]
    with read_session(url) as session:
        phase = _find_phase(session, challenge_slug, phase_slug)
        if phase is None:
            return pd.DataFrame(columns=columns)
        rules = _rules(phase.challenge.definition, phase_slug)
        if not (rules.leaderboard_public and rules.case_results_public):
            return pd.DataFrame(columns=columns)
        query = (select(Submission.participant, Submission.id, Case.name, MetricValue.label,
                        MetricValue.metric, MetricValue.value)
                 .join(LeaderboardEntry, LeaderboardEntry.submission_id == Submission.id)
                 .join(Job, Job.submission_id == Submission.id).join(Case, Job.case_id == Case.id)
                 .join(MetricValue, MetricValue.job_id == Job.id)
                 .where(LeaderboardEntry.phase_id == phase.id)
                 .order_by(LeaderboardEntry.rank, Submission.id, Case.name, MetricValue.id))
        rows = [(who, sid, case, metric_column(label, metric), value)
                for who, sid, case, label, metric, value in session.execute(query)]
    frame = pd.DataFrame(rows, columns=columns)
    frame["value"] = pd.to_numeric(frame["value"])
    return frame
