"""Who may see and do what: the only place that decides it.

- A site admin may do everything.
- An organizer of a challenge edits it, opens and closes its phases, approves participants, sees
  every submission with its logs and the platform log, hidden leaderboards, the compute every
  submission and phase used, re-evaluates and re-ranks.
- A participant (registered, and approved where the challenge asks for approval) submits, and
  sees their own submissions: states, reasons, runtimes, the compute they used; their scores
  unless the phase is hidden; the logs of their cases where the phase says
  ``participant_logs: own``.
- Anyone sees the challenges, public leaderboards and, where a phase makes them public, its
  per-case results.

What a caller may not see does not exist for them: :class:`NotFound`, with the same message as
for a thing that does not exist. :class:`PermissionDenied` is only for an action on something the
caller sees.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from medarena.accounts.tokens import Identity
from medarena.accounts.users import roles_in
from medarena.errors import NotFound, PermissionDenied, Unauthenticated
from medarena.platform.account_tables import ChallengeRole, Upload
from medarena.platform.challenges import ChallengeDefinition, PhaseDefinition
from medarena.platform.database import Challenge, Phase, Submission
from medarena.platform.states import ENDED_SUBMISSION, RoleState


@dataclass(frozen=True)
class Standing:
    """The caller's standing in one challenge."""

    admin: bool = False
    organizer: bool = False
    participant: str | None = None  # None, or a RoleState: pending or approved

    @property
    def staff(self) -> bool:
        return self.admin or self.organizer


@dataclass(frozen=True)
class SubmissionView:
    """What the caller sees of one submission."""

    owner: bool
    staff: bool
    scores: bool  # aggregates and per-case metrics
    details: bool  # reasons' details, image, comment
    logs: bool  # stdout and stderr tails
    platform_log: bool
    compute: bool = False  # CPU, GPU and memory figures: to its owner and the organizers


def require_login(caller: Identity | None) -> Identity:
    if caller is None:
        raise Unauthenticated("log in first (a bearer token: POST /api/v1/auth/token, or a personal token)")
    return caller


def require_admin(caller: Identity | None) -> Identity:
    caller = require_login(caller)
    if not caller.is_admin:
        raise PermissionDenied("only a site admin may do this")
    return caller


def standing(session: Session, caller: Identity | None, challenge: Challenge) -> Standing:
    if caller is None:
        return Standing()
    roles = caller.approved_roles_in(challenge.id)
    if roles is None:
        roles = roles_in(session, caller.user_id, challenge.id)
    return Standing(admin=caller.is_admin, organizer="organizer" in roles, participant=roles.get("participant"))


def require_organizer(session: Session, caller: Identity | None, challenge: Challenge) -> Standing:
    caller = require_login(caller)
    who = standing(session, caller, challenge)
    if not who.staff:
        raise PermissionDenied(f"only organizers of {challenge.slug} may do this")
    return who


def require_participant(session: Session, caller: Identity | None, challenge: Challenge) -> Identity:
    caller = require_login(caller)
    who = standing(session, caller, challenge)
    if who.participant is None:
        raise PermissionDenied(f"register for {challenge.slug} first (POST /api/v1/challenges/{challenge.slug}"
                               "/registrations)")
    if who.participant != RoleState.APPROVED:
        raise PermissionDenied(f"your registration for {challenge.slug} awaits an organizer's approval")
    return caller


def phase_rules(phase: Phase) -> PhaseDefinition:
    challenge = phase.challenge
    definition = challenge.definition
    seen = challenge.__dict__.get("_validated")  # this row's, while its definition is the same object
    if seen is None or seen[0] is not definition:
        seen = (definition, _definition(json.dumps(definition, sort_keys=True)))
        challenge.__dict__["_validated"] = seen
    return seen[1].phase(phase.slug)


@lru_cache(maxsize=64)
def _definition(text: str) -> ChallengeDefinition:
    """Validating a definition costs milliseconds; every read asks for its phase rules."""
    return ChallengeDefinition.model_validate(json.loads(text))


def leaderboard_visible(session: Session, caller: Identity | None, phase: Phase) -> Standing:
    who = standing(session, caller, phase.challenge)
    if not (who.staff or phase_rules(phase).leaderboard_public):
        raise NotFound(f"no leaderboard for {phase.challenge.slug}/{phase.slug}")
    return who


def case_results_visible(session: Session, caller: Identity | None, phase: Phase) -> Standing:
    who = standing(session, caller, phase.challenge)
    rules = phase_rules(phase)
    if not (who.staff or (rules.leaderboard_public and rules.case_results_public)):
        raise NotFound(f"no per-case results for {phase.challenge.slug}/{phase.slug}")
    return who


def phase_compute_visible(session: Session, caller: Identity | None, phase: Phase) -> Standing:
    """A phase's compute totals, per participant and in all: to its organizers only."""
    return require_organizer(session, caller, phase.challenge)


def submission_view(session: Session, caller: Identity | None, submission: Submission) -> SubmissionView:
    """What the caller sees of a submission; :class:`NotFound` when nothing."""
    who = standing(session, caller, submission.phase.challenge)
    view = view_with_standing(who, caller, phase_rules(submission.phase), submission)
    if view is None:
        raise NotFound(f"no submission {submission.id}")
    return view


def view_with_standing(who: Standing, caller: Identity | None, rules: PhaseDefinition,
                       submission: Submission) -> SubmissionView | None:
    """:func:`submission_view` for a caller whose standing in the challenge is known (None: nothing
    to see), so that a list of one phase's submissions asks for the standing once."""
    if who.staff:
        return SubmissionView(owner=False, staff=True, scores=True, details=True, logs=True, platform_log=True,
                              compute=True)
    if caller is not None and submission.submitter_id == caller.user_id:
        hidden = not (rules.leaderboard_public or rules.case_results_public)
        return SubmissionView(owner=True, staff=False, scores=not hidden, details=True,
                              logs=rules.participant_logs == "own", platform_log=False, compute=True)
    if rules.leaderboard_public and rules.case_results_public and submission.state in ENDED_SUBMISSION:
        return SubmissionView(owner=False, staff=False, scores=True, details=False, logs=False, platform_log=False)
    return None


def case_images_visible(session: Session, caller: Identity | None, submission: Submission) -> SubmissionView:
    """The images of a submission's cases (input, reference, prediction): to organizers, and to
    anyone who sees the submission where the phase's leaderboard and case results are public
    (an image of a hidden test case leaks the test set, to its owner too)."""
    view = submission_view(session, caller, submission)
    rules = phase_rules(submission.phase)
    if not (view.staff or (rules.leaderboard_public and rules.case_results_public)):
        raise NotFound(f"no case images for submission {submission.id}")
    return view


def visible_submission(session: Session, caller: Identity | None, submission_id: int, *load_options
                       ) -> tuple[Submission, SubmissionView]:
    """The submission (loaded with ``load_options``) and the caller's view of it."""
    submission = session.get(Submission, submission_id, options=load_options)
    return submission, seen_submission(session, caller, submission, submission_id)


def seen_submission(session: Session, caller: Identity | None, submission: Submission | None,
                    submission_id: int) -> SubmissionView:
    """The caller's view of a submission the caller loaded (None: not found)."""
    if submission is None:
        raise NotFound(f"no submission {submission_id}")
    return submission_view(session, caller, submission)


def may_cancel(view: SubmissionView, submission: Submission) -> None:
    if not (view.owner or view.staff):
        raise NotFound(f"no submission {submission.id}")


def visible_submissions(session: Session, caller: Identity | None):
    """A query of the submissions the caller may list: their own, and every one of the
    challenges they organize (all of them for an admin)."""
    caller = require_login(caller)
    query = select(Submission).order_by(Submission.id)
    if caller.is_admin:
        return query
    organized = select(Phase.id).join(ChallengeRole, ChallengeRole.challenge_id == Phase.challenge_id).where(
        ChallengeRole.user_id == caller.user_id, ChallengeRole.role == "organizer")
    return query.where((Submission.submitter_id == caller.user_id) | Submission.phase_id.in_(organized))


def own_upload(session: Session, caller: Identity | None, upload_id: str) -> Upload:
    """An upload is seen by the user who created it, by no one else."""
    caller = require_login(caller)
    upload = session.get(Upload, upload_id)
    if upload is None or upload.user_id != caller.user_id:
        raise NotFound(f"no upload {upload_id}")
    return upload
