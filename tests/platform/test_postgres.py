"""The platform on a real PostgreSQL server (infra/postgres.sh), one fresh database per test."""

from __future__ import annotations

import glob
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import zarr
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import make_url

from medarena.dashboard import data
from medarena.platform import organizer, scheduler
from medarena.platform.database import (
    MIGRATIONS,
    Base,
    Case,
    Challenge,
    Job,
    Phase,
    Submission,
    engine_for,
    session_scope,
    upgrade,
)
from medarena.platform.settings import Settings, load_settings
from medarena.platform.submissions import SubmissionError, create_submission
from tests.platform.challenge_data import cube_case, write_definition, write_source

REPO = Path(__file__).resolve().parents[2]
TABLES = {"challenges", "phases", "cases", "submissions", "jobs", "metric_values", "leaderboard_entries",
          "users", "challenge_roles", "api_tokens", "uploads", "login_attempts"}
JSON_COLUMNS = {
    ("challenges", "definition"),
    ("cases", "info"),
    ("submissions", "dataset_metrics"),
    ("submissions", "aggregates"),
    ("submissions", "metrics_json"),
    ("jobs", "pooled"),
    ("leaderboard_entries", "columns"),
}

pytestmark = pytest.mark.skipif(
    not glob.glob("/usr/lib/postgresql/*/bin/initdb"),
    reason="PostgreSQL is not installed (infra/install-system.sh installs it)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of the `medarena` database on a throwaway cluster, running for the whole session."""
    # under /tmp itself: pytest's own temporary folders are closed to the postgres user
    folder = tempfile.mkdtemp(prefix="medarena-pg-")
    script = REPO / "infra" / "postgres.sh"
    start = subprocess.run(
        ["bash", str(script), folder, str(_free_port())], capture_output=True, text=True, timeout=120
    )
    assert start.returncode == 0, start.stderr
    try:
        yield start.stdout.strip()
    finally:
        subprocess.run(["bash", str(script), "stop", folder], check=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg(postgres_url) -> Iterator[str]:
    """A fresh, empty database on the session's server; dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    yield url
    engine_for(url).dispose()
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def pg_home(home, pg, monkeypatch) -> Settings:
    monkeypatch.setenv("MEDARENA_DATABASE_URL", pg)
    settings = load_settings()
    assert settings.database_url == pg
    return settings


def _scalar(url: str, sql: str, **params):
    """One value read by plain SQL on a connection of its own (not through the models)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text(sql), params).scalar()
    finally:
        engine.dispose()


def _rows(url: str, sql: str, **params) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sa.text(sql), params)]
    finally:
        engine.dispose()


def test_migration_creates_the_schema_and_a_second_run_changes_nothing(pg):
    assert _scalar(pg, "SELECT version()").startswith("PostgreSQL")
    upgrade(pg)
    tables = {
        name for (name,) in _rows(pg, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
    }
    assert tables == TABLES | {"alembic_version"}
    json_columns = set(
        _rows(
            pg,
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND data_type = 'json'",
        )
    )
    assert json_columns == JSON_COLUMNS
    created = _scalar(
        pg,
        "SELECT data_type FROM information_schema.columns "
        "WHERE table_name = 'submissions' AND column_name = 'created_at'",
    )
    assert created == "timestamp without time zone"  # naive UTC, as the models write it
    with engine_for(pg).connect() as connection:  # the migrated schema is the one the models describe
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []

    with session_scope(pg) as session:
        session.add(Challenge(slug="kept", title="Kept", definition={}))
    upgrade(pg)
    newest = sorted(p.name.split("_")[0] for p in (MIGRATIONS / "versions").glob("0*.py"))[-1]
    assert _scalar(pg, "SELECT version_num FROM alembic_version") == newest
    assert _scalar(pg, "SELECT count(*) FROM alembic_version") == 1
    assert _scalar(pg, "SELECT slug FROM challenges") == "kept"


def test_json_columns_round_trip(pg):
    definition = {
        "slug": "j",
        "nested": {"list": [1, 2.5, None, True, "ü ✓"], "empty": {}},
        "big": 2**53 + 1,
        "tiny": 1e-300,
        "quote": 'a "b" \\ c',
    }
    pooled = [{"scores": [0.25, 0.75], "labels": [0, 1]}, None]
    with session_scope(pg) as session:
        challenge = Challenge(slug="j", title="J", definition=definition)
        phase = Phase(challenge=challenge, slug="p")
        case = Case(phase=phase, name="c", checksum="0" * 64, info={"scan": {"shape": [2, 3, 4]}})
        submission = Submission(
            phase=phase,
            participant="p",
            image="i",
            image_digest="d",
            dataset_metrics={"AP": 0.5, "curve": [[0, 1], [1, 0]]},
        )
        session.add_all([case, submission, Job(submission=submission, case=case, pooled=pooled)])
    with session_scope(pg) as session:
        assert session.scalar(sa.select(Challenge.definition)) == definition
        assert session.scalar(sa.select(Case.info)) == {"scan": {"shape": [2, 3, 4]}}
        assert session.scalar(sa.select(Submission.dataset_metrics))["curve"] == [[0, 1], [1, 0]]
        assert session.scalar(sa.select(Job.pooled)) == pooled
        assert session.scalar(sa.select(Submission.aggregates)) == {}  # the default
    # stored as real JSON: PostgreSQL's own operators see inside it
    assert _scalar(pg, "SELECT definition->'nested'->'list'->>4 FROM challenges") == "ü ✓"
    assert _scalar(pg, "SELECT (definition->>'big')::numeric FROM challenges") == 2**53 + 1
    assert _scalar(pg, "SELECT json_typeof(pooled->1) FROM jobs") == "null"


def test_submission_limit_holds_under_concurrent_submissions(pg_home, tmp_path):
    organizer.create_challenge(pg_home, write_definition(tmp_path / "toy.yaml"))  # limit: 3 a day
    organizer.ingest_phase(pg_home, "toy", "test", write_source(tmp_path / "src", n=1))
    url = pg_home.database_url
    attempts = 8
    barrier = threading.Barrier(attempts)
    ids: list[int] = []
    errors: list[str] = []

    def attempt() -> None:
        with session_scope(url) as session:
            barrier.wait()
            try:
                ids.append(create_submission(session, "toy", "test", "bo", "img", "sha256:x").id)
            except SubmissionError as exc:
                errors.append(str(exc))

    threads = [threading.Thread(target=attempt) for _ in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(ids) == 3 and len(errors) == attempts - 3
    assert all("participant 'bo' has used 3 of 3 submissions" in e for e in errors)
    assert sorted(ids) == [i for (i,) in _rows(url, "SELECT id FROM submissions ORDER BY id")]
    with session_scope(url) as session:  # limits are per participant
        create_submission(session, "toy", "test", "other", "img", "sha256:x")
    assert _scalar(url, "SELECT count(*) FROM submissions") == 4


@pytest.mark.podman
def test_a_submission_runs_end_to_end_with_results_in_postgres(pg_home, tmp_path, example_images, ray_cluster):
    url = pg_home.database_url
    organizer.create_challenge(pg_home, write_definition(tmp_path / "toy.yaml"))
    organizer.ingest_phase(pg_home, "toy", "test", write_source(tmp_path / "src", n=2))
    sid, digest = organizer.submit(pg_home, "toy", "test", "ann", f"{example_images}threshold:latest")
    assert scheduler.run(pg_home) == [sid]

    assert _rows(url, "SELECT state, image_digest FROM submissions") == [("succeeded", digest)]
    jobs = _rows(
        url,
        "SELECT c.name, j.id, j.state, j.attempts, j.started_at <= j.finished_at "
        "FROM jobs j JOIN cases c ON c.id = j.case_id ORDER BY c.name",
    )
    assert [(name, state, attempts, ordered) for name, _, state, attempts, ordered in jobs] == [
        ("case0", "succeeded", 1, True),
        ("case1", "succeeded", 1, True),
    ]
    predictions = zarr.open_group(scheduler.predictions_url(pg_home, "toy", "test", sid), mode="r")
    for name, job_id, *_ in jobs:
        _, mask = cube_case(int(name[-1]))
        predicted = predictions[name]["segmentation"][...] == 1
        dice = 2 * np.logical_and(mask == 1, predicted).sum() / ((mask == 1).sum() + predicted.sum())
        stored = _scalar(
            url, "SELECT value FROM metric_values WHERE job_id = :j AND metric = 'dice' AND label = 'fg'", j=job_id
        )
        assert stored == pytest.approx(dice, abs=1e-12) and stored > 0.9

    board = _rows(url, "SELECT submission_id, rank, columns->>'cases succeeded' FROM leaderboard_entries")
    assert board == [(sid, 1, "2/2")]
    shown = data.leaderboard(data.Viewer(pg_home), "toy", "test")  # public: seen anonymously
    assert shown[["rank", "participant", "submission", "cases succeeded"]].values.tolist() == [[1, "ann", sid, "2/2"]]
    assert scheduler.run(pg_home) == []  # nothing left to do


def test_long_names_and_nul_bytes_from_people_and_containers_are_stored(pg):
    from medarena.platform.database import Case, Challenge, Job, MetricValue, Phase, Submission, session_scope

    long = "x" * 5000
    with session_scope(pg) as session:
        challenge = Challenge(slug="long", title="t", definition={}, source_path="/" + long)
        phase = Phase(slug="p", challenge=challenge)
        case = Case(name=long, checksum="c", phase=phase)
        sub = Submission(phase=phase, participant=long, image="/tmp/" + long + ".tar", image_digest="d")
        job = Job(case=case, stdout_tail="binary\ufffdoutput")
        sub.jobs.append(job)
        job.metrics.append(MetricValue(label=long, metric="f1", value=1.0))
        session.add(challenge)
    with session_scope(pg) as session:
        assert session.query(MetricValue).one().label == long


def test_log_tails_never_hold_nul_bytes(tmp_path):
    import io

    from medarena.platform.runner import _Tail

    tail = _Tail(io.BytesIO(b"before\x00after"), 100)
    assert tail.text() == "before\ufffdafter"


def test_first_migration_from_several_threads_at_once(pg):
    import threading

    from medarena.platform import database

    database._migrated.discard(pg)  # as a fresh process would see this database
    errors: list[BaseException] = []

    def open_session():
        try:
            with database.session_scope(pg) as session:
                session.query(database.Challenge).count()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_session) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a migration hung"
    assert errors == []


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_messages_with_undecodable_names_and_nul_bytes_are_stored_escaped(request, home, tmp_path, database):
    """A file name that is not UTF-8 becomes lone surrogates in Python; NUL is refused by
    PostgreSQL: the recorded outcome keeps both, escaped, on either database."""
    from medarena.platform.casejob import CaseOutcome
    from medarena.platform.scheduling import recorder
    from medarena.platform.states import JobState

    settings = request.getfixturevalue("pg_home") if database == "postgresql" else home
    organizer.create_challenge(settings, write_definition(tmp_path / "toy.yaml"))
    organizer.ingest_phase(settings, "toy", "test", write_source(tmp_path / "src", n=1))
    with session_scope(settings.database_url) as session:
        create_submission(session, "toy", "test", "ann", "img", "sha256:x")
    (item,) = scheduler.collect_work(settings)
    recorder.set_jobs(settings, [item.job_id], JobState.RUNNING, started=True)  # as the scheduler dispatches it
    name = b"notes-\xff.txt".decode("utf-8", errors="surrogateescape")
    outcome = CaseOutcome(case="case0", state="failed", reason="invalid_output", detail=f"/output/{name}: odd",
                          stdout_tail="a\x00b", stderr_tail=name)
    retry, recorded = scheduler._record_safely(settings, item, outcome)
    assert (retry, recorded) == (False, outcome)
    with session_scope(settings.database_url) as session:
        job = session.get(Job, item.job_id)
        assert (job.state, job.detail) == ("failed", "/output/notes-\\udcff.txt: odd")
        assert (job.stdout_tail, job.stderr_tail) == ("a\\x00b", "notes-\\udcff.txt")
