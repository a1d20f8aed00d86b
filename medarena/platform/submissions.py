"""Submissions: checking a phase is open and a participant's limit, and recording them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from medarena.errors import Conflict, NotFound, TooManyRequests, UserError
from medarena.platform.challenges import ChallengeDefinition
from medarena.platform.compute import check_budget
from medarena.platform.database import Challenge, Phase, Submission, utcnow
from medarena.platform.states import SubmissionState, transition
from medarena.platform.submission_limits import used_submissions

MAX_PARTICIPANT = 64
MAX_COMMENT = 1000


class SubmissionError(UserError, ValueError):
    """A submission that cannot be accepted (closed phase, limit spent, unknown challenge...)."""


class UnknownPhase(SubmissionError, NotFound):
    """No such challenge or phase."""


class PhaseClosed(SubmissionError, Conflict):
    """The phase does not take submissions now (or has no cases)."""


class LimitSpent(SubmissionError, TooManyRequests):
    """The participant has used every submission the phase allows for now."""


def check_participant(name: str) -> None:
    """A participant name: 1 to 64 printable characters (letters of any script, digits, spaces,
    punctuation), without leading or trailing spaces; no control, format or separator characters."""
    if not name.strip():
        raise SubmissionError("participant: the name must not be empty or only spaces")
    if len(name) > MAX_PARTICIPANT:
        raise SubmissionError(f"participant: the name has {len(name)} characters; at most {MAX_PARTICIPANT} "
                              f"are allowed")
    bad = next((c for c in name if not c.isprintable()), None)
    if bad is not None:
        raise SubmissionError(f"participant {name!r}: the name must be printable characters; found {bad!r}")
    if name != name.strip():
        raise SubmissionError(f"participant {name!r}: the name must not start or end with a space")


def check_comment(comment: str) -> None:
    """A comment: at most 1000 printable characters; line breaks and tabs allowed."""
    if len(comment) > MAX_COMMENT:
        raise SubmissionError(f"comment: {len(comment)} characters; at most {MAX_COMMENT} are allowed")
    bad = next((c for c in comment if not c.isprintable() and c not in "\n\t"), None)
    if bad is not None:
        raise SubmissionError(f"comment: must be printable text (line breaks and tabs allowed); found {bad!r}")


def find_phase(session: Session, challenge_slug: str, phase_slug: str) -> tuple[Phase, ChallengeDefinition]:
    challenge = session.scalar(select(Challenge).where(Challenge.slug == challenge_slug))
    if challenge is None:
        raise UnknownPhase(f"no challenge {challenge_slug!r}; create it with `medarena challenge create`")
    phase = next((p for p in challenge.phases if p.slug == phase_slug), None)
    if phase is None:
        raise UnknownPhase(f"challenge {challenge_slug!r} has no phase {phase_slug!r}; phases: "
                              f"{', '.join(p.slug for p in challenge.phases)}")
    return phase, ChallengeDefinition.model_validate(challenge.definition)


def create_submission(session: Session, challenge_slug: str, phase_slug: str, participant: str,
                      image: str, image_digest: str, comment: str = "",
                      now: dt.datetime | None = None, submitter_id: int | None = None, model: str = "",
                      model_digest: str | None = None) -> Submission:
    """Record a queued submission after checking the phase window and the participant's limit.

    The check and the insert happen in one transaction that first takes a write lock (SQLite:
    BEGIN IMMEDIATE through a no-op update; PostgreSQL: a row lock on the phase), so two
    concurrent submissions cannot both take the last slot.
    """
    now = now or utcnow()
    check_participant(participant)
    check_comment(comment)
    phase, definition = find_phase(session, challenge_slug, phase_slug)
    _lock_phase(session, phase)
    rules = definition.phase(phase_slug)
    if not rules.is_open(now):
        when = (f"opens {rules.opens:%Y-%m-%d %H:%M} UTC" if rules.opens and now < rules.opens
                else f"closed {rules.closes:%Y-%m-%d %H:%M} UTC")
        raise PhaseClosed(f"phase {challenge_slug}/{phase_slug} is not open: it {when}")
    if not phase.cases:
        raise PhaseClosed(f"phase {challenge_slug}/{phase_slug} has no cases; ingest data first")
    if rules.submission_limit:
        since = now - dt.timedelta(days=rules.limit_period_days)
        used = used_submissions(session, phase.id, participant, since, rules.failed_submissions_count,
                                submitter_id)
        if used >= rules.submission_limit:
            raise LimitSpent(
                f"participant {participant!r} has used {used} of {rules.submission_limit} submissions to "
                f"{challenge_slug}/{phase_slug} in the last {rules.limit_period_days:g} day(s)")
    check_budget(session, phase, rules, participant, submitter_id)
    submission = Submission(phase=phase, participant=participant, image=image, image_digest=image_digest,
                            comment=comment, state=transition(None, SubmissionState.QUEUED), created_at=now,
                            submitter_id=submitter_id,
                            model=model, model_digest=model_digest)
    session.add(submission)
    session.flush()
    return submission


def _lock_phase(session: Session, phase: Phase) -> None:
    if session.bind.dialect.name == "sqlite":
        # an UPDATE turns SQLite's deferred transaction into a write transaction at once
        session.execute(Phase.__table__.update().where(Phase.id == phase.id).values(slug=phase.slug))
    else:
        session.execute(select(Phase.id).where(Phase.id == phase.id).with_for_update())
