"""The dashboard's reads: challenges, leaderboards with their rank stability, submissions, per-case
results and logs, each as far as the caller may see it (decided by :mod:`.access`).

Tables come back as DataFrames. What the caller may not see comes back as ``None`` (a table or a
submission) or is left out (rows of a list), never as a refusal that would say it exists.
Nothing here writes the database.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from medarena.accounts.tokens import Identity
from medarena.errors import NotFound, UserError
from medarena.evaluators.tasks import WHOLE_CASE
from medarena.platform import compute
from medarena.platform.casestore import open_store
from medarena.platform.challenges import DefinitionError, PhaseDefinition
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
from medarena.platform.settings import Settings
from medarena.platform.states import ENDED_SUBMISSION, JobState, SubmissionState
from medarena.services import access
from medarena.services.access import SubmissionView

FINISHED = SubmissionState.SUCCEEDED
JOB_STATES = tuple(s.value for s in JobState)


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
    submissions: int  # those the viewer sees
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
    image: str  # "" unless view.details
    image_digest: str
    comment: str
    state: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    job_states: dict[str, int]
    dataset_metrics: dict[str, Any]  # {} unless view.scores
    aggregates: dict[str, Any]
    rules: PhaseInfo
    view: SubmissionView
    model_digest: str | None = None  # the model tarball's sha256 (view.details), when one came with the image
    evaluation_state: str | None = None  # the phase's evaluation container: succeeded or failed
    compute: dict[str, Any] | None = None  # compute totals (view.compute): see platform.compute.Totals


@dataclass(frozen=True)
class FailedCase:
    case: str
    reason: str
    detail: str
    stdout_tail: str  # "" unless view.logs
    stderr_tail: str
    platform_log: str  # "" unless view.platform_log


def _rules(phase: Phase) -> PhaseDefinition:
    try:
        return access.phase_rules(phase)
    except DefinitionError:  # a phase the definition no longer names: everything hidden but to organizers
        return PhaseDefinition(slug=phase.slug, leaderboard_public=False, case_results_public=False)


def _phase_state(rules: PhaseDefinition, now: dt.datetime) -> str:
    if rules.is_open(now):
        return "open"
    return "upcoming" if rules.opens and now < rules.opens else "closed"


def _phase_info(session: Session, phase: Phase, caller: Identity | None, now: dt.datetime | None = None,
                who: access.Standing | None = None) -> PhaseInfo:
    challenge = phase.challenge
    rules = _rules(phase)
    who = who or access.standing(session, caller, challenge)
    count_cases = select(func.count(Case.id)).where(Case.phase_id == phase.id)
    submissions = session.scalars(select(Submission).where(Submission.phase_id == phase.id)).all()
    seen = sum(access.view_with_standing(who, caller, rules, s) is not None for s in submissions)
    return PhaseInfo(
        challenge=challenge.slug, challenge_title=challenge.title, slug=phase.slug,
        title=phase.title or rules.title or phase.slug, state=_phase_state(rules, now or utcnow()),
        opens=rules.opens, closes=rules.closes, leaderboard_public=rules.leaderboard_public,
        case_results_public=rules.case_results_public, cases=session.scalar(count_cases) or 0,
        submissions=seen, definition=challenge.definition)


def _find_phase(session: Session, challenge_slug: str, phase_slug: str) -> Phase | None:
    return session.scalar(select(Phase).join(Challenge).where(
        Challenge.slug == challenge_slug, Phase.slug == phase_slug))


def list_challenges(settings: Settings, caller: Identity | None, now: dt.datetime | None = None
                    ) -> list[ChallengeInfo]:
    """Every challenge with its phases (challenges are public; the submissions counted are those
the caller sees)."""
    with read_session(settings.database_url) as session:
        challenges = session.scalars(select(Challenge).order_by(Challenge.created_at, Challenge.id)).all()
        result = []
        for c in challenges:
            who = access.standing(session, caller, c)
            result.append(ChallengeInfo(slug=c.slug, title=c.title, description=c.description,
                                        phases=[_phase_info(session, p, caller, now, who) for p in c.phases]))
        return result


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


def _columns(fixed: list[str], rows: list[dict[str, Any]]) -> list[str]:
    extra = [key for row in rows for key in row if key not in fixed]
    return fixed + list(dict.fromkeys(extra))


LEADERBOARD_COLUMNS = ["rank", "participant", "submission", "submitted", "score", "rank interval"]


def _visible_phase(session: Session, caller: Identity | None, challenge: str, phase: str, check) -> Phase | None:
    row = _find_phase(session, challenge, phase)
    if row is None:
        return None
    try:
        check(session, caller, row)
    except (NotFound, DefinitionError):
        return None
    return row


def leaderboard(settings: Settings, caller: Identity | None, challenge: str, phase: str) -> pd.DataFrame | None:
    """The ranked rows of a phase (rank, participant, submission, submitted, score, rank
    interval, then the ranking's metric columns); None when the caller may not see it."""
    with read_session(settings.database_url) as session:
        row = _visible_phase(session, caller, challenge, phase, access.leaderboard_visible)
        if row is None:
            return None
        entries = session.scalars(
            select(LeaderboardEntry).where(LeaderboardEntry.phase_id == row.id)
            .order_by(LeaderboardEntry.rank, LeaderboardEntry.submission_id)).all()
        rows = [{"rank": e.rank, "participant": e.submission.participant, "submission": e.submission_id,
                 "submitted": e.submission.created_at, "score": e.score,
                 "rank interval": rank_interval(e.rank_low, e.rank_high), **(e.columns or {})}
                for e in entries]
    return pd.DataFrame(rows, columns=_columns(LEADERBOARD_COLUMNS, rows))


UNRANKED_COLUMNS = ["participant", "submission", "submitted", "finished"]


def unranked_results(settings: Settings, caller: Identity | None, challenge: str, phase: str
                     ) -> pd.DataFrame | None:
    """Finished submissions with the means of their aggregates, for a phase not ranked yet; None
    when the caller may not see its leaderboard."""
    with read_session(settings.database_url) as session:
        row = _visible_phase(session, caller, challenge, phase, access.leaderboard_visible)
        if row is None:
            return None
        submissions = session.scalars(
            select(Submission).where(Submission.phase_id == row.id, Submission.state == FINISHED)
            .order_by(Submission.created_at, Submission.id)).all()
        rows = [{"participant": s.participant, "submission": s.id, "submitted": s.created_at,
                 "finished": s.finished_at, **aggregate_means(s.aggregates or {})} for s in submissions]
    return pd.DataFrame(rows, columns=_columns(UNRANKED_COLUMNS, rows))


def phase_case_values(settings: Settings, caller: Identity | None, challenge: str, phase: str
                      ) -> pd.DataFrame | None:
    """Per-case values of a phase's ranked submissions (participant, submission, case, column,
    value) in rank order; None when the caller may not see per-case results."""
    columns = ["participant", "submission", "case", "column", "value"]
    with read_session(settings.database_url) as session:
        row = _visible_phase(session, caller, challenge, phase, access.case_results_visible)
        if row is None:
            return None
        query = (select(Submission.participant, Submission.id, Case.name, MetricValue.label,
                        MetricValue.metric, MetricValue.value)
                 .join(LeaderboardEntry, LeaderboardEntry.submission_id == Submission.id)
                 .join(Job, Job.submission_id == Submission.id).join(Case, Job.case_id == Case.id)
                 .join(MetricValue, MetricValue.job_id == Job.id)
                 .where(LeaderboardEntry.phase_id == row.id)
                 .order_by(LeaderboardEntry.rank, Submission.id, Case.name, MetricValue.id))
        rows = [(who, sid, case, metric_column(label, metric), value)
                for who, sid, case, label, metric, value in session.execute(query)]
    frame = pd.DataFrame(rows, columns=columns)
    frame["value"] = pd.to_numeric(frame["value"])
    return frame


STABILITY_COLUMNS = ["rank", "participant", "submission", "bootstrap rank", "frequency"]


def rank_stability(settings: Settings, caller: Identity | None, challenge: str, phase: str
                   ) -> tuple[pd.DataFrame, str] | None:
    """How often each ranked submission took each rank over the bootstrap resamples of the phase's
    ranking recipe (the resampling of :func:`medarena.evaluators.ranking.stability_values`):
    (rank, participant, submission, bootstrap rank, frequency) in leaderboard order, and a note
    when stability is undefined. None when the caller may not see the leaderboard."""
    with read_session(settings.database_url) as session:
        row = _visible_phase(session, caller, challenge, phase, access.leaderboard_visible)
        if row is None:
            return None
        entries = session.execute(select(LeaderboardEntry.submission_id, LeaderboardEntry.rank,
                                         Submission.participant, LeaderboardEntry.computed_at)
                                  .join(Submission, Submission.id == LeaderboardEntry.submission_id)
                                  .where(LeaderboardEntry.phase_id == row.id)
                                  .order_by(LeaderboardEntry.rank, LeaderboardEntry.submission_id)).all()
        if not entries:
            return pd.DataFrame(columns=STABILITY_COLUMNS), ""
        computed = max((e.computed_at for e in entries if e.computed_at), default=None)
        ranks, note = _bootstrap_ranks(settings.database_url, row.id, str(computed), len(entries))
    rows = []
    for sid, rank, participant, _ in entries:
        if sid not in ranks.columns:
            continue
        counts = ranks[sid].value_counts(normalize=True).sort_index()
        rows += [{"rank": rank, "participant": participant, "submission": sid, "bootstrap rank": int(r),
                  "frequency": float(f)} for r, f in counts.items()]
    return pd.DataFrame(rows, columns=STABILITY_COLUMNS), note or ""


@lru_cache(maxsize=32)
def _bootstrap_ranks(url: str, phase_id: int, computed: str, ranked: int) -> tuple[pd.DataFrame, str | None]:
    """The bootstrap ranks of a phase (one row per resample, one column per submission), computed
    again only when the leaderboard was (``computed``, ``ranked`` are part of the cache key)."""
    from medarena.evaluators.ranking import RankingError, case_values, stability_values
    from medarena.platform.leaderboard import compute_ranking

    try:
        with read_session(url) as session:
            phase = session.get(Phase, phase_id)
            _ranking, _note, recipe, table = compute_ranking(session, phase)
            if recipe is None:
                return pd.DataFrame(), None
            submissions = [s.id for s in phase.submissions if s.state in ENDED_SUBMISSION]
            data = case_values(table, recipe, cases=[c.name for c in phase.cases], submissions=submissions)
        stability = stability_values(data, recipe)
    except RankingError as exc:
        return pd.DataFrame(), f"the ranking's stability cannot be computed: {exc}"
    return stability.ranks, stability.note


def _job_counts(session: Session, submission_ids: list[int]) -> dict[int, Counter[str]]:
    counts: dict[int, Counter[str]] = {sid: Counter() for sid in submission_ids}
    if submission_ids:
        query = (select(Job.submission_id, Job.state, func.count(Job.id))
                 .where(Job.submission_id.in_(submission_ids)).group_by(Job.submission_id, Job.state))
        for sid, state, n in session.execute(query):
            counts[sid][state] = n
    return counts


SUBMISSION_COLUMNS = ["submission", "participant", "state", "submitted"]


def phase_submissions(settings: Settings, caller: Identity | None, challenge: str, phase: str,
                      unfinished: bool = False) -> pd.DataFrame:
    """The submissions of a phase the caller sees (id, participant, state, submitted), newest
    first; with ``unfinished``, only those not succeeded, with their number of jobs per state."""
    columns = SUBMISSION_COLUMNS + (list(JOB_STATES) if unfinished else [])
    with read_session(settings.database_url) as session:
        row = _find_phase(session, challenge, phase)
        if row is None:
            return pd.DataFrame(columns=columns)
        who, rules = access.standing(session, caller, row.challenge), _rules(row)
        query = select(Submission).where(Submission.phase_id == row.id)
        if unfinished:
            query = query.where(Submission.state != FINISHED)
        submissions = [s for s in session.scalars(query.order_by(Submission.created_at.desc(),
                                                                 Submission.id.desc()))
                       if access.view_with_standing(who, caller, rules, s) is not None]
        counts = _job_counts(session, [s.id for s in submissions]) if unfinished else {}
        rows = [{"submission": s.id, "participant": s.participant, "state": s.state, "submitted": s.created_at,
                 **({state: counts[s.id][state] for state in JOB_STATES} if unfinished else {})}
                for s in submissions]
    return pd.DataFrame(rows, columns=columns)


def _visible_submission(session: Session, caller: Identity | None, submission_id: int
                        ) -> tuple[Submission, SubmissionView] | tuple[None, None]:
    try:
        return access.visible_submission(session, caller, submission_id)
    except NotFound:
        return None, None


def submission_info(settings: Settings, caller: Identity | None, submission_id: int) -> SubmissionInfo | None:
    """A submission's header as the caller sees it; None when they may not see it at all."""
    with read_session(settings.database_url) as session:
        submission, view = _visible_submission(session, caller, submission_id)
        if submission is None:
            return None
        rules = _phase_info(session, submission.phase, caller)
        return SubmissionInfo(
            id=submission.id, challenge=rules.challenge, phase=rules.slug, participant=submission.participant,
            image=submission.image if view.details else "",
            image_digest=submission.image_digest if view.details else "",
            comment=submission.comment if view.details else "", state=submission.state,
            created_at=submission.created_at, started_at=submission.started_at,
            finished_at=submission.finished_at,
            job_states=dict(_job_counts(session, [submission.id])[submission.id]),
            dataset_metrics=(submission.dataset_metrics or {}) if view.scores else {},
            aggregates=(submission.aggregates or {}) if view.scores else {}, rules=rules, view=view,
            model_digest=submission.model_digest if view.details else None,
            evaluation_state=submission.evaluation_state,
            compute=compute.submission_totals(session, [submission.id])[submission.id].as_dict()
            if view.compute else None)


CASE_COLUMNS = ["case", "state", "reason", "detail", "runtime (s)", "attempts"]
COMPUTE_COLUMNS = ["cpu (s)", "peak memory (MiB)", "gpu (s)"]


def first_line(text: str | None, limit: int = 200) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def case_results(settings: Settings, caller: Identity | None, submission_id: int) -> pd.DataFrame:
    """One row per job of a submission the caller sees: case, state, reason, detail (first line,
    where the caller sees details), runtime, attempts, then one column per (label, metric) where
    the caller sees its scores. Empty when the caller does not see the submission."""
    with read_session(settings.database_url) as session:
        submission, view = _visible_submission(session, caller, submission_id)
        if submission is None:
            return pd.DataFrame(columns=CASE_COLUMNS)
        jobs = session.execute(
            select(Job, Case.name).join(Case, Job.case_id == Case.id)
            .where(Job.submission_id == submission_id).order_by(Case.name)).all()
        rows: list[dict[str, Any]] = [
            {"case": name, "state": job.state, "reason": job.reason or "",
             "detail": first_line(job.detail) if view.details else "", "runtime (s)": job.runtime_seconds,
             "attempts": job.attempts, **(_case_compute(job) if view.compute else {})}
            for job, name in jobs]
        if view.scores and rows:
            values = _metric_values(session, submission_id)
            if not values.empty:
                wide = values.assign(column=[metric_column(lb, m) for lb, m in
                                             zip(values["label"], values["metric"], strict=True)])
                wide = wide.pivot(index="case", columns="column", values="value")
                ordered = list(dict.fromkeys(wide.columns))
                return pd.DataFrame(rows).set_index("case").join(wide[ordered]).reset_index()
    return pd.DataFrame(rows, columns=CASE_COLUMNS + (COMPUTE_COLUMNS if view.compute else []))


def _case_compute(job: Job) -> dict[str, float | None]:
    memory = None if job.peak_memory_bytes is None else job.peak_memory_bytes / 2**20
    return dict(zip(COMPUTE_COLUMNS, (job.cpu_seconds, memory, job.gpu_seconds), strict=True))


PHASE_COMPUTE_COLUMNS = ["participant", "cases", "wall (s)", "cpu (s)", "gpu (s)", "largest peak memory (MiB)"]


def phase_compute(settings: Settings, caller: Identity | None, challenge: str, phase: str
                  ) -> tuple[pd.DataFrame, dict[str, float | None]] | None:
    """Organizers: what a phase's submissions used per participant, with a last row for all of
    them, and the phase's compute budget; None for anyone else."""
    from medarena.services.compute import phase_compute_in

    with read_session(settings.database_url) as session:
        row = _find_phase(session, challenge, phase)
        if row is None:
            return None
        try:
            access.phase_compute_visible(session, caller, row)
            data = phase_compute_in(session, row)
        except (UserError, DefinitionError):  # not an organizer; a phase the definition no longer names
            return None

    def cells(who: str, totals: dict[str, Any]) -> list:
        memory = totals["peak_memory_bytes"]
        return [who, totals["cases"], totals["wall_seconds"], totals["cpu_seconds"], totals["gpu_seconds"],
                None if memory is None else memory / 2**20]

    rows = [cells(p["participant"], p) for p in data["participants"]] + [cells("(all)", data["totals"])]
    return pd.DataFrame(rows, columns=PHASE_COMPUTE_COLUMNS), data["budget"]


def _metric_values(session: Session, submission_id: int) -> pd.DataFrame:
    query = (select(Case.name, MetricValue.label, MetricValue.metric, MetricValue.value)
             .join(Job, MetricValue.job_id == Job.id).join(Case, Job.case_id == Case.id)
             .where(Job.submission_id == submission_id).order_by(Case.name, MetricValue.id))
    frame = pd.DataFrame([tuple(r) for r in session.execute(query)], columns=["case", "label", "metric", "value"])
    frame["value"] = pd.to_numeric(frame["value"])
    return frame


def metric_values(settings: Settings, caller: Identity | None, submission_id: int) -> pd.DataFrame:
    """Long table (case, label, metric, value) of a submission's per-case metrics; empty when the
    caller does not see its scores."""
    with read_session(settings.database_url) as session:
        submission, view = _visible_submission(session, caller, submission_id)
        if submission is None or not view.scores:
            return pd.DataFrame(columns=["case", "label", "metric", "value"])
        return _metric_values(session, submission_id)


def failed_cases(settings: Settings, caller: Identity | None, submission_id: int) -> list[FailedCase]:
    """The failed jobs of a submission the caller sees, with reason; detail, logs and the platform
    log only as far as the caller may read them (an algorithm could print a hidden test set into
    its logs, so a phase can keep them from participants: ``participant_logs: none``)."""
    with read_session(settings.database_url) as session:
        submission, view = _visible_submission(session, caller, submission_id)
        if submission is None:
            return []
        jobs = session.execute(
            select(Job, Case.name).join(Case, Job.case_id == Case.id)
            .where(Job.submission_id == submission_id, Job.state == JobState.FAILED).order_by(Case.name)).all()
        return [FailedCase(case=name, reason=job.reason or "", detail=(job.detail or "") if view.details else "",
                           stdout_tail=(job.stdout_tail or "") if view.logs else "",
                           stderr_tail=(job.stderr_tail or "") if view.logs else "",
                           platform_log=(job.platform_log or "") if view.platform_log else "")
                for job, name in jobs]


def case_image_submission(settings: Settings, caller: Identity | None, submission_id: int
                          ) -> tuple[SubmissionInfo, list[str]] | None:
    """A submission whose case images the caller may see, with the names of its cases; None
    otherwise."""
    with read_session(settings.database_url) as session:
        submission = session.get(Submission, submission_id)
        if submission is None:
            return None
        try:
            access.case_images_visible(session, caller, submission)
        except NotFound:
            return None
        cases = list(session.scalars(select(Case.name).join(Job, Job.case_id == Case.id)
                                     .where(Job.submission_id == submission_id).order_by(Case.name)))
    return submission_info(settings, caller, submission_id), cases


def case_node(store_url: str, case: str, socket: str):
    """One socket of one case in a case store, opened read-only (a zarr array, or a group whose
    attributes hold a JSON value), for a page that has checked with :func:`case_image_submission`
    that its viewer may see the case's images."""
    return open_store(store_url, mode="r")[f"{case}/{socket}"]
