"""Password hashing with Argon2id (argon2-cffi, its recommended parameters)."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from medarena.errors import InvalidInput

MIN_LENGTH = 8
MAX_LENGTH = 256  # hashing is deliberately slow; an unbounded password would be a cheap attack


@cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()


def check_strength(password: str) -> None:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise InvalidInput(f"password: between {MIN_LENGTH} and {MAX_LENGTH} characters, please")


def hash_password(password: str) -> str:
    check_strength(password)
    return _hasher().hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher().verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


_DUMMY: list[str] = []


def burn_time(password: str) -> None:
    """Spend what a verification costs, so that an unknown user name answers as slowly as a wrong password."""
    if not _DUMMY:
        _DUMMY.append(_hasher().hash("medarena-timing-equaliser"))
    verify_password(_DUMMY[0], password[:MAX_LENGTH])
