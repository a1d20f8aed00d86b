"""Which submissions count against a participant's submission limit.

- A cancelled submission never counts.
- A submission whose cases all failed for reasons of the platform (a lost worker, a node gone)
  never counts: the participant did nothing wrong.
- Any other failed submission (no case succeeded) counts only where the phase says
  ``failed_submissions_count: true``; grand-challenge.org does not count them, nor do we by default.
- A submission whose evaluation container failed never counts: that is the organizer's fault.
- Queued, running and succeeded submissions count.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from medarena.platform.database import Submission
from medarena.platform.states import EvaluationState, JobState, SubmissionState

PLATFORM_REASONS = frozenset({"platform_error"})


def counts_against_limit(state: str, job_ends: Iterable[tuple[str, str | None]], failed_count: bool,
                         evaluation_state: str | None = None) -> bool:
    """Whether a submission in ``state`` with jobs ending as ``(state, reason)`` pairs counts."""
    if state == SubmissionState.CANCELLED or evaluation_state == EvaluationState.FAILED:
        return False
    ended = [(job_state, reason) for job_state, reason in job_ends if job_state != JobState.CANCELLED]
    if ended and all(job_state == JobState.FAILED and reason in PLATFORM_REASONS for job_state, reason in ended):
        return False
    if state == SubmissionState.FAILED:
        return failed_count
    return True


def used_submissions(session: Session, phase_id: int, participant: str, since: dt.datetime,
                     failed_count: bool, submitter_id: int | None = None) -> int:
    """How many of the participant's submissions to the phase since ``since`` count (rules above);
    a logged-in submitter's are counted by their account, others by the participant name."""
    who = Submission.participant == participant if submitter_id is None else Submission.submitter_id == submitter_id
    submissions = session.scalars(
        select(Submission).options(selectinload(Submission.jobs))
        .where(Submission.phase_id == phase_id, who, Submission.created_at >= since,
               Submission.state != SubmissionState.CANCELLED))
    return sum(counts_against_limit(s.state, [(j.state, j.reason) for j in s.jobs], failed_count,
                                    s.evaluation_state)
               for s in submissions)
