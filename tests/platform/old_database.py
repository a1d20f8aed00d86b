"""A database at an older schema revision holding one scored job, for the migration tests."""

from __future__ import annotations

import sqlalchemy as sa

from medarena.platform.database import upgrade


def database_at(url: str, revision: str, **job_columns) -> sa.Engine:
    """Migrate a new SQLite database at ``url`` to ``revision`` and insert a challenge, a phase,
    a case, a succeeded submission and its job (with ``job_columns`` besides the first schema's);
    the engine is returned for more rows and must be disposed of."""
    upgrade(url, revision)
    engine = sa.create_engine(url)
    names = ", ".join(["id", "submission_id", "case_id", "state", "detail", "stdout_tail", "stderr_tail",
                       "attempts", "node", *job_columns])
    values = ", ".join(["1", "1", "1", "'succeeded'", "''", "''", "''", "1", "''", *map(repr, job_columns.values())])
    with engine.begin() as db:
        db.exec_driver_sql("INSERT INTO challenges (id, slug, title, description, definition, source_path, created_at)"
                           " VALUES (1, 'c', 't', '', '{}', '', '2026-01-01')")
        db.exec_driver_sql("INSERT INTO phases (id, challenge_id, slug, title) VALUES (1, 1, 'p', '')")
        db.exec_driver_sql("INSERT INTO cases (id, phase_id, name, checksum, info, created_at)"
                           " VALUES (1, 1, 'case1', 'x', '{}', '2026-01-01')")
        db.exec_driver_sql("INSERT INTO submissions (id, phase_id, participant, image, image_digest, comment, state,"
                           " created_at, dataset_metrics, aggregates) VALUES (1, 1, 'ann', 'img', 'd', '', 'succeeded',"
                           " '2026-01-01', '{}', '{}')")
        db.exec_driver_sql(f"INSERT INTO jobs ({names}) VALUES ({values})")
    return engine
