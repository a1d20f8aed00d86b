"""Who is calling: bearer tokens checked against the database, and the answer kept a few seconds.

Checking a token costs two queries (and a write of its ``last_used_at`` at most once a minute);
a client polling a submission sends the same token many times a second. An accepted token is
kept here with its user and the user's roles for :data:`TTL` seconds (never past the token's
expiry), so a repeated request asks the database nothing about its caller.

What this may delay, and for how long:

- In this process, nothing: every commit that revokes a token, disables or changes a user, or
  gives, changes or removes a role (through any session of this process) empties the cache before
  the commit's caller goes on, and an answer read from the database while such a commit happened
  is used once and not kept.
- In other processes (another ``--workers`` process, the operator's `medarena users disable` or
  `medarena tokens revoke`, another host): at most :data:`TTL` seconds, after which the token is
  checked against the database again.
- Roles are only taken from here where they give the caller an approved role in the challenge;
  otherwise the database is asked, so a registration or an approval made elsewhere shows at once.
"""

from __future__ import annotations

import dataclasses
import threading
import time

from sqlalchemy import bindparam, event, select
from sqlalchemy.orm import Session

from medarena.accounts import tokens
from medarena.accounts.tokens import Identity
from medarena.platform.account_tables import ApiToken, ChallengeRole, User
from medarena.platform.database import session_scope, utcnow
from medarena.platform.settings import Settings

TTL = 5.0  # seconds an accepted token is trusted without asking the database again
SIZE = 10_000  # tokens kept at most (the oldest go first)
_TOKEN_FIELDS = ("revoked_at", "expires_at", "user_id", "token_hash")  # not last_used_at: a read's own write


class _Accepted:
    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], tuple[float, Identity]] = {}  # (database, digest) -> (until, who)
        self.generation = 0  # moves on every commit that may change who a token is or may do
        self.lock = threading.Lock()

    def find(self, key: tuple[str, str]) -> Identity | None:
        found = self.entries.get(key)
        if found is None or found[0] <= time.monotonic():
            return None
        return found[1]

    def keep(self, key: tuple[str, str], identity: Identity, until: float, generation: int) -> None:
        with self.lock:
            if generation != self.generation:  # a commit came between reading and keeping: not kept
                return
            self.entries.pop(key, None)
            self.entries[key] = (until, identity)
            while len(self.entries) > SIZE:
                del self.entries[next(iter(self.entries))]

    def forget_all(self) -> None:
        with self.lock:
            self.generation += 1
            self.entries.clear()


ACCEPTED = _Accepted()


def cached(settings: Settings, token: str) -> Identity | None:
    """The caller behind ``token`` when it was accepted less than :data:`TTL` seconds ago (no
    database access: cheap enough to run on the event loop); None when the database must be asked."""
    return ACCEPTED.find((settings.database_url, tokens.digest(token)))


def authenticate(settings: Settings, token: str) -> Identity:
    """The caller behind ``token``, from the database (:class:`Unauthenticated` saying why not),
    with their roles; kept for the next :data:`TTL` seconds. Writes the token's ``last_used_at``
    (once a minute at most)."""
    identity, stale = check(settings, token)
    if stale:
        record_use(settings, identity.token_id)
    return identity


def check(settings: Settings, token: str) -> tuple[Identity, bool]:
    """:func:`authenticate` without writing: the caller, and whether the token's ``last_used_at``
    is due to be written (:func:`record_use`). Two small reads, nothing that waits for a writer
    (SQLite in WAL mode): cheap enough for the event loop, where a thread would wait for the
    interpreter lock behind every request the loop serves."""
    generation = ACCEPTED.generation
    started = time.monotonic()
    with session_scope(settings.database_url) as session:
        identity, row = tokens.check(session, token)
        stale, expires_at = tokens.last_use_stale(row), row.expires_at
        roles = tuple(session.execute(ROLES, {"user_id": identity.user_id}).tuples())
        session.rollback()  # nothing to commit
    until = started + TTL
    if expires_at is not None:
        until = min(until, started + (expires_at - utcnow()).total_seconds())
    identity = dataclasses.replace(identity, roles=roles)
    ACCEPTED.keep((settings.database_url, tokens.digest(token)), identity, until, generation)
    return identity, stale


def record_use(settings: Settings, token_id: int) -> None:
    with session_scope(settings.database_url) as session:
        tokens.record_use(session, token_id)


ROLES = select(ChallengeRole.challenge_id, ChallengeRole.role, ChallengeRole.state).where(
    ChallengeRole.user_id == bindparam("user_id"))


# ------------------------------------------------------------- commits that change who may do what

def _changes_callers(session: Session) -> bool:
    if any(isinstance(row, User | ChallengeRole | ApiToken) for row in session.deleted):
        return True
    if any(isinstance(row, ChallengeRole) for row in session.new):
        return True
    for row in session.dirty:
        if isinstance(row, User | ChallengeRole):
            return True
        if isinstance(row, ApiToken):
            state = row._sa_instance_state
            if any(state.attrs[name].history.has_changes() for name in _TOKEN_FIELDS):
                return True
    return False


@event.listens_for(Session, "after_flush")
def _note_flush(session: Session, _context) -> None:  # noqa: ANN001
    if _changes_callers(session):
        session.info["callers_changed"] = True


@event.listens_for(Session, "do_orm_execute")
def _note_bulk(execute_state) -> None:  # noqa: ANN001 - an UPDATE or DELETE statement, not through rows
    if (execute_state.is_update or execute_state.is_delete) and execute_state.bind_mapper is not None and \
            execute_state.bind_mapper.class_ in (User, ChallengeRole, ApiToken):
        execute_state.session.info["callers_changed"] = True


@event.listens_for(Session, "after_commit")
def _forget_after_commit(session: Session) -> None:
    if session.info.pop("callers_changed", False):
        ACCEPTED.forget_all()


@event.listens_for(Session, "after_rollback")
def _nothing_changed(session: Session) -> None:
    session.info.pop("callers_changed", None)
