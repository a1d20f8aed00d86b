"""Accounts: password login, bearer tokens, and the operator's user and token management."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from medarena.accounts import passwords, throttle, tokens, users
from medarena.accounts.tokens import Identity
from medarena.errors import PermissionDenied, Unauthenticated
from medarena.platform.account_tables import ApiToken, ChallengeRole, User
from medarena.platform.database import Challenge, session_scope
from medarena.platform.settings import Settings
from medarena.platform.states import RoleState
from medarena.services.access import require_login

LOGIN_TOKEN_LIFETIME = dt.timedelta(days=7)


def login(settings: Settings, username: str, password: str, address: str) -> str:
    """A bearer token for a user name and password (throttled per account and address)."""
    with session_scope(settings.database_url) as session:
        throttle.check(session, username, address)
        user = users.find_user(session, username)
        if user is None:
            passwords.burn_time(password)
            ok = False
        else:
            ok = passwords.verify_password(user.password_hash, password)
        throttle.record(session, username, address, succeeded=ok and not user.disabled)
        if ok and not user.disabled:
            token, _ = tokens.create_token(session, user, f"login from {address}", LOGIN_TOKEN_LIFETIME, kind="login")
            return token
        disabled = ok and user.disabled
    # the failed attempt is committed above, then refused
    raise Unauthenticated("this account is disabled" if disabled else "wrong user name or password")


def authenticate(settings: Settings, token: str) -> Identity:
    with session_scope(settings.database_url) as session:
        return tokens.authenticate(session, token)


def logout(settings: Settings, caller: Identity | None) -> None:
    caller = require_login(caller)
    with session_scope(settings.database_url) as session:
        tokens.revoke(session, caller.token_id)


def me(settings: Settings, caller: Identity | None) -> dict[str, Any]:
    caller = require_login(caller)
    with session_scope(settings.database_url) as session:
        rows = session.execute(select(Challenge.slug, ChallengeRole.role, ChallengeRole.state)
                               .join(ChallengeRole, ChallengeRole.challenge_id == Challenge.id)
                               .where(ChallengeRole.user_id == caller.user_id).order_by(Challenge.slug)).all()
    return {"username": caller.username, "is_admin": caller.is_admin,
            "roles": [{"challenge": slug, "role": role, "state": state} for slug, role, state in rows]}


def _token_dict(row: ApiToken, username: str | None = None) -> dict[str, Any]:
    data = {"id": row.id, "name": row.name, "kind": row.kind, "created_at": row.created_at,
            "expires_at": row.expires_at, "revoked_at": row.revoked_at, "last_used_at": row.last_used_at}
    if username is not None:
        data["user"] = username
    return data


# ------------------------------------------------------------- the caller's own personal tokens

def create_my_token(settings: Settings, caller: Identity | None, name: str, days: float | None
                    ) -> tuple[str, dict[str, Any]]:
    caller = require_login(caller)
    with session_scope(settings.database_url) as session:
        user = session.get(User, caller.user_id)
        token, row = tokens.create_token(session, user, name, dt.timedelta(days=days) if days else None)
        return token, _token_dict(row)


def list_my_tokens(settings: Settings, caller: Identity | None) -> list[dict[str, Any]]:
    caller = require_login(caller)
    with session_scope(settings.database_url) as session:
        return [_token_dict(row) for row in tokens.list_tokens(session, session.get(User, caller.user_id))]


def revoke_my_token(settings: Settings, caller: Identity | None, token_id: int) -> dict[str, Any]:
    caller = require_login(caller)
    with session_scope(settings.database_url) as session:
        return _token_dict(tokens.revoke(session, token_id, session.get(User, caller.user_id)))


# ------------------------------------------------------------- the operator, on the server's own database

def add_user(settings: Settings, username: str, password: str, admin: bool = False,
             organizer_of: list[str] | None = None) -> None:
    with session_scope(settings.database_url) as session:
        user = users.add_user(session, username, password, is_admin=admin)
        for slug in organizer_of or []:
            users.grant(session, user, _challenge(session, slug).id, "organizer")


def set_password(settings: Settings, username: str, password: str) -> None:
    with session_scope(settings.database_url) as session:
        users.set_password(session, username, password)


def grant_role(settings: Settings, username: str, slug: str, role: str) -> None:
    with session_scope(settings.database_url) as session:
        users.grant(session, users.get_user(session, username), _challenge(session, slug).id, role)


def list_users(settings: Settings) -> list[dict[str, Any]]:
    with session_scope(settings.database_url) as session:
        result = []
        for user in users.list_users(session):
            rows = session.execute(select(Challenge.slug, ChallengeRole.role, ChallengeRole.state)
                                   .join(ChallengeRole, ChallengeRole.challenge_id == Challenge.id)
                                   .where(ChallengeRole.user_id == user.id)).all()
            result.append({"username": user.username, "admin": user.is_admin, "disabled": user.disabled,
                           "roles": [f"{role} of {slug}" + ("" if state == RoleState.APPROVED else f" ({state})")
                                     for slug, role, state in rows], "created_at": user.created_at})
        return result


def set_disabled(settings: Settings, username: str, disabled: bool = True) -> None:
    with session_scope(settings.database_url) as session:
        users.set_disabled(session, username, disabled)


def create_token(settings: Settings, username: str, name: str, days: float | None) -> tuple[str, int]:
    with session_scope(settings.database_url) as session:
        user = users.get_user(session, username)
        if user.disabled:
            raise PermissionDenied(f"user {username!r} is disabled")
        token, row = tokens.create_token(session, user, name, dt.timedelta(days=days) if days else None)
        return token, row.id


def list_tokens(settings: Settings, username: str | None = None) -> list[dict[str, Any]]:
    with session_scope(settings.database_url) as session:
        user = users.get_user(session, username) if username else None
        names = {u.id: u.username for u in users.list_users(session)}
        return [_token_dict(row, names.get(row.user_id)) for row in tokens.list_tokens(session, user)]


def revoke_token(settings: Settings, token_id: int) -> None:
    with session_scope(settings.database_url) as session:
        tokens.revoke(session, token_id)


def _challenge(session, slug: str) -> Challenge:
    from medarena.errors import NotFound

    challenge = session.scalar(select(Challenge).where(Challenge.slug == slug))
    if challenge is None:
        raise NotFound(f"no challenge {slug!r}")
    return challenge
