"""Challenges: reading them, creating and updating them from YAML, phase windows, registrations."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from medarena.accounts import users
from medarena.accounts.tokens import Identity
from medarena.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from medarena.platform.account_tables import ChallengeRole, User
from medarena.platform.challenges import ChallengeDefinition, load_definition_text, parse_definition
from medarena.platform.database import Challenge, session_scope, utcnow
from medarena.platform.settings import Settings
from medarena.platform.states import RoleState, transition
from medarena.services import access


def store_definition(*args, **kwargs):
    """The platform's, imported when a definition is written (the organizer module brings the
    whole numerical stack, which a server answering reads and uploads does not need)."""
    from medarena.platform.organizer import store_definition

    return store_definition(*args, **kwargs)

MAX_DEFINITION_BYTES = 1 << 20


def find_challenge(session, slug: str) -> Challenge:
    challenge = session.scalar(select(Challenge).where(Challenge.slug == slug))
    if challenge is None:
        raise NotFound(f"no challenge {slug!r}")
    return challenge


def _phase_summary(challenge: Challenge, definition: ChallengeDefinition, now: dt.datetime) -> list[dict[str, Any]]:
    counts = {p.slug: len(p.cases) for p in challenge.phases}
    return [{"slug": p.slug, "title": p.title, "opens": p.opens, "closes": p.closes, "open": p.is_open(now),
             "submission_limit": p.submission_limit, "limit_period_days": p.limit_period_days,
             "leaderboard_public": p.leaderboard_public, "case_results_public": p.case_results_public,
             "participant_logs": p.participant_logs, "max_image_mb": p.max_image_mb,
             "cases": counts.get(p.slug, 0)} for p in definition.phases]


def _summary(session, caller: Identity | None, challenge: Challenge) -> dict[str, Any]:
    definition = ChallengeDefinition.model_validate(challenge.definition)
    who = access.standing(session, caller, challenge)
    return {"slug": challenge.slug, "title": challenge.title, "description": challenge.description,
            "task": definition.evaluation.task, "registration_needs_approval": definition.registration_needs_approval,
            "phases": _phase_summary(challenge, definition, utcnow()),
            "you": {"organizer": who.organizer, "participant": who.participant}}


def list_challenges(settings: Settings, caller: Identity | None) -> list[dict[str, Any]]:
    with session_scope(settings.database_url) as session:
        return [_summary(session, caller, c) for c in session.scalars(select(Challenge).order_by(Challenge.slug))]


def get_challenge(settings: Settings, caller: Identity | None, slug: str) -> dict[str, Any]:
    with session_scope(settings.database_url) as session:
        challenge = find_challenge(session, slug)
        data = _summary(session, caller, challenge)
        data["definition"] = challenge.definition
        return data


def _parse(text: str, source: str) -> ChallengeDefinition:
    if len(text.encode()) > MAX_DEFINITION_BYTES:
        raise PayloadTooLarge(f"{source}: a challenge definition is at most {MAX_DEFINITION_BYTES} bytes")
    return load_definition_text(text, source)


def create_challenge(settings: Settings, caller: Identity | None, definition_yaml: str,
                     organizers: list[str] | None = None) -> dict[str, Any]:
    """A site admin creates a challenge and names its organizers."""
    access.require_admin(caller)
    definition = _parse(definition_yaml, "definition")
    with session_scope(settings.database_url) as session:
        if session.scalar(select(Challenge).where(Challenge.slug == definition.slug)) is not None:
            raise Conflict(f"challenge {definition.slug!r} exists already; update it instead")
        challenge, _ = store_definition(session, definition, "api")
        for username in organizers or []:
            users.grant(session, users.get_user(session, username), challenge.id, "organizer")
        return _summary(session, caller, challenge)


def update_challenge(settings: Settings, caller: Identity | None, slug: str, definition_yaml: str) -> dict[str, Any]:
    """An organizer replaces the definition (the slug stays; phases with data stay)."""
    definition = _parse(definition_yaml, "definition")
    with session_scope(settings.database_url) as session:
        challenge = find_challenge(session, slug)
        access.require_organizer(session, caller, challenge)
        if definition.slug != slug:
            raise InvalidInput(f"definition: slug: {definition.slug!r} is not this challenge's slug {slug!r}")
        store_definition(session, definition, "api")
        return _summary(session, caller, challenge)


def set_phase_open(settings: Settings, caller: Identity | None, slug: str, phase: str, is_open: bool
                   ) -> dict[str, Any]:
    """Open a phase now (until its closing time, if that is later) or close it now."""
    with session_scope(settings.database_url) as session:
        challenge = find_challenge(session, slug)
        access.require_organizer(session, caller, challenge)
        data = dict(challenge.definition)
        phases = [dict(p) for p in data["phases"]]
        target = next((p for p in phases if p["slug"] == phase), None)
        if target is None:
            raise NotFound(f"challenge {slug!r} has no phase {phase!r}")
        now = utcnow().replace(microsecond=0)
        opens = dt.datetime.fromisoformat(target["opens"]) if target.get("opens") else None
        closes = dt.datetime.fromisoformat(target["closes"]) if target.get("closes") else None
        if is_open:
            if opens is not None and opens > now:
                target["opens"] = now.isoformat()
            if closes is not None and closes <= now:
                target["closes"] = None
        else:
            if opens is not None and opens >= now:
                target["opens"] = None
            target["closes"] = now.isoformat()
        data["phases"] = phases
        definition = parse_definition(data, source=f"{slug}/{phase}")
        store_definition(session, definition, challenge.source_path)
        return next(p for p in _summary(session, caller, challenge)["phases"] if p["slug"] == phase)


# ------------------------------------------------------------- registrations and organizers

def register(settings: Settings, caller: Identity | None, slug: str) -> dict[str, Any]:
    caller = access.require_login(caller)
    with session_scope(settings.database_url) as session:
        challenge = find_challenge(session, slug)
        definition = ChallengeDefinition.model_validate(challenge.definition)
        existing = users.role_of(session, caller.user_id, challenge.id, "participant")
        if existing is not None:
            raise Conflict(f"you are registered for {slug} already ({existing.state})")
        state = RoleState.PENDING if definition.registration_needs_approval else RoleState.APPROVED
        users.grant(session, session.get(User, caller.user_id), challenge.id, "participant", state)
        return {"challenge": slug, "username": caller.username, "state": state}


def list_registrations(settings: Settings, caller: Identity | None, slug: str) -> list[dict[str, Any]]:
    with session_scope(settings.database_url) as session:
        challenge = find_challenge(session, slug)
        access.require_organizer(session, caller, challenge)
        rows = session.execute(select(User.username, ChallengeRole.state, ChallengeRole.created_at)
                               .join(ChallengeRole, ChallengeRole.user_id == User.id)
                               .where(ChallengeRole.challenge_id == challenge.id,
                                      ChallengeRole.role == "participant").order_by(User.username)).all()
        return [{"challenge": slug, "username": u, "state": s, "created_at": c} for u, s, c in rows]


def approve(settings: Settings, caller: Identity | None, slug: str, username: str) -> dict[str, Any]:
    with session_scope(settings.database_url) as session:
        challenge = find_challenge(session, slug)
        access.require_organizer(session, caller, challenge)
        user = users.find_user(session, username)
        row = users.role_of(session, user.id, challenge.id, "participant") if user else None
        if row is None:
            raise NotFound(f"{username!r} has not registered for {slug}")
        row.state = transition(row.state, RoleState.APPROVED)
        return {"challenge": slug, "username": username, "state": row.state}


def add_organizer(settings: Settings, caller: Identity | None, slug: str, username: str) -> dict[str, Any]:
    access.require_admin(caller)
    with session_scope(settings.database_url) as session:
        challenge = find_challenge(session, slug)
        users.grant(session, users.get_user(session, username), challenge.id, "organizer")
        return {"challenge": slug, "username": username, "role": "organizer"}
