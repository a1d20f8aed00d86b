"""The scheduler end to end: real podman containers on a real local Ray, results in SQLite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
import zarr
from sqlalchemy import select
from typer.testing import CliRunner

from medarena.cli import app
from medarena.platform import organizer, scheduler
from medarena.platform.database import Job, LeaderboardEntry, MetricValue, Submission, session_scope
from tests.platform.challenge_data import cube_case, write_definition, write_source

pytestmark = pytest.mark.podman
runner = CliRunner()
IMAGE = "localhost/medarena-example-{}:latest"


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def _jobs(settings, submission_id) -> dict[str, Job]:
    with session_scope(settings.database_url) as session:
        sub = session.get(Submission, submission_id)
        return {job.case.name: job for job in sub.jobs}


@pytest.fixture
def toy(home, tmp_path, example_images):
    organizer.create_challenge(home, write_definition(tmp_path / "toy.yaml"))
    organizer.ingest_phase(home, "toy", "test", write_source(tmp_path / "src", n=6))
    return home


def test_submissions_run_to_states_metrics_and_leaderboard(toy, ray_cluster):
    good, _ = organizer.submit(toy, "toy", "test", "ann", IMAGE.format("threshold"))
    bad, _ = organizer.submit(toy, "toy", "test", "mal", IMAGE.format("misbehaving"))
    empty, _ = organizer.submit(toy, "toy", "test", "nob", IMAGE.format("noop"))
    progress = []
    finished = scheduler.run(toy, on_progress=lambda d, t, o: progress.append((d, t)))
    assert sorted(finished) == [good, bad, empty]
    assert progress[0] == (0, 18) and progress[-1] == (18, 18)

    jobs = _jobs(toy, good)
    assert {j.state for j in jobs.values()} == {"succeeded"}
    predictions = zarr.open_group(scheduler.predictions_url(toy, "toy", "test", good), mode="r")
    with session_scope(toy.database_url) as session:
        for name, job in jobs.items():
            _, mask = cube_case(int(name[-1]))
            predicted = predictions[name]["segmentation"][...]
            stored = session.scalar(select(MetricValue.value).where(
                MetricValue.job_id == job.id, MetricValue.metric == "dice", MetricValue.label == "fg"))
            assert stored == pytest.approx(_dice(mask == 1, predicted == 1), abs=1e-12)
            assert stored > 0.9

    reasons = {j.reason for j in _jobs(toy, bad).values() if j.state == "failed"}
    assert reasons <= {"timeout", "invalid_output", "exit_code", "missing_output", "out_of_memory"}
    assert len(reasons) >= 3, reasons
    for job in _jobs(toy, bad).values():
        if job.reason == "exit_code":
            assert "exited with code 3" in job.detail and "on purpose" in job.stderr_tail
        if job.reason == "timeout":
            assert "wall-time limit of 4 s" in job.detail
            assert job.runtime_seconds < 15
    leftover = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True)
    assert f"medarena-{scheduler.namespace(toy)}-" not in leftover.stdout

    with session_scope(toy.database_url) as session:
        board = session.scalars(select(LeaderboardEntry).order_by(LeaderboardEntry.rank)).all()
        assert [e.submission_id for e in board][0] == good
        assert board[0].rank == 1 and board[0].columns["cases succeeded"] == "6/6"
        assert session.get(Submission, empty).state == "succeeded"

    status = runner.invoke(app, ["results", str(bad), "--logs"],
                           env={"MEDARENA_HOME": str(toy.home), "COLUMNS": "250"})
    assert status.exit_code == 0 and "exit_code" in status.output
    assert "misbehaving: this case gets 'exit_code'" in status.output  # the stdout tail of that case

    # a second run finds nothing to do and runs no container again
    started = {n: j.started_at for n, j in _jobs(toy, good).items()}
    assert scheduler.run(toy) == []
    assert {n: j.started_at for n, j in _jobs(toy, good).items()} == started


def test_reevaluation_reuses_predictions(toy, ray_cluster, tmp_path):
    sid, _ = organizer.submit(toy, "toy", "test", "ann", IMAGE.format("threshold"))
    scheduler.run(toy, [sid])
    before = {n: (j.started_at, j.attempts) for n, j in _jobs(toy, sid).items()}
    changed = yaml.safe_load((tmp_path / "toy.yaml").read_text())
    changed["evaluation"]["settings"]["metrics"] = ["dice", "hd95", "assd"]
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(changed))
    organizer.create_challenge(toy, tmp_path / "toy.yaml")
    scheduler.reevaluate(toy, [sid])
    after = _jobs(toy, sid)
    assert {n: (j.started_at, j.attempts) for n, j in after.items()} == before  # no container ran
    with session_scope(toy.database_url) as session:
        metrics = set(session.scalars(select(MetricValue.metric).join(Job).where(Job.submission_id == sid)))
    assert metrics == {"dice", "hd95", "assd"}


def test_killed_scheduler_resumes_without_rerunning_finished_cases(toy, ray_cluster):
    sid, _ = organizer.submit(toy, "toy", "test", "ann", IMAGE.format("threshold"))
    env = {**os.environ, "MEDARENA_HOME": str(toy.home)}
    process = subprocess.Popen([sys.executable, "-m", "medarena.cli", "run"], env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            states = [j.state for j in _jobs(toy, sid).values()]
            if states.count("succeeded") >= 2:
                break
            time.sleep(0.3)
        else:
            pytest.fail(f"the scheduler did not finish two cases in time: {states}")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    done_before = {n: (j.started_at, j.attempts) for n, j in _jobs(toy, sid).items() if j.state == "succeeded"}
    assert 2 <= len(done_before) < 6, "the kill came too late to test a resume"

    assert scheduler.run(toy) == [sid]
    jobs = _jobs(toy, sid)
    assert {j.state for j in jobs.values()} == {"succeeded"}
    for name, (started, attempts) in done_before.items():
        assert (jobs[name].started_at, jobs[name].attempts) == (started, attempts)
    with session_scope(toy.database_url) as session:
        assert session.query(Job).filter_by(submission_id=sid).count() == 6  # no duplicates


def test_gpu_tasks_get_the_cdi_device_of_the_gpu_ray_assigned(ray_cluster, tmp_path):
    from medarena.platform.runner import Limits, container_command

    @ray_cluster.remote(num_gpus=1)
    def command_on_worker():
        time.sleep(0.5)  # both tasks hold their GPU at once
        ids = tuple(str(int(g)) for g in ray_cluster.get_gpu_ids())
        return ids, container_command("sha256:abc", tmp_path, tmp_path, Limits(gpus=1), name="n", gpu_ids=ids)

    results = ray_cluster.get([command_on_worker.remote(), command_on_worker.remote()])
    assigned = sorted(ids[0] for ids, _ in results)
    assert assigned == ["0", "1"]
    for (gpu,), command in results:
        assert command[command.index("--device") + 1] == f"nvidia.com/gpu={gpu}"
        assert command.count("--device") == 1


def test_try_runs_locally_and_writes_nothing(toy):
    result = runner.invoke(app, ["try", IMAGE.format("threshold"), "-c", "toy", "-p", "test",
                                 "--case", "case0", "--case", "case1"],
                           env={"MEDARENA_HOME": str(toy.home), "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "case0" in result.output and "case1" in result.output and "case2" not in result.output
    assert result.output.count("succeeded") == 2
    with session_scope(toy.database_url) as session:
        assert session.query(Submission).count() == 0 and session.query(Job).count() == 0
    failing = runner.invoke(app, ["try", IMAGE.format("misbehaving"), "-c", "toy", "-p", "test"],
                            env={"MEDARENA_HOME": str(toy.home), "COLUMNS": "200"})
    assert failing.exit_code == 1
    assert "failed" in failing.output


def test_cancelled_submission_runs_nothing_and_frees_its_slot(toy, ray_cluster):
    sid, _ = organizer.submit(toy, "toy", "test", "ann", IMAGE.format("threshold"))
    env = {"MEDARENA_HOME": str(toy.home)}
    result = runner.invoke(app, ["cancel", str(sid)], env=env)
    assert result.exit_code == 0 and "cancelled submission 1 (6 cases not run)" in result.output
    assert scheduler.run(toy) == []
    assert {j.state for j in _jobs(toy, sid).values()} == {"cancelled"}
    assert all(j.started_at is None for j in _jobs(toy, sid).values())
    again = runner.invoke(app, ["cancel", str(sid)], env=env)
    assert again.exit_code == 1 and "has already ended (cancelled)" in again.output
    for _ in range(3):  # the limit of 3 is not spent by the cancelled one
        organizer.submit(toy, "toy", "test", "ann", IMAGE.format("threshold"))


def test_large_volumes_are_scored_from_zarr_chunks_with_the_same_values(toy, ray_cluster, monkeypatch):
    from medarena.platform import casejob

    sid, _ = organizer.submit(toy, "toy", "test", "ann", IMAGE.format("threshold"))
    scheduler.run(toy, [sid])
    in_memory = {n: {m.metric: m.value for m in j.metrics} for n, j in _metric_jobs(toy, sid).items()}
    called = []
    real = casejob.casestore.read_case

    def spy(*args, **kwargs):
        values = real(*args, **kwargs)
        called.extend(type(v.array).__module__ for v in values.values() if hasattr(v, "array"))
        return values

    monkeypatch.setattr(casejob, "LAZY_VOXELS", 1000)  # every toy case counts as large
    monkeypatch.setattr(casejob.casestore, "read_case", spy)
    for name in in_memory:
        job = casejob.CaseJob(case=name, image="", definition=_definition(toy),
                              inputs_url=scheduler.inputs_url(toy, "toy", "test"),
                              references_url=scheduler.references_url(toy, "toy", "test"),
                              predictions_url=scheduler.predictions_url(toy, "toy", "test", sid), scratch="")
        outcome = casejob.evaluate_case(job)
        assert outcome.state == "succeeded", outcome.detail
        row = outcome.rows[0]
        assert {m: row[m] for m in in_memory[name]} == pytest.approx(in_memory[name], abs=1e-9)
    assert called and all(module.startswith("zarr") for module in called)


def _metric_jobs(settings, submission_id):
    with session_scope(settings.database_url) as session:
        sub = session.get(Submission, submission_id)
        return {job.case.name: job for job in sub.jobs if job.metrics and [m.value for m in job.metrics]}


def _definition(settings):
    from medarena.platform.database import Challenge

    with session_scope(settings.database_url) as session:
        return session.scalar(select(Challenge)).definition


def test_a_phase_asking_for_more_gpus_than_the_cluster_has_stays_queued(home, tmp_path, example_images, ray_cluster):
    organizer.create_challenge(home, write_definition(tmp_path / "gpu.yaml", limits={"gpus": 3, "memory_mb": 256}))
    organizer.ingest_phase(home, "toy", "test", write_source(tmp_path / "src", n=2))
    sid, _ = organizer.submit(home, "toy", "test", "ann", IMAGE.format("threshold"))
    messages = []
    assert scheduler.run(home, [sid], on_notice=messages.append) == []  # not finished
    assert {j.state for j in _jobs(home, sid).values()} == {"queued"}  # not "running" forever
    assert messages == ["2 case(s) stay queued: they need 1 CPU and 3 GPU each, more than this Ray cluster "
                        "has (2 CPU, 2 GPU in all); they run once such nodes join"]
