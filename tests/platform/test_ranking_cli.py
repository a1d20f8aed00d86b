"""Ranking a phase from stored metrics: the leaderboard, `medarena rank`, re-ranking on a new recipe."""

from __future__ import annotations

import pytest
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from medarena.cli import app
from medarena.platform import leaderboard, organizer
from medarena.platform.database import Case, Job, LeaderboardEntry, MetricValue, Phase, Submission, session_scope
from tests.platform.challenge_data import definition

runner = CliRunner()
# per-case dice and hd95 of three submissions over four cases; "c" failed case3
VALUES = {
    "a": {"case0": (0.9, 2.0), "case1": (0.8, 3.0), "case2": (0.7, 9.0), "case3": (0.9, 1.0)},
    "b": {"case0": (0.6, 1.0), "case1": (0.9, 1.5), "case2": (0.9, 1.0), "case3": (0.95, 1.0)},
    "c": {"case0": (0.95, 5.0), "case1": (0.95, 5.0), "case2": (0.95, 5.0)},
}


def _fill(settings, tmp_path, ranking):
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(definition(ranking=ranking)))
    organizer.create_challenge(settings, path)
    with session_scope(settings.database_url) as session:
        phase = session.scalar(select(Phase))
        cases = {name: Case(name=name, checksum="x") for name in ("case0", "case1", "case2", "case3")}
        phase.cases.extend(cases.values())
        for participant, per_case in VALUES.items():
            sub = Submission(phase=phase, participant=participant, image="i", image_digest="d", state="running")
            session.add(sub)
            for name, case in cases.items():
                job = Job(case=case, state="succeeded" if name in per_case else "failed")
                sub.jobs.append(job)
                if name in per_case:
                    dice, hd95 = per_case[name]
                    job.metrics += [MetricValue(label="fg", metric="dice", value=dice),
                                    MetricValue(label="fg", metric="hd95", value=hd95)]
            session.flush()
            leaderboard.summarize_submission(session, sub)
            sub.state = "succeeded"
        session.flush()
        leaderboard.rank_phase(session, phase)
    return path


def _board(settings):
    with session_scope(settings.database_url) as session:
        rows = session.scalars(select(LeaderboardEntry).order_by(LeaderboardEntry.rank)).all()
        return [(session.get(Submission, r.submission_id).participant, r.rank, r.columns) for r in rows]


def test_declared_recipe_ranks_with_missing_cases_worst(home, tmp_path):
    _fill(home, tmp_path, {"method": "aggregate-then-rank", "metrics": [{"metric": "dice", "label": "fg"}],
                           "bootstrap": 0})
    board = _board(home)
    # mean dice: a = 3.3/4 = 0.825, b = 3.35/4 = 0.8375, c = (2.85 + worst 0.6)/4 = 0.8625
    assert [(p, r) for p, r, _ in board] == [("c", 1), ("b", 2), ("a", 3)]
    assert board[0][2]["dice (fg) mean"] == pytest.approx(0.8625, abs=1e-12)
    assert board[0][2]["cases succeeded"] == "3/4"


def test_recipe_change_reranks_without_running_anything(home, tmp_path):
    path = _fill(home, tmp_path, {"method": "aggregate-then-rank", "metrics": [{"metric": "dice", "label": "fg"}],
                                  "bootstrap": 0})
    changed = yaml.safe_load(path.read_text())
    # hd95 alone, lower is better: a = 15/4 = 3.75, b = 4.5/4 = 1.125, c = (15 + worst 9)/4 = 6
    changed["ranking"]["metrics"] = [{"metric": "hd95", "label": "fg"}]
    path.write_text(yaml.safe_dump(changed))
    organizer.create_challenge(home, path)
    assert [(p, r) for p, r, _ in _board(home)] == [("b", 1), ("a", 2), ("c", 3)]


def test_rank_command_compares_methods_and_writes_the_report(home, tmp_path):
    _fill(home, tmp_path, {"method": "aggregate-then-rank", "metrics": [{"metric": "dice", "label": "fg"}],
                           "bootstrap": 50})
    before = _board(home)
    out = tmp_path / "report"
    result = runner.invoke(app, ["rank", "-c", "toy", "-p", "test", "--method", "rank-then-aggregate",
                                 "--output", str(out)], env={"MEDARENA_HOME": str(home.home), "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    # rank-then-aggregate: per-case ranks a=(2,3,3,2.. min ties) -> mean ranks a 2.25, b 2.0, c 1.75
    assert (out / "ranking.csv").exists() and any(out.glob("blob.png")) and any(out.glob("blob.html"))
    assert _board(home) == before  # a comparison does not replace the declared leaderboard
    bad = runner.invoke(app, ["rank", "-c", "toy", "-p", "test", "--method", "coin-flip"],
                        env={"MEDARENA_HOME": str(home.home)})
    assert bad.exit_code == 1 and "method" in bad.output and "Traceback" not in bad.output
