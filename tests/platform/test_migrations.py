"""Migrations upgrade a database that already holds data, keeping every row."""

from __future__ import annotations

import sqlalchemy as sa

from medarena.platform.database import MIGRATIONS, session_scope, upgrade
from tests.platform.old_database import database_at


def test_upgrade_from_the_first_schema_keeps_the_data(tmp_path):
    url = f"sqlite:///{tmp_path}/old.db"
    engine = database_at(url, "0001")
    with engine.begin() as db:
        db.exec_driver_sql("INSERT INTO metric_values (id, job_id, label, metric, value)"
                           " VALUES (1, 1, 'fg', 'dice', 0.5)")
    engine.dispose()
    with session_scope(url) as session:  # migrates to the newest revision
        version = session.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        rows = session.execute(sa.text("SELECT s.participant, c.name, m.value FROM metric_values m "
                                       "JOIN jobs j ON j.id = m.job_id JOIN submissions s ON s.id = j.submission_id "
                                       "JOIN cases c ON c.id = j.case_id")).all()
        fk = session.execute(sa.text("PRAGMA foreign_keys")).scalar()
    assert version == sorted(p.name[:4] for p in (MIGRATIONS / "versions").glob("0*.py"))[-1]
    assert rows == [("ann", "case1", 0.5)]
    assert fk == 1  # foreign keys are enforced again after the migration


def test_a_failing_migration_leaves_the_database_as_it_was(tmp_path, monkeypatch):
    import pytest
    from alembic.operations import Operations

    url = f"sqlite:///{tmp_path}/old.db"
    upgrade(url, "0001")
    real = Operations.batch_alter_table
    calls = []

    def fail_on_second_table(self, table, *args, **kwargs):
        calls.append(table)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(self, table, *args, **kwargs)

    monkeypatch.setattr(Operations, "batch_alter_table", fail_on_second_table)
    with pytest.raises(RuntimeError, match="disk full"):
        upgrade(url)
    engine = sa.create_engine(url)
    with engine.connect() as db:
        tables = {r[0] for r in db.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='table'")}
        version = db.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        challenge_name_type = {r[1]: r[2] for r in db.exec_driver_sql("PRAGMA table_info(challenges)")}
    assert version == "0001"
    assert not any(t.startswith("_alembic_tmp") for t in tables), tables
    assert challenge_name_type["source_path"] == "VARCHAR(1000)"  # the first table's change was undone
    monkeypatch.undo()
    upgrade(url)  # and the migration then goes through
