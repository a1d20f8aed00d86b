"""A phase scored by the organizer's own evaluation container, with grand-challenge's
evaluation contract: predictions.json, the jobs' outputs, the ground truth, metrics.json read
back into leaderboard columns and per-case rows; its failures are the organizer's."""

from __future__ import annotations

import io
import tarfile

import pytest
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from medarena.cli import app
from medarena.platform import organizer, scheduler
from medarena.platform.challenges import DefinitionError
from medarena.platform.database import Challenge, LeaderboardEntry, Submission, session_scope
from medarena.platform.evaluation_container import EvaluationError, case_rows, jsonpath, read_metrics
from tests.platform import gc_phase
from tests.platform.test_gc_contract import GC_JOB_KEYS

runner = CliRunner()


def test_jsonpath_reads_dotted_object_keys_only():
    metrics = {"aggregates": {"dice": {"mean": 0.8}}, "list": [1, 2]}
    assert jsonpath(metrics, "aggregates.dice.mean") == 0.8
    for path in ("aggregates.dice.std", "list.0", "aggregates.dice.mean.x"):
        with pytest.raises(KeyError):
            jsonpath(metrics, path)


@pytest.mark.parametrize(("content", "problem"), [
    (None, "wrote no /output/metrics.json"),
    ("{oops", "is not valid JSON (Expecting property name"),
    ('{"a": NaN}', "holds NaN, which is not a JSON number"),
    ('{"a": -Infinity}', "holds -Infinity"),
    ("[" * 40 + "]" * 40, "nested deeper than 32 levels"),
    ("[" * 100000 + "]" * 100000, "not valid JSON (RecursionError)"),
])
def test_metrics_json_is_bounded_and_refuses_nan(tmp_path, content, problem):
    if content is not None:
        (tmp_path / "metrics.json").write_text(content)
    with pytest.raises(EvaluationError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        read_metrics(tmp_path)


def test_metrics_json_must_be_a_regular_file(tmp_path):
    (tmp_path / "metrics.json").symlink_to("/etc/hostname")
    with pytest.raises(EvaluationError, match="cannot be read"):
        read_metrics(tmp_path)


def test_case_rows_by_job_pk_or_input_image_name():
    jobs = {"pk-a": "case0", "pk-b": "case1"}
    rows, note = case_rows({"cases": [{"pk": "pk-a", "dice": 0.5, "name": "x", "flag": True},
                                      {"image_name": "case1.mha", "dice": 1}]}, jobs)
    assert rows == {"case0": {"dice": 0.5}, "case1": {"dice": 1.0}} and note == ""
    rows, note = case_rows({"results": [{"dice": 0.5}]}, jobs)
    assert rows == {} and "ranks on the leaderboard columns only" in note
    with pytest.raises(EvaluationError, match="item 1 of the case list names no job of this submission"):
        case_rows({"cases": [{"pk": "pk-a"}, {"pk": "nope"}]}, jobs)
    with pytest.raises(EvaluationError, match="case 'case0' appears twice"):
        case_rows({"cases": [{"pk": "pk-a"}, {"image_name": "case0.mha"}]}, jobs)


@pytest.fixture
def scored_phase(example_images, home, tmp_path, ray_cluster):
    """The probe phase, two submissions (models giving 1.0 and 0.0 on every case), run."""
    gc_phase.build_probe(example_images)
    organizer.create_challenge(home, gc_phase.definition(tmp_path))
    organizer.ingest_phase(home, "gcprobe", "test", gc_phase.write_cases(tmp_path / "source"))
    ids = [organizer.submit(home, "gcprobe", "test", name, gc_phase.PROBE,
                            model=gc_phase.model_tarball(tmp_path / f"{name}.tar.gz", value))[0]
           for name, value in (("ones", 1.0), ("zeros", 0.0))]
    scheduler.run(home, ids)
    return home, ids, tmp_path


def submissions(settings) -> dict[int, Submission]:
    with session_scope(settings.database_url) as session:
        rows = {s.id: s for s in session.scalars(select(Submission))}
        for s in rows.values():
            _ = [(j.case.name, j.attempts, j.started_at, [(m.metric, m.value) for m in j.metrics]) for j in s.jobs]
        return rows


def leaderboard(settings) -> dict[int, LeaderboardEntry]:
    with session_scope(settings.database_url) as session:
        return {e.submission_id: e for e in session.scalars(select(LeaderboardEntry))}


@pytest.mark.podman
def test_the_evaluation_container_scores_a_phase_with_grand_challenges_contract(scored_phase):
    settings, (ones, zeros), _ = scored_phase
    subs = submissions(settings)
    truth = gc_phase.TRUTH  # case0: 1, case1: 0, case2: 1
    for sid, value in ((ones, 1.0), (zeros, 0.0)):
        sub = subs[sid]
        assert sub.state == "succeeded" and sub.evaluation_state == "succeeded", sub.evaluation_detail
        assert set(sub.metrics_json["predictions_keys"]) >= GC_JOB_KEYS and sub.metrics_json["n"] == 3
        errors = {c: abs(value - truth[f"{c}.mha"]) for c in gc_phase.CASES}  # by hand
        assert sub.dataset_metrics["Mean abs error"] == pytest.approx(sum(errors.values()) / 3)
        assert sub.dataset_metrics["Max abs error"] == 1.0
        # per-case rows from metrics.json, named by job pk: the case drill-down has them
        for job in sub.jobs:
            assert {m.metric: m.value for m in job.metrics} == {"abs_error": errors[job.case.name],
                                                                "probability": value}
    board = leaderboard(settings)
    assert (board[ones].rank, board[zeros].rank) == (1, 2)  # lower is better (score_default_sort: asc)
    assert board[ones].score == pytest.approx(1 / 3)
    assert board[ones].columns["Mean abs error"] == pytest.approx(1 / 3)
    assert board[ones].columns["Max abs error"] == 1.0
    # the ground truth lives with the references, by digest; algorithms never saw it
    stored = list((settings.home / "store" / "references" / "gcprobe" / "ground-truth").iterdir())
    assert len(stored) == 1 and stored[0].name.endswith(".tar.gz")
    url = scheduler.predictions_url(settings, "gcprobe", "test", ones)
    from medarena.platform import casestore

    assert casestore.read_case(url, "case0")["report"]["ground_truth_visible"] is False


@pytest.mark.podman
def test_a_declared_recipe_ranks_the_per_case_rows_with_a_bootstrap(scored_phase):
    settings, (ones, zeros), folder = scored_phase
    path = folder / "challenge.yaml"
    data = yaml.safe_load(path.read_text())
    data["ranking"] = {"method": "rank-then-aggregate", "bootstrap": 50,
                       "metrics": [{"metric": "abs_error", "higher_is_better": False}]}
    path.write_text(yaml.safe_dump(data))
    organizer.create_challenge(settings, path)  # a new recipe re-ranks from stored metrics
    board = leaderboard(settings)
    # per case, ones ranks 1 on case0 and case2 and 2 on case1: mean rank 4/3 < zeros' 5/3
    assert (board[ones].rank, board[zeros].rank) == (1, 2)
    assert board[ones].score == pytest.approx(4 / 3)
    assert board[ones].rank_low is not None and board[ones].rank_high is not None


def rewrite(folder, **changes):
    path = folder / "challenge.yaml"
    data = yaml.safe_load(path.read_text())
    mode = changes.pop("mode", None)
    if mode:
        (folder / "ground-truth" / "mode.txt").write_text(mode)
    data["evaluation"]["container"].update(changes)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.podman
def test_evaluation_failures_are_the_organizers_and_leave_other_submissions_alone(scored_phase):
    settings, (ones, zeros), folder = scored_phase
    before = submissions(settings)
    cases = [
        ({"mode": "exit"}, "the evaluation container failed: exited with code 1: the evaluation broke on purpose"),
        ({"mode": "nometrics"}, "the evaluation container wrote no /output/metrics.json"),
        ({"mode": "notjson"}, "/output/metrics.json is not valid JSON (Expecting property name"),
        ({"mode": "nan"}, "/output/metrics.json holds NaN, which is not a JSON number"),
        ({"mode": "deep"}, "/output/metrics.json is nested deeper than 32 levels"),
        ({"mode": "ok", "score_jsonpath": "aggregates.abs_error.median"},
         "score_jsonpath 'aggregates.abs_error.median' does not resolve in /output/metrics.json"),
        ({"mode": "ok", "score_jsonpath": "n", "extra_results_columns": [{"title": "Cases", "path": "cases"}]},
         "extra_results_columns.0.path 'cases' in /output/metrics.json is [{"),
    ]
    for changes, problem in cases:
        organizer.create_challenge(settings, rewrite(folder, **changes))
        result = runner.invoke(app, ["reevaluate", str(zeros)])
        assert result.exit_code == 0, result.output
        sub = submissions(settings)[zeros]
        assert sub.evaluation_state == "failed"
        assert sub.evaluation_detail.startswith(f"phase gcprobe/test, submission {zeros}: {problem}"), \
            sub.evaluation_detail
        assert sub.metrics_json is None and all(not j.metrics for j in sub.jobs)  # nothing half-written
        board = leaderboard(settings)
        assert zeros not in board
        # the other submission keeps its evaluation; its columns follow the definition, so a path that
        # its metrics.json lacks takes it off the leaderboard too, until the path is fixed
        other = submissions(settings)[ones]
        assert other.evaluation_state == "succeeded" and other.metrics_json == before[ones].metrics_json
        assert (ones in board) == ("score_jsonpath" not in changes and "extra_results_columns" not in changes)
        if ones in board:
            assert board[ones].rank == 1 and board[ones].columns["Mean abs error"] == pytest.approx(1 / 3)
        # only the evaluation container ran again: no algorithm job was rerun
        assert [(j.attempts, j.started_at) for j in sub.jobs] == [(j.attempts, j.started_at)
                                                                 for j in before[zeros].jobs]
    assert "the evaluation broke on purpose" not in sub.evaluation_log  # the last run's log, not an old one
    # never charged: the participant may submit as if it had not happened
    with session_scope(settings.database_url) as session:
        from medarena.platform.submissions import create_submission

        for _ in range(4):  # the limit is 5; 'ones' counts, the failed evaluation does not
            create_submission(session, "gcprobe", "test", "zeros", gc_phase.PROBE, "sha256:" + "0" * 64)
    # and a fixed evaluation scores it again
    organizer.create_challenge(settings, rewrite(folder, mode="ok", score_jsonpath="aggregates.abs_error.mean",
                                                 extra_results_columns=[]))
    assert runner.invoke(app, ["reevaluate", str(zeros)]).exit_code == 0
    assert submissions(settings)[zeros].evaluation_state == "succeeded"
    board = leaderboard(settings)
    assert board[zeros].columns["Mean abs error"] == pytest.approx(2 / 3)
    assert (board[ones].rank, board[zeros].rank) == (1, 2)


@pytest.mark.podman
def test_the_organizer_sees_the_evaluation_log(scored_phase):
    settings, (_, zeros), folder = scored_phase
    organizer.create_challenge(settings, rewrite(folder, mode="exit"))
    scheduler.reevaluate(settings, [zeros])
    sub = submissions(settings)[zeros]
    assert "the evaluation broke on purpose" in sub.evaluation_log and "evaluation mode exit" in sub.evaluation_log
    result = runner.invoke(app, ["results", str(zeros), "--logs"])
    shown = " ".join(result.output.split())
    assert "evaluation failed (the organizer's to fix)" in shown and "the evaluation broke on purpose" in shown


def bad_tarball(path, name, kind=tarfile.REGTYPE, link=""):
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, link
        archive.addfile(info, io.BytesIO(b""))
    return path


@pytest.mark.podman
@pytest.mark.parametrize(("name", "kind", "link", "problem"), [
    ("truth.json", tarfile.SYMTYPE, "/etc/passwd", "entry 'truth.json' is a link"),
    ("../truth.json", tarfile.REGTYPE, "", "entry '../truth.json' has a '..' in its path"),
])
def test_a_ground_truth_tarball_with_links_or_escaping_paths_creates_nothing(
        example_images, home, tmp_path, name, kind, link, problem):
    gc_phase.build_probe(example_images)
    path = gc_phase.definition(tmp_path)
    tarball = bad_tarball(tmp_path / "truth.tar.gz", name, kind, link)
    data = yaml.safe_load(path.read_text())
    data["evaluation"]["container"]["ground_truth"] = str(tarball)
    path.write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["challenge", "create", str(path)])
    assert result.exit_code == 1
    line = " ".join(result.output.split())
    assert f"{path}: evaluation.container.ground_truth: ground truth {tarball}: {problem}" in line
    with session_scope(home.database_url) as session:
        assert session.scalar(select(Challenge)) is None
    assert not (home.home / "store" / "references").exists()
    with pytest.raises(DefinitionError):
        organizer.create_challenge(home, path)


@pytest.mark.podman
def test_a_platform_fault_during_the_evaluation_is_recorded_and_never_stops_the_scheduler(
        example_images, home, tmp_path, monkeypatch):
    gc_phase.build_probe(example_images)
    organizer.create_challenge(home, gc_phase.definition(tmp_path))
    organizer.ingest_phase(home, "gcprobe", "test", gc_phase.write_cases(tmp_path / "source"))
    sid, _ = organizer.submit(home, "gcprobe", "test", "ann", gc_phase.PROBE)
    with session_scope(home.database_url) as session:  # as if every case had run
        submission = session.get(Submission, sid)
        scheduler.expand(session, submission)
        for job in submission.jobs:
            job.state = "succeeded"

    def broken(run):
        raise OSError("the store went away")

    monkeypatch.setattr("medarena.platform.evaluation_container.run_evaluation", broken)
    notices = []
    assert scheduler.run(home, [sid], on_notice=notices.append) == [sid]
    sub = submissions(home)[sid]
    assert sub.evaluation_state == "failed"
    assert sub.evaluation_detail == (f"phase gcprobe/test, submission {sid}: the platform failed while running the "
                                     f"evaluation container (OSError: the store went away); `medarena reevaluate "
                                     f"{sid}` runs it again")
    assert "OSError: the store went away" in sub.evaluation_log and notices
