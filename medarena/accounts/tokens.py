"""API tokens: random, shown once, stored as their SHA-256, named, expiring, revocable.

A token has 256 bits from :mod:`secrets`, so a plain SHA-256 is enough to store it (no salt or
slow hash is needed against guessing what is not guessable).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from medarena.errors import InvalidInput, NotFound, Unauthenticated
from medarena.platform.account_tables import ApiToken, User
from medarena.platform.database import utcnow
from medarena.platform.states import RoleState

PREFIX = "mda_"
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)  # reads stay reads: last_used is written once a minute at most


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, user: User, name: str, expires_in: dt.timedelta | None,
                 kind: str = "personal") -> tuple[str, ApiToken]:
    """Return the token (the only time it is seen) and its row."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidInput("token name: 1 to 100 characters")
    if expires_in is not None and expires_in <= dt.timedelta(0):
        raise InvalidInput("token expiry: must be in the future")
    token = PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    row = ApiToken(user_id=user.id, name=name, kind=kind, token_hash=digest(token), created_at=now,
                   expires_at=now + expires_in if expires_in else None)
    session.add(row)
    session.flush()
    return token, row


@dataclass(frozen=True)
class Identity:
    user_id: int
    username: str
    is_admin: bool
    token_id: int
    roles: tuple[tuple[int, str, str], ...] | None = None  # (challenge id, role, state), when read with it

    def approved_roles_in(self, challenge_id: int) -> dict[str, str] | None:
        """role -> state in a challenge, from the roles read with the identity; None when they were
        not read, or give no approved role there (then only the database can say)."""
        if self.roles is None:
            return None
        roles = {role: state for challenge, role, state in self.roles if challenge == challenge_id}
        return roles if RoleState.APPROVED in roles.values() else None


def authenticate(session: Session, token: str) -> Identity:
    """The user behind a bearer token, or :class:`Unauthenticated` saying why not."""
    identity, row = check(session, token)
    if last_use_stale(row):
        row.last_used_at = utcnow()
    return identity


def check(session: Session, token: str) -> tuple[Identity, ApiToken]:
    """:func:`authenticate` without writing anything: the identity and the token's row."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest(token or "")))
    now = utcnow()
    if row is None:
        raise Unauthenticated("unknown token; log in again")
    if row.revoked_at is not None:
        raise Unauthenticated("this token was revoked; log in again")
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthenticated("this token has expired; log in again")
    user = session.get(User, row.user_id)
    if user is None or user.disabled:
        raise Unauthenticated("this account is disabled")
    return Identity(user.id, user.username, user.is_admin, row.id), row


def last_use_stale(row: ApiToken) -> bool:
    return row.last_used_at is None or utcnow() - row.last_used_at >= LAST_USED_RESOLUTION


def record_use(session: Session, token_id: int) -> None:
    """Write a token's ``last_used_at`` (once a minute at most, as :func:`authenticate` does)."""
    row = session.get(ApiToken, token_id)
    if row is not None and last_use_stale(row):
        row.last_used_at = utcnow()


def list_tokens(session: Session, user: User | None = None) -> list[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.id)
    if user is not None:
        query = query.where(ApiToken.user_id == user.id)
    return list(session.scalars(query))


def revoke(session: Session, token_id: int, user: User | None = None) -> ApiToken:
    """Revoke a token (only the user's own when ``user`` is given)."""
    row = session.get(ApiToken, token_id)
    if row is None or (user is not None and row.user_id != user.id):
        raise NotFound(f"no token {token_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row
