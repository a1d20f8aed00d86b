"""Users and their roles in challenges."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from medarena.accounts.passwords import hash_password
from medarena.errors import Conflict, InvalidInput, NotFound
from medarena.platform.account_tables import ChallengeRole, User
from medarena.platform.states import RoleState, transition

USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,63}$")
ROLES = ("organizer", "participant")


def check_username(username: str) -> str:
    if not USERNAME.fullmatch(username or ""):
        raise InvalidInput(f"username {username!r}: 2 to 64 characters: lower-case letters, digits, '.', '_', '-'")
    return username


def find_user(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def get_user(session: Session, username: str) -> User:
    user = find_user(session, username)
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


def add_user(session: Session, username: str, password: str, is_admin: bool = False) -> User:
    check_username(username)
    if find_user(session, username) is not None:
        raise Conflict(f"user {username!r} exists already")
    user = User(username=username, password_hash=hash_password(password), is_admin=is_admin, disabled=False)
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, username: str, password: str) -> User:
    user = get_user(session, username)
    user.password_hash = hash_password(password)
    return user


def set_disabled(session: Session, username: str, disabled: bool = True) -> User:
    user = get_user(session, username)
    user.disabled = disabled
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def role_of(session: Session, user_id: int, challenge_id: int, role: str) -> ChallengeRole | None:
    return session.scalar(select(ChallengeRole).where(
        ChallengeRole.user_id == user_id, ChallengeRole.challenge_id == challenge_id, ChallengeRole.role == role))


def grant(session: Session, user: User, challenge_id: int, role: str,
          state: RoleState = RoleState.APPROVED) -> ChallengeRole:
    """Give a user a role in a challenge (an existing one keeps its row, with the new state)."""
    if role not in ROLES:
        raise InvalidInput(f"role {role!r}: one of {', '.join(ROLES)}")
    row = role_of(session, user.id, challenge_id, role)
    if row is None:
        row = ChallengeRole(user_id=user.id, challenge_id=challenge_id, role=role,
                           state=transition(None, state))
        session.add(row)
    else:
        row.state = transition(row.state, state)
    session.flush()
    return row


def roles_in(session: Session, user_id: int, challenge_id: int) -> dict[str, str]:
    """role -> state of a user in a challenge."""
    return {r.role: r.state for r in session.scalars(select(ChallengeRole).where(
        ChallengeRole.user_id == user_id, ChallengeRole.challenge_id == challenge_id))}
