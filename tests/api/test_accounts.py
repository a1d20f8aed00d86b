"""Accounts on the database: Argon2id hashes, tokens stored only as their SHA-256, throttling per
address, and migration 0004 on a database that holds data."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from argon2 import PasswordHasher

from medarena.errors import TooManyRequests, Unauthenticated
from medarena.platform.database import Base, engine_for, session_scope, upgrade
from medarena.services import accounts


def test_passwords_are_argon2id_and_tokens_are_stored_as_their_sha256(home):
    accounts.add_user(home, "alice", "correct horse")
    token, token_id = accounts.create_token(home, "alice", "laptop", 30)
    with engine_for(home.database_url).connect() as db:
        stored_hash = db.exec_driver_sql("SELECT password_hash FROM users").scalar()
        token_hash = db.exec_driver_sql("SELECT token_hash FROM api_tokens WHERE id = ?", (token_id,)).scalar()
        dump = "\n".join(str(row) for table in ("users", "api_tokens")
                         for row in db.exec_driver_sql(f"SELECT * FROM {table}"))
    assert stored_hash.startswith("$argon2id$")
    assert PasswordHasher().verify(stored_hash, "correct horse")  # the peer library reads it
    assert token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in dump and "correct horse" not in dump
    assert accounts.authenticate(home, token).username == "alice"
    login_token = accounts.login(home, "alice", "correct horse", "10.0.0.1")
    assert accounts.authenticate(home, login_token).username == "alice"


def test_failed_logins_from_one_address_are_throttled_across_accounts(home):
    accounts.add_user(home, "alice", "correct horse")
    for i in range(20):
        with pytest.raises(Unauthenticated):
            accounts.login(home, f"guess{i}", "password", "10.0.0.9")
    with pytest.raises(TooManyRequests, match="too many failed logins from your address"):
        accounts.login(home, "alice", "correct horse", "10.0.0.9")
    assert accounts.login(home, "alice", "correct horse", "10.0.0.10")  # another address is served


def test_migration_0004_upgrades_a_database_with_submissions(tmp_path):
    url = f"sqlite:///{tmp_path}/old.db"
    upgrade(url, "0003")
    engine = sa.create_engine(url)
    with engine.begin() as db:
        db.exec_driver_sql("INSERT INTO challenges (id, slug, title, description, definition, source_path, created_at)"
                           " VALUES (1, 'c', 't', '', '{}', '', '2026-01-01')")
        db.exec_driver_sql("INSERT INTO phases (id, challenge_id, slug, title) VALUES (1, 1, 'p', '')")
        db.exec_driver_sql("INSERT INTO submissions (id, phase_id, participant, image, image_digest, comment, state,"
                           " created_at, dataset_metrics, aggregates) VALUES (1, 1, 'ann', 'img', 'd', '', 'succeeded',"
                           " '2026-01-01', '{}', '{}')")
    engine.dispose()
    upgrade(url)
    with session_scope(url) as session:
        assert session.execute(sa.text("SELECT participant, submitter_id FROM submissions")).all() == [("ann", None)]
    with engine_for(url).connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
