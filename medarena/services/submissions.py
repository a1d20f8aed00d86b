"""Submissions: submitting a completed upload, following it, its logs, cancelling, re-evaluating."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, case, func, select, true
from sqlalchemy.orm import Session, joinedload, selectinload

from medarena.accounts.tokens import Identity
from medarena.errors import Conflict, InvalidInput
from medarena.platform.account_tables import Upload
from medarena.platform.containers import get_backend
from medarena.platform.database import Job, LeaderboardEntry, MetricValue, Phase, Submission, session_scope
from medarena.platform.settings import Settings
from medarena.platform.states import ENDED_SUBMISSION, UNFINISHED, SubmissionState, UploadState, transition
from medarena.platform.submissions import create_submission, find_phase
from medarena.services import access, compute
from medarena.services.access import SubmissionView
from medarena.services.cache import VersionedCache, to_json

JOB_STATES = ("queued", "running", "evaluating", "succeeded", "failed", "cancelled")
DESCRIPTIONS = VersionedCache(256)  # (database, submission id) -> everything an organizer sees of it
ANSWERS = VersionedCache(1024)  # (database, submission id, view, rank shown) -> the JSON of that view


def submit(settings: Settings, caller: Identity | None, challenge: str, phase: str, upload_id: str,
           comment: str = "", model_upload_id: str | None = None) -> dict[str, Any]:
    """Submit the caller's completed image upload to a phase (its window and the caller's limit
    checked), with the caller's completed model upload where the algorithm has a model tarball."""
    where = f"{challenge}/{phase}"
    with session_scope(settings.database_url) as session:
        phase_row, _ = find_phase(session, challenge, phase)
        caller = access.require_participant(session, caller, phase_row.challenge)
        upload = access.own_upload(session, caller, upload_id)
        _check_usable(upload, phase_row.id, where, "image")
        digest = upload.image_digest
        model = model_digest = None
        if model_upload_id is not None:
            model = access.own_upload(session, caller, model_upload_id)
            _check_usable(model, phase_row.id, where, "model")
            model_digest = model.image_digest
            model = f"upload {model_upload_id}" + (f" ({model.filename})" if model.filename else "")
    if settings.ray_address:  # the other nodes load the pinned image from the shared store
        from medarena.platform import casestore, layout

        archive = layout.image_archive_url(settings, digest)
        if not casestore.exists(archive):
            get_backend(settings.container_backend).save_image(digest, archive)
    with session_scope(settings.database_url) as session:
        submission = create_submission(session, challenge, phase, caller.username,
                                       f"upload {upload_id}" + (f" ({upload.filename})" if upload.filename else ""),
                                       digest, comment, submitter_id=caller.user_id, model=model or "",
                                       model_digest=model_digest)
        for uid, kind in ((upload_id, "image"), (model_upload_id, "model")):
            if uid is None:
                continue
            upload = session.get(Upload, uid)  # read again under the phase's write lock
            session.refresh(upload)
            _check_usable(upload, submission.phase_id, where, kind)
            upload.state = transition(upload.state, UploadState.USED)
        session.flush()
        return _describe(session, submission, access.submission_view(session, caller, submission))


KIND_NAMES = {"image": "an image", "model": "a model tarball"}


def _check_usable(upload: Upload, phase_id: int, where: str, kind: str) -> None:
    if upload.kind != kind:
        field, names = ("model_upload_id" if kind == "model" else "upload_id"), KIND_NAMES
        raise InvalidInput(f"{field}: upload {upload.id} is {names[upload.kind]}, not {names[kind]}")
    if upload.phase_id != phase_id:
        raise Conflict(f"upload {upload.id} was made for another phase; upload the {kind} again for {where}")
    if upload.state == UploadState.USED:
        raise Conflict(f"upload {upload.id} was submitted already")
    if upload.state != UploadState.COMPLETE:
        raise Conflict(f"upload {upload.id} is {upload.state}, not complete; send its parts and complete it first")


DETAILS = ("image", "image_digest", "comment", "model", "model_digest")
SCORES = ("aggregates", "dataset")
COMPUTE = ("compute",)


def _full_description(session: Session, submission: Submission) -> dict[str, Any]:
    """Everything about a submission that any caller may see of it (an organizer sees all of it)."""
    from medarena.platform.leaderboard import job_rows

    cases = [{"case": job.case.name, "state": job.state, "reason": job.reason,
              "runtime_seconds": job.runtime_seconds, "detail": job.detail, **compute.case_figures(job),
              "metrics": [{k: v for k, v in row.items() if k != "case"} for row in job_rows(job)]}
             for job in sorted(submission.jobs, key=lambda j: j.case.name)]
    data: dict[str, Any] = {
        "id": submission.id, "challenge": submission.phase.challenge.slug, "phase": submission.phase.slug,
        "participant": submission.participant, "state": submission.state, "created_at": submission.created_at,
        "started_at": submission.started_at, "finished_at": submission.finished_at, "cases": cases,
        "case_counts": _counts(submission), "image": submission.image, "image_digest": submission.image_digest,
        "comment": submission.comment, "model": submission.model, "model_digest": submission.model_digest,
        "aggregates": submission.aggregates, "dataset": submission.dataset_metrics or {},
        "compute": compute.submission_totals(session, submission)}
    entry = session.scalar(select(LeaderboardEntry).where(LeaderboardEntry.submission_id == submission.id))
    if entry is not None:
        data["rank"] = {"rank": entry.rank, "score": entry.score, "rank_low": entry.rank_low,
                        "rank_high": entry.rank_high, "of": _ranked(session, submission.phase_id)}
    return data


def _as_seen(full: dict[str, Any], view: SubmissionView, rank_shown: bool) -> dict[str, Any]:
    """A full description cut down to what one view of it shows (a new dict; ``full`` is kept)."""
    hidden = (() if view.details else DETAILS) + (() if view.scores else SCORES) + (
        () if view.scores and rank_shown else ("rank",)) + (() if view.compute else COMPUTE)
    data = {k: v for k, v in full.items() if k not in hidden and k != "cases"}
    case_hidden = (() if view.details else ("detail",)) + (() if view.scores else ("metrics",)) + (
        () if view.compute else compute.CASE_FIELDS)
    data["cases"] = [{k: v for k, v in c.items() if k not in case_hidden} for c in full["cases"]]
    return data


def _rank_shown(submission: Submission, view: SubmissionView) -> bool:
    return view.staff or access.phase_rules(submission.phase).leaderboard_public


def _describe(session: Session, submission: Submission, view: SubmissionView) -> dict[str, Any]:
    return _as_seen(_full_description(session, submission), view, _rank_shown(submission, view))


def _version_query():
    """One statement for :func:`_version` (built once: building it costs more than running it)."""
    sid, pid = bindparam("submission_id"), bindparam("phase_id")
    jobs = [func.count(Job.id), func.max(Job.started_at), func.max(Job.finished_at), func.sum(Job.attempts),
            func.sum(Job.runtime_seconds), *(func.sum(case((Job.state == s, 1), else_=0)) for s in JOB_STATES)]
    metrics = [func.count(MetricValue.id), func.min(MetricValue.id), func.max(MetricValue.id),
               func.sum(MetricValue.value)]
    entries = [func.count(LeaderboardEntry.id), func.min(LeaderboardEntry.id), func.max(LeaderboardEntry.id),
               func.max(LeaderboardEntry.computed_at), func.sum(LeaderboardEntry.rank)]
    parts = (select(*jobs).where(Job.submission_id == sid).subquery(),
             select(*metrics).join(Job, MetricValue.job_id == Job.id).where(Job.submission_id == sid).subquery(),
             select(*entries).where(LeaderboardEntry.phase_id == pid).subquery())
    one_row_each = parts[0].join(parts[1], true()).join(parts[2], true())
    return select(*(column for part in parts for column in part.c)).select_from(one_row_each)


VERSION = _version_query()


def _version(session: Session, submission: Submission) -> tuple:
    """Changes whenever anything shown of the submission does: its state and times, its jobs'
    states, times, attempts and runtimes, their metric rows (re-scoring replaces them) and the
    phase's leaderboard (the rank, and how many are ranked; as :mod:`leaderboards` reads it)."""
    row = session.execute(VERSION, {"submission_id": submission.id, "phase_id": submission.phase_id}).one()
    return (submission.state, submission.started_at, submission.finished_at, *row)


def _ranked(session, phase_id: int) -> int:
    return len(session.scalars(select(LeaderboardEntry.id).where(LeaderboardEntry.phase_id == phase_id)).all())


def _counts(submission: Submission) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job in submission.jobs:
        counts[job.state] = counts.get(job.state, 0) + 1
    return counts


# a submission with what the access rules read (its phase and challenge): one query, built once
WITH_RULES = select(Submission).where(Submission.id == bindparam("submission_id")).options(
    joinedload(Submission.phase).joinedload(Phase.challenge))
_LOAD_OPTIONS = (selectinload(Submission.jobs).selectinload(Job.case),
                 selectinload(Submission.jobs).selectinload(Job.metrics))


def _load(session, submission_id: int) -> Submission | None:
    return session.scalar(select(Submission).where(Submission.id == submission_id).options(*_LOAD_OPTIONS))


def get_submission(settings: Settings, caller: Identity | None, submission_id: int) -> dict[str, Any]:
    with session_scope(settings.database_url) as session:
        submission, view = access.visible_submission(session, caller, submission_id, *_LOAD_OPTIONS)
        return _describe(session, submission, view)


def submission_json(settings: Settings, caller: Identity | None, submission_id: int,
                    only_kept: bool = False) -> bytes | None:
    """:func:`get_submission` as the JSON the API answers with: built once per version of the
    submission, then cut down to the caller's view, which is decided on every request.
    ``only_kept``: None when it would have to be built (two small queries at most: cheap enough
    for the event loop)."""
    url = settings.database_url
    with session_scope(url) as session:
        submission = session.scalar(WITH_RULES, {"submission_id": submission_id})
        view = access.seen_submission(session, caller, submission, submission_id)
        rank_shown = _rank_shown(submission, view)
        version = _version(session, submission)  # read before the rows the answer is built from

        def full() -> dict[str, Any]:
            return _full_description(session, _load(session, submission_id))

        def answer() -> bytes:
            return to_json(_as_seen(DESCRIPTIONS.get((url, submission_id), version, full), view, rank_shown))

        return ANSWERS.get((url, submission_id, view, rank_shown), version, None if only_kept else answer)


def get_logs(settings: Settings, caller: Identity | None, submission_id: int) -> dict[str, Any]:
    """The stdout and stderr tails of every case (and the platform log, for organizers)."""
    from medarena.errors import PermissionDenied

    with session_scope(settings.database_url) as session:
        submission, view = access.visible_submission(session, caller, submission_id)
        if not view.logs:
            if view.owner:
                raise PermissionDenied(f"phase {submission.phase.challenge.slug}/{submission.phase.slug} does not "
                                       "show participants the logs of its cases (participant_logs: none)")
            raise access.NotFound(f"no submission {submission_id}")
        cases = []
        for job in sorted(submission.jobs, key=lambda j: j.case.name):
            case = {"case": job.case.name, "state": job.state, "reason": job.reason, "detail": job.detail,
                    "stdout": job.stdout_tail, "stderr": job.stderr_tail}
            if view.platform_log:
                case.update(platform_log=job.platform_log, node=job.node, attempts=job.attempts)
            cases.append(case)
        return {"id": submission.id, "cases": cases}


def list_submissions(settings: Settings, caller: Identity | None, challenge: str | None = None,
                     phase: str | None = None) -> list[dict[str, Any]]:
    """The caller's own submissions, and every one of the challenges they organize."""
    from medarena.platform.database import Challenge, Phase

    with session_scope(settings.database_url) as session:
        query = access.visible_submissions(session, caller).options(selectinload(Submission.jobs))
        if challenge:
            query = query.join(Phase, Phase.id == Submission.phase_id).join(
                Challenge, Challenge.id == Phase.challenge_id).where(Challenge.slug == challenge)
            if phase:
                query = query.where(Phase.slug == phase)
        return [{"id": s.id, "challenge": s.phase.challenge.slug, "phase": s.phase.slug, "participant": s.participant,
                 "state": s.state, "case_counts": _counts(s), "created_at": s.created_at}
                for s in session.scalars(query)]


def cancel(settings: Settings, caller: Identity | None, submission_id: int) -> dict[str, Any]:
    from medarena.platform import scheduler

    with session_scope(settings.database_url) as session:
        submission, view = access.visible_submission(session, caller, submission_id)
        access.may_cancel(view, submission)
        if submission.state not in UNFINISHED:
            raise Conflict(f"submission {submission_id} has already ended ({submission.state})")
    cancelled = scheduler.cancel(settings, submission_id)
    return {"id": submission_id, "state": SubmissionState.CANCELLED, "cases_cancelled": cancelled}


def reevaluate(settings: Settings, caller: Identity | None, submission_ids: list[int]) -> dict[str, Any]:
    """Organizers: score stored predictions again; the worker does it (no algorithm runs again)."""
    from medarena.platform import scheduler

    with session_scope(settings.database_url) as session:
        for sid in submission_ids:
            submission, view = access.visible_submission(session, caller, sid)
            if not view.staff:
                access.require_organizer(session, caller, submission.phase.challenge)
            if submission.state not in ENDED_SUBMISSION:
                raise Conflict(f"submission {sid} is {submission.state}: only ended submissions are re-evaluated")
    ids = scheduler.prepare_reevaluation(settings, submission_ids)
    return {"submissions": ids, "state": SubmissionState.RUNNING}
