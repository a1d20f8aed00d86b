"""Which submissions count against a participant's limit, on hand-made submissions in SQLite."""

from __future__ import annotations

import datetime as dt

import pytest

from medarena.platform.database import Case, Challenge, Job, Phase, Submission, session_scope
from medarena.platform.submission_limits import counts_against_limit
from medarena.platform.submissions import SubmissionError, create_submission
from tests.platform.challenge_data import definition

NOW = dt.datetime(2026, 6, 1, 12, 0)


@pytest.mark.parametrize(("state", "job_ends", "failed_count", "counts"), [
    ("queued", [], False, True),
    ("running", [("succeeded", None), ("queued", None)], False, True),
    ("succeeded", [("succeeded", None), ("failed", "exit_code")], False, True),
    ("cancelled", [("cancelled", None)], True, False),
    ("failed", [("failed", "exit_code"), ("failed", "timeout")], False, False),
    ("failed", [("failed", "exit_code"), ("failed", "timeout")], True, True),
    ("failed", [("failed", "platform_error"), ("failed", "platform_error")], True, False),
    ("failed", [("failed", "platform_error"), ("cancelled", None)], True, False),
    ("failed", [("failed", "platform_error"), ("failed", "exit_code")], True, True),
])
def test_counts_against_limit(state, job_ends, failed_count, counts):
    assert counts_against_limit(state, job_ends, failed_count) is counts


def _phase_with(home, past: list[tuple[str, list[tuple[str, str | None]]]], **phase_settings):
    """A toy phase with a limit of 2 per day and the participant's past submissions to it."""
    phases = [{"slug": "test", "opens": "2020-01-01T00:00:00Z", "submission_limit": 2, **phase_settings}]
    with session_scope(home.database_url) as session:
        challenge = Challenge(slug="toy", title="Toy", definition=definition(phases=phases))
        phase = Phase(slug="test", challenge=challenge)
        cases = [Case(phase=phase, name=f"case{i}", checksum="0") for i in range(2)]
        for state, job_ends in past:
            submission = Submission(phase=phase, participant="ann", image="i", image_digest="d", state=state,
                                    created_at=NOW - dt.timedelta(hours=1))
            for case, (job_state, reason) in zip(cases, job_ends, strict=False):
                submission.jobs.append(Job(case=case, state=job_state, reason=reason))
            session.add(submission)


def _submit(home) -> int:
    with session_scope(home.database_url) as session:
        return create_submission(session, "toy", "test", "ann", "i", "d", now=NOW).id


PLATFORM_FAILED = ("failed", [("failed", "platform_error"), ("failed", "platform_error")])
PARTICIPANT_FAILED = ("failed", [("failed", "exit_code"), ("failed", "invalid_output")])
SUCCEEDED = ("succeeded", [("succeeded", None), ("failed", "timeout")])


def test_failed_submissions_do_not_count_by_default(home):
    _phase_with(home, [PARTICIPANT_FAILED, PARTICIPANT_FAILED, PLATFORM_FAILED, SUCCEEDED])
    _submit(home)  # 1 of 2 used: the succeeded one
    with pytest.raises(SubmissionError, match="has used 2 of 2 submissions"):
        _submit(home)


def test_failed_submissions_count_where_the_phase_says_so_but_never_platform_failures(home):
    _phase_with(home, [PARTICIPANT_FAILED, PLATFORM_FAILED, PLATFORM_FAILED], failed_submissions_count=True)
    _submit(home)  # 1 of 2 used: the participant's own failure
    with pytest.raises(SubmissionError, match="has used 2 of 2 submissions"):
        _submit(home)


def test_cancelled_and_old_submissions_do_not_count(home):
    _phase_with(home, [("cancelled", [("cancelled", None)])] * 3, failed_submissions_count=True)
    with session_scope(home.database_url) as session:
        session.add(Submission(phase_id=1, participant="ann", image="i", image_digest="d", state="succeeded",
                               created_at=NOW - dt.timedelta(days=2)))
    _submit(home)
    _submit(home)
    with pytest.raises(SubmissionError, match="has used 2 of 2"):
        _submit(home)
