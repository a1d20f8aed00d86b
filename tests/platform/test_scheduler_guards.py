"""Guards around the scheduler: one per database, re-evaluation of ended submissions only,
concurrent first commands on a new database."""

from __future__ import annotations

import os
import subprocess
import sys

from typer.testing import CliRunner

from medarena.cli import app
from medarena.platform import organizer, scheduler
from medarena.platform.database import Phase, Submission, session_scope
from tests.platform.challenge_data import write_definition, write_source

runner = CliRunner()


def test_a_second_scheduler_on_the_same_database_stops_at_once(home):
    with scheduler.exclusive(home):
        result = runner.invoke(app, ["run"], env={"MEDARENA_HOME": str(home.home)})
    assert result.exit_code == 1
    assert "another scheduler is running on this database" in result.output
    assert "Traceback" not in result.output
    with scheduler.exclusive(home):  # released: the next one gets it
        pass


def test_reevaluate_takes_only_ended_submissions(home, tmp_path):
    organizer.create_challenge(home, write_definition(tmp_path / "toy.yaml"))
    organizer.ingest_phase(home, "toy", "test", write_source(tmp_path / "src", n=1))
    with session_scope(home.database_url) as session:
        session.add(Submission(phase=session.query(Phase).one(), participant="ann", image="i", image_digest="d"))
    env = {"MEDARENA_HOME": str(home.home)}
    queued = runner.invoke(app, ["reevaluate", "1"], env=env)
    assert queued.exit_code == 1 and "submission 1 is queued: only ended submissions" in queued.output
    missing = runner.invoke(app, ["reevaluate", "42"], env=env)
    assert missing.exit_code == 1 and "no submission 42" in missing.output


def test_first_commands_at_once_on_a_new_database_all_work(tmp_path):
    env = {**os.environ, "MEDARENA_HOME": str(tmp_path / "fresh")}
    processes = [subprocess.Popen([sys.executable, "-m", "medarena.cli", "challenge", "list"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8")
                 for _ in range(4)]
    results = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0] * 4, [err[-500:] for _, err in results]
