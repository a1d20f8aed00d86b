"""The database: SQLAlchemy 2 models and sessions. Alembic migrations create the schema.

Only the platform's driver process writes here (the CLI and the scheduler's driver); Ray tasks
return results and the dashboard only reads.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

from medarena.platform.states import JobState, SubmissionState


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Challenge(Base):
    __tablename__ = "challenges"
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    definition: Mapped[dict[str, Any]]  # the validated YAML, as JSON
    source_path: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    phases: Mapped[list[Phase]] = relationship(back_populates="challenge", cascade="all, delete-orphan",
                                               order_by="Phase.id")


class Phase(Base):
    __tablename__ = "phases"
    __table_args__ = (UniqueConstraint("challenge_id", "slug"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    challenge_id: Mapped[int] = mapped_column(ForeignKey("challenges.id"))
    slug: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200), default="")
    challenge: Mapped[Challenge] = relationship(back_populates="phases")
    cases: Mapped[list[Case]] = relationship(back_populates="phase", order_by="Case.name")
    submissions: Mapped[list[Submission]] = relationship(back_populates="phase", order_by="Submission.id")


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (UniqueConstraint("phase_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    phase_id: Mapped[int] = mapped_column(ForeignKey("phases.id"))
    name: Mapped[str] = mapped_column(Text)  # from the organizer's file names
    checksum: Mapped[str] = mapped_column(String(64))
    info: Mapped[dict[str, Any]] = mapped_column(default=dict)  # per socket: shape, spacing, modality
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    phase: Mapped[Phase] = relationship(back_populates="cases")


class Submission(Base):
    __tablename__ = "submissions"
    id: Mapped[int] = mapped_column(primary_key=True)
    phase_id: Mapped[int] = mapped_column(ForeignKey("phases.id"))
    participant: Mapped[str] = mapped_column(Text)
    image: Mapped[str] = mapped_column(Text)  # what the participant handed in
    image_digest: Mapped[str] = mapped_column(String(100))  # what runs: the pinned image ID
    comment: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(20), default=SubmissionState.QUEUED)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    dataset_metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)  # pooled: AP, AUROC, curves
    aggregates: Mapped[dict[str, Any]] = mapped_column(default=dict)
    submitter_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: one-laptop mode
    model: Mapped[str] = mapped_column(Text, default="")  # the model tarball as handed in
    model_digest: Mapped[str | None] = mapped_column(String(100))  # sha256 of the model tarball
    # the phase's evaluation container over this submission: None (none ran) or an EvaluationState
    evaluation_state: Mapped[str | None] = mapped_column(String(20))
    evaluation_detail: Mapped[str] = mapped_column(Text, default="")  # one line; the organizer's to fix
    evaluation_log: Mapped[str] = mapped_column(Text, default="")  # organizer only: its stdout/stderr tails
    metrics_json: Mapped[Any] = mapped_column(JSON, nullable=True)  # the metrics.json it wrote
    phase: Mapped[Phase] = relationship(back_populates="submissions")
    jobs: Mapped[list[Job]] = relationship(back_populates="submission", order_by="Job.id",
                                           cascade="all, delete-orphan")


class Job(Base):
    """One case of one submission: (submission, case) is unique, so reruns never duplicate."""

    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("submission_id", "case_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    state: Mapped[str] = mapped_column(String(20), default=JobState.QUEUED)
    reason: Mapped[str | None] = mapped_column(String(40))  # timeout, out_of_memory, exit_code, ...
    detail: Mapped[str] = mapped_column(Text, default="")  # a one-line message a participant can act on
    stdout_tail: Mapped[str] = mapped_column(Text, default="")
    stderr_tail: Mapped[str] = mapped_column(Text, default="")
    runtime_seconds: Mapped[float | None] = mapped_column(Float)  # the container's wall time
    cpu_seconds: Mapped[float | None] = mapped_column(Float)  # NULL: not measurable where it ran
    peak_memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    gpu_seconds: Mapped[float | None] = mapped_column(Float)  # wall time x GPUs assigned
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    pooled: Mapped[Any] = mapped_column(JSON, nullable=True)  # the evaluator's data-set payload
    platform_log: Mapped[str] = mapped_column(Text, default="")  # organizer only: platform faults
    node: Mapped[str] = mapped_column(String(200), default="")
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    submission: Mapped[Submission] = relationship(back_populates="jobs")
    case: Mapped[Case] = relationship()
    metrics: Mapped[list[MetricValue]] = relationship(back_populates="job", cascade="all, delete-orphan")


class MetricValue(Base):
    """One metric of one job, long format: (job, label, metric) -> value (NULL when undefined)."""

    __tablename__ = "metric_values"
    __table_args__ = (UniqueConstraint("job_id", "label", "metric"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    label: Mapped[str] = mapped_column(Text, default="")  # "" for whole-case metrics; may come from outputs
    metric: Mapped[str] = mapped_column(Text)
    value: Mapped[float | None] = mapped_column(Float)
    job: Mapped[Job] = relationship(back_populates="metrics")


class LeaderboardEntry(Base):
    """The latest ranking of a phase, one row per ranked submission."""

    __tablename__ = "leaderboard_entries"
    __table_args__ = (UniqueConstraint("phase_id", "submission_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    phase_id: Mapped[int] = mapped_column(ForeignKey("phases.id"), index=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"))
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float | None] = mapped_column(Float)
    rank_low: Mapped[float | None] = mapped_column(Float)  # 2.5 % bootstrap rank
    rank_high: Mapped[float | None] = mapped_column(Float)  # 97.5 % bootstrap rank
    columns: Mapped[dict[str, Any]] = mapped_column(default=dict)  # metric column -> aggregate value
    computed_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    submission: Mapped[Submission] = relationship()


from medarena.platform import account_tables  # noqa: E402,F401 - users, tokens, uploads: same schema

MIGRATIONS = Path(__file__).parent / "migrations"


def _make_sqlite_folder(url: str) -> None:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


@cache
def engine_for(url: str) -> Engine:
    _make_sqlite_folder(url)
    engine = create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {})
    if url.startswith("sqlite"):
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # noqa: ANN001
            cursor = dbapi_connection.cursor()
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                try:
                    cursor.execute("PRAGMA journal_mode=WAL")
                except sqlite3.OperationalError:
                    # another process holds the database (its first command migrating it) and
                    # switching the journal does not wait; WAL lives in the file once any sets it
                    pass
            cursor.execute("PRAGMA foreign_keys=ON")
            # in WAL mode NORMAL never corrupts the database; a power cut may lose the last
            # commits (a job then runs again), and commits stop waiting for the disk each time
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()
    return engine


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema to the newest (or the given) Alembic revision."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    engine = _migration_engine(url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":  # one migrating process at a time
                connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7315046)")
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def _migration_engine(url: str) -> Engine:
    """An engine whose transactions cover DDL too, so a failed migration leaves nothing behind.

    Python's sqlite3 driver runs DDL outside any transaction and SQLite rebuilds a table to change
    it, which enforced foreign keys would forbid: migrations on SQLite get connections without
    the driver's own transaction handling, an explicit BEGIN, and foreign keys off.
    """
    _make_sqlite_folder(url)
    engine = create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {})
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _manual_transactions(dbapi_connection, _record):  # noqa: ANN001
            dbapi_connection.isolation_level = None
            dbapi_connection.execute("PRAGMA foreign_keys=OFF")

        @event.listens_for(engine, "begin")
        def _begin(connection):  # noqa: ANN001 - IMMEDIATE: two first commands wait, not fail
            connection.exec_driver_sql("BEGIN IMMEDIATE")
    return engine


_migrated: set[str] = set()
_migrating = threading.Lock()  # Alembic's context is process-wide: one migration at a time


@contextmanager
def session_scope(url: str, *, migrate: bool = True):
    """A session committed on success and rolled back on any error (nothing half-written)."""
    if migrate and url not in _migrated:
        with _migrating:
            if url not in _migrated:
                upgrade(url)
                _migrated.add(url)
    session = _sessions_for(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@cache
def _sessions_for(url: str) -> sessionmaker:
    """One factory per database: making one per session costs more than most reads."""
    return sessionmaker(engine_for(url), expire_on_commit=False)


def read_session(url: str) -> Session:
    """A session for readers (the dashboard): no migration, nothing committed."""
    return sessionmaker(engine_for(url))()
