"""Login throttling per account and per client address, counted in the database so that every
server process sees the same attempts."""

from __future__ import annotations

import datetime as dt
import math

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from medarena.errors import TooManyRequests
from medarena.platform.account_tables import LoginAttempt
from medarena.platform.database import utcnow

WINDOW = dt.timedelta(minutes=15)
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_ADDRESS = 20


def check(session: Session, username: str, address: str, now: dt.datetime | None = None) -> None:
    """Refuse a login when the account or the address failed too often within the window."""
    now = now or utcnow()
    since = now - WINDOW
    for column, value, limit, what in ((LoginAttempt.username, username, MAX_FAILURES_PER_ACCOUNT, "this account"),
                                       (LoginAttempt.address, address, MAX_FAILURES_PER_ADDRESS, "your address")):
        last_success = session.scalar(select(func.max(LoginAttempt.at)).where(
            column == value, LoginAttempt.succeeded.is_(True), LoginAttempt.at >= since))
        start = max(since, last_success) if last_success else since
        failures = session.scalars(select(LoginAttempt.at).where(
            column == value, LoginAttempt.succeeded.is_(False), LoginAttempt.at >= start)
            .order_by(LoginAttempt.at)).all()
        if len(failures) >= limit:
            wait = failures[-limit] + WINDOW - now
            minutes = max(1, math.ceil(wait.total_seconds() / 60))
            raise TooManyRequests(f"too many failed logins from {what}; try again in {minutes} minute(s)")


def record(session: Session, username: str, address: str, succeeded: bool) -> None:
    session.add(LoginAttempt(username=username[:64], address=address[:64], succeeded=succeeded, at=utcnow()))
    # old attempts say nothing any more
    session.execute(delete(LoginAttempt).where(LoginAttempt.at < utcnow() - 4 * WINDOW))
