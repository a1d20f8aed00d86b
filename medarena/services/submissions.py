"""Submissions: submitting a completed upload, following it, its logs, cancelling, re-evaluating."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from medarena.accounts.tokens import Identity
from medarena.errors import Conflict
from medarena.platform import casestore, layout, leaderboard, scheduler
from medarena.platform.account_tables import Upload
from medarena.platform.database import Job, LeaderboardEntry, Submission, session_scope
from medarena.platform.runner import save_image
from medarena.platform.settings import Settings
from medarena.platform.submissions import create_submission, find_phase
from medarena.services import access, compute
from medarena.services.access import SubmissionView


def submit(settings: Settings, caller: Identity | None, challenge: str, phase: str, upload_id: str,
           comment: str = "") -> dict[str, Any]:
    """Submit the caller's completed upload to a phase (its window and the caller's limit checked)."""
    with session_scope(settings.database_url) as session:
        phase_row, _ = find_phase(session, challenge, phase)
        caller = access.require_participant(session, caller, phase_row.challenge)
        upload = access.own_upload(session, caller, upload_id)
        _check_usable(upload, phase_row.id, f"{challenge}/{phase}")
        digest = upload.image_digest
    if settings.ray_address:  # the other nodes load the pinned image from the shared store
        archive = layout.image_archive_url(settings, digest)
        if not casestore.exists(archive):
            save_image(digest, archive)
    with session_scope(settings.database_url) as session:
        submission = create_submission(session, challenge, phase, caller.username,
                                       f"upload {upload_id}" + (f" ({upload.filename})" if upload.filename else ""),
                                       digest, comment, submitter_id=caller.user_id)
        upload = session.get(Upload, upload_id)  # read again under the phase's write lock
        session.refresh(upload)
        _check_usable(upload, submission.phase_id, f"{challenge}/{phase}")
        upload.state = "used"
        session.flush()
        return _describe(session, submission, access.submission_view(session, caller, submission))


def _check_usable(upload: Upload, phase_id: int, where: str) -> None:
    if upload.phase_id != phase_id:
        raise Conflict(f"upload {upload.id} was made for another phase; upload the image again for {where}")
    if upload.state == "used":
        raise Conflict(f"upload {upload.id} was submitted already")
    if upload.state != "complete":
        raise Conflict(f"upload {upload.id} is {upload.state}, not complete; send its parts and complete it first")


def _describe(session, submission: Submission, view: SubmissionView) -> dict[str, Any]:
    cases = []
    for job in sorted(submission.jobs, key=lambda j: j.case.name):
        case = {"case": job.case.name, "state": job.state, "reason": job.reason,
                "runtime_seconds": job.runtime_seconds}
        if view.details:
            case["detail"] = job.detail
        if view.compute:
            case.update(compute.case_figures(job))
        if view.scores:
            case["metrics"] = [{k: v for k, v in row.items() if k != "case"} for row in leaderboard.job_rows(job)]
        cases.append(case)
    data: dict[str, Any] = {
        "id": submission.id, "challenge": submission.phase.challenge.slug, "phase": submission.phase.slug,
        "participant": submission.participant, "state": submission.state, "created_at": submission.created_at,
        "started_at": submission.started_at, "finished_at": submission.finished_at, "cases": cases,
        "case_counts": _counts(submission)}
    if view.compute:
        data["compute"] = compute.submission_totals(session, submission)
    if view.details:
        data.update(image=submission.image, image_digest=submission.image_digest, comment=submission.comment)
    if view.scores:
        entry = session.scalar(select(LeaderboardEntry).where(LeaderboardEntry.submission_id == submission.id))
        data.update(aggregates=submission.aggregates, dataset=submission.dataset_metrics or {})
        rules = access.phase_rules(submission.phase)
        if entry is not None and (view.staff or rules.leaderboard_public):
            data["rank"] = {"rank": entry.rank, "score": entry.score, "rank_low": entry.rank_low,
                            "rank_high": entry.rank_high, "of": _ranked(session, submission.phase_id)}
    return data


def _ranked(session, phase_id: int) -> int:
    return len(session.scalars(select(LeaderboardEntry.id).where(LeaderboardEntry.phase_id == phase_id)).all())


def _counts(submission: Submission) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job in submission.jobs:
        counts[job.state] = counts.get(job.state, 0) + 1
    return counts


def _load(session, submission_id: int) -> Submission | None:
    return session.scalar(select(Submission).where(Submission.id == submission_id).options(
        selectinload(Submission.jobs).selectinload(Job.case), selectinload(Submission.jobs).selectinload(Job.metrics)))


def get_submission(settings: Settings, caller: Identity | None, submission_id: int) -> dict[str, Any]:
    with session_scope(settings.database_url) as session:
        _load(session, submission_id)
        submission, view = access.visible_submission(session, caller, submission_id)
        return _describe(session, submission, view)


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
    with session_scope(settings.database_url) as session:
        submission, view = access.visible_submission(session, caller, submission_id)
        access.may_cancel(view, submission)
        if submission.state not in scheduler.UNFINISHED:
            raise Conflict(f"submission {submission_id} has already ended ({submission.state})")
    cancelled = scheduler.cancel(settings, submission_id)
    return {"id": submission_id, "state": "cancelled", "cases_cancelled": cancelled}


def reevaluate(settings: Settings, caller: Identity | None, submission_ids: list[int]) -> dict[str, Any]:
    """Organizers: score stored predictions again; the worker does it (no algorithm runs again)."""
    with session_scope(settings.database_url) as session:
        for sid in submission_ids:
            submission, view = access.visible_submission(session, caller, sid)
            if not view.staff:
                access.require_organizer(session, caller, submission.phase.challenge)
            if submission.state not in ("succeeded", "failed"):
                raise Conflict(f"submission {sid} is {submission.state}: only ended submissions are re-evaluated")
    ids = scheduler.prepare_reevaluation(settings, submission_ids)
    return {"submissions": ids, "state": "running"}
