"""One scheduler per database: a file lock for SQLite, an advisory lock for PostgreSQL."""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path

from medarena.errors import Conflict
from medarena.platform.database import engine_for
from medarena.platform.settings import Settings

_ADVISORY_KEY = 7315047


class SchedulerError(Conflict, RuntimeError):
    """The scheduler cannot run (another one runs on this database, a cluster without shared storage)."""


@contextmanager
def exclusive(settings: Settings):
    """Hold the one-scheduler-per-database lock: a second `medarena run` or `worker` on the same
    database stops at once instead of running the same jobs twice."""
    url = settings.database_url
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///") + ".scheduler-lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SchedulerError(f"another scheduler is running on this database ({path})") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    with engine_for(url).connect() as connection:  # PostgreSQL: a session-level advisory lock
        if not connection.exec_driver_sql(f"SELECT pg_try_advisory_lock({_ADVISORY_KEY})").scalar():
            raise SchedulerError("another scheduler is running on this database")
        try:
            yield
        finally:
            connection.exec_driver_sql(f"SELECT pg_advisory_unlock({_ADVISORY_KEY})")
            connection.commit()
