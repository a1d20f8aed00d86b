"""Compute accounting: what a real container used (its own cgroup), the figures the scheduler
records per case, totals per submission and phase (checked against sums by hand), and the
phase budgets that refuse a submission once spent."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from medarena.cli import app
from medarena.platform import compute, organizer, scheduler, usage
from medarena.platform.challenges import DefinitionError, load_definition
from medarena.platform.database import MIGRATIONS, Case, Challenge, Job, Phase, Submission, session_scope, upgrade
from medarena.platform.runner import Limits, podman_env, run_container
from medarena.platform.submissions import create_submission
from tests.platform.challenge_data import definition, write_definition, write_source
from tests.platform.old_database import database_at

runner = CliRunner()
MiB = 2**20
NOW = dt.datetime(2026, 6, 1, 12, 0)
# Touches 100 MiB, burns 1 s of its own CPU time, then reports what the kernel says it used.
# (Not ru_maxrss: it counts shared pages of python's files that another cgroup may have paid for.)
BURNER = """\
import json, resource, time
block = bytearray(100 * 2**20)
for i in range(0, len(block), 4096):
    block[i] = 1
start = time.process_time()
while time.process_time() - start < 1.0:
    pass
own = resource.getrusage(resource.RUSAGE_SELF)
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
anonymous = int(status["RssAnon"].split()[0]) * 1024  # charged to its cgroup, unlike shared file pages
print(json.dumps({"cpu": own.ru_utime + own.ru_stime, "anonymous": anonymous}))
"""


@pytest.fixture(scope="module")
def burner(example_images, tmp_path_factory) -> str:
    context = tmp_path_factory.mktemp("burner")
    (context / "burn.py").write_text(BURNER)
    (context / "Containerfile").write_text("FROM localhost/medarena-base:latest\nCOPY burn.py /opt/burn.py\n"
                                           "USER 1000:1000\nENTRYPOINT [\"python3\", \"/opt/burn.py\"]\n")
    name = "localhost/medarena-test-burner:latest"
    built = subprocess.run(["podman", "build", "-q", "-t", name, str(context)], capture_output=True, text=True,
                           env=podman_env(), timeout=300)
    assert built.returncode == 0, built.stderr
    return name


def _cgroup_folders(name: str) -> list[Path]:
    return [p for p in Path("/sys/fs/cgroup").glob(f"*/{usage.PARENT}/{name}")]


@pytest.mark.podman
@pytest.mark.skipif(os.geteuid() != 0, reason="the per-case cgroup needs root podman")
def test_a_container_s_cpu_and_peak_memory_come_from_its_own_cgroup(burner, tmp_path):
    (tmp_path / "in").mkdir()
    limits = Limits(wall_time_seconds=60, memory_mb=512, cpus=1)
    result = run_container(burner, tmp_path / "in", tmp_path / "out", limits, name="medarena-test-burner-run")
    assert result.ok, result.stderr_tail
    own = json.loads(result.stdout_tail)  # what the kernel told the process itself
    assert own["cpu"] >= 1.0 and own["anonymous"] >= 100 * MiB
    # the cgroup holds the process and what started it: at least the process's own figures ...
    assert result.cpu_seconds >= own["cpu"] - 0.02
    assert result.peak_memory_bytes >= own["anonymous"]
    # ... and no more than one CPU over the run's wall time, and the memory limit
    assert result.cpu_seconds <= result.runtime_seconds * limits.cpus + 0.05
    assert result.peak_memory_bytes <= limits.memory_mb * MiB
    assert "--cgroup-parent=/medarena/medarena-test-burner-run" in result.command
    deadline = time.monotonic() + 5  # removed after the read, beside the case's next steps
    while _cgroup_folders("medarena-test-burner-run") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _cgroup_folders("medarena-test-burner-run") == []


@pytest.mark.podman
def test_where_no_cgroup_can_be_made_the_run_goes_on_unmeasured(burner, tmp_path, monkeypatch):
    monkeypatch.setattr(usage, "cgroup_parent_supported", lambda _env: False)  # rootless, systemd manager
    (tmp_path / "in").mkdir()
    result = run_container(burner, tmp_path / "in", tmp_path / "out", Limits(wall_time_seconds=60, memory_mb=512))
    assert result.ok and result.runtime_seconds > 1.0
    assert (result.cpu_seconds, result.peak_memory_bytes) == (None, None)
    assert not any(arg.startswith("--cgroup-parent") for arg in result.command)


@pytest.mark.podman
def test_the_scheduler_records_each_case_s_figures_and_the_cli_shows_them(home, tmp_path, example_images,
                                                                            ray_cluster):
    organizer.create_challenge(home, write_definition(tmp_path / "toy.yaml", limits={
        "wall_time_seconds": 60, "memory_mb": 256, "cpus": 1}))
    organizer.ingest_phase(home, "toy", "test", write_source(tmp_path / "src", n=2))
    sid, _ = organizer.submit(home, "toy", "test", "ann", "localhost/medarena-example-threshold:latest")
    assert scheduler.run(home, [sid]) == [sid]
    with session_scope(home.database_url) as session:
        jobs = session.get(Submission, sid).jobs
        assert {j.state for j in jobs} == {"succeeded"}
        for job in jobs:
            if os.geteuid() == 0:
                assert 0.01 < job.cpu_seconds <= job.runtime_seconds + 0.05
                assert 1 * MiB < job.peak_memory_bytes <= 256 * MiB
            assert job.gpu_seconds == 0.0  # a CPU phase: Ray assigned no GPU
        wall = sum(j.runtime_seconds for j in jobs)
        cpu = sum(j.cpu_seconds or 0 for j in jobs)
    env = {"MEDARENA_HOME": str(home.home), "COLUMNS": "250"}
    shown = runner.invoke(app, ["results", str(sid)], env=env)
    assert shown.exit_code == 0, shown.output
    assert f"compute: 2 case(s) ran, wall {wall:.1f} s, CPU {cpu:.1f} s, GPU 0.0 s" in shown.output
    totals = runner.invoke(app, ["compute", "-c", "toy", "-p", "test"], env=env)
    assert totals.exit_code == 0, totals.output
    assert "ann" in totals.output and f"{cpu:.1f}" in totals.output and "compute budget: none" in totals.output


def test_gpu_seconds_are_the_wall_time_times_the_gpus_ray_assigned(ray_cluster, monkeypatch, tmp_path):
    from medarena.platform import casejob
    from medarena.platform.runner import RunResult

    @ray_cluster.remote(num_gpus=2)
    def assigned():
        return tuple(str(int(g)) for g in ray_cluster.get_gpu_ids())

    gpu_ids = ray_cluster.get(assigned.remote())
    assert sorted(gpu_ids) == ["0", "1"]
    seen = []

    def fake_run(image, input_dir, output_dir, limits, *, gpu_ids, **kwargs):  # no GPU on this machine
        seen.append(gpu_ids)
        return RunResult("exit_code", 1, 12.5, "", "", [], "exited with code 1", 3.0, 5 * MiB)

    from medarena.platform import runner

    monkeypatch.setattr(runner, "run_container", fake_run)  # what the podman backend calls
    monkeypatch.setattr(casejob.casestore, "read_case", lambda *a, **k: {"scan": _tiny_image()})
    job = casejob.CaseJob(case="case0", image="img", definition=definition(), inputs_url="x", references_url="y",
                          predictions_url=None, scratch=str(tmp_path))
    outcome = casejob.run_algorithm(job, gpu_ids)
    assert seen == [gpu_ids]
    assert (outcome.runtime_seconds, outcome.cpu_seconds, outcome.peak_memory_bytes, outcome.gpu_seconds) == (
        12.5, 3.0, 5 * MiB, 25.0)


def _tiny_image():
    import numpy as np

    from medarena.evaluators.image import Image

    return Image(array=np.zeros((2, 3, 4), np.int16), spacing=(1.0, 1.0, 1.0))


# --- totals and budgets on hand-made figures --------------------------------------------------------


def _phases(home, phases: list[dict], jobs: list[tuple[str, str, str, tuple]]) -> dict[str, int]:
    """A toy challenge with ``phases`` and, per (phase, participant, job state, (wall, cpu, peak,
    gpu)), one submission of one job; returns the participants' submission ids (the last one each)."""
    ids = {}
    with session_scope(home.database_url) as session:
        challenge = Challenge(slug="toy", title="Toy", definition=definition(phases=phases))
        rows = {p["slug"]: Phase(slug=p["slug"], challenge=challenge) for p in phases}
        cases = {slug: Case(phase=row, name="case0", checksum="0") for slug, row in rows.items()}
        for slug, who, state, (wall, cpu, peak, gpu) in jobs:
            submission = Submission(phase=rows[slug], participant=who, image="i", image_digest="d",
                                    state="succeeded", created_at=NOW - dt.timedelta(days=30))
            submission.jobs.append(Job(case=cases[slug], state=state, runtime_seconds=wall, cpu_seconds=cpu,
                                       peak_memory_bytes=peak, gpu_seconds=gpu))
            session.add(submission)
            session.flush()
            ids[who] = submission.id
    return ids


OPEN = {"opens": "2020-01-01T00:00:00Z", "submission_limit": 0}


def test_totals_are_the_sums_of_the_cases_that_ran(home):
    ids = _phases(home, [{"slug": "test", **OPEN}], [
        ("test", "ann", "succeeded", (10.0, 7.5, 100 * MiB, 10.0)),
        ("test", "ann", "failed", (4.0, 2.25, 300 * MiB, 0.0)),
        ("test", "bob", "succeeded", (3.0, None, None, 0.0)),  # ran where nothing could be measured
        ("test", "bob", "queued", (99.0, 99.0, 900 * MiB, 99.0)),  # a platform fault: run again, never charged
        ("test", "bob", "running", (50.0, 50.0, 900 * MiB, 50.0)),  # the same, while it runs again
    ])
    with session_scope(home.database_url) as session:
        assert compute.submission_totals(session, [ids["ann"]])[ids["ann"]] == compute.Totals(
            cases=1, measured_cases=1, wall_seconds=4.0, cpu_seconds=2.25, gpu_seconds=0.0,
            peak_memory_bytes=300 * MiB)
        everyone, per = compute.phase_totals(session, session.scalar(sa.select(Phase.id)))
    assert per["ann"] == compute.Totals(2, 2, 14.0, 9.75, 10.0, 300 * MiB)
    assert per["bob"] == compute.Totals(1, 0, 3.0, 0.0, 0.0, None)
    assert everyone == compute.Totals(3, 2, 17.0, 9.75, 10.0, 300 * MiB)


def _submit(home, who: str, phase: str = "test") -> int:
    with session_scope(home.database_url) as session:
        return create_submission(session, "toy", phase, who, "i", "d", now=NOW).id


def _count(home) -> int:
    with session_scope(home.database_url) as session:
        return session.scalar(sa.select(sa.func.count(Submission.id)))


def test_a_spent_participant_budget_refuses_the_submission_and_writes_nothing(home):
    budget = {"cpu_hours_per_participant": 1, "gpu_hours_per_participant": 0.5}
    _phases(home, [{"slug": "test", **OPEN, "compute_budget": budget}], [
        ("test", "ann", "succeeded", (4000.0, 2000.0, MiB, 0.0)),
        ("test", "ann", "failed", (2000.0, 1600.0, MiB, 0.0)),  # 3600 s in all: the budget
        ("test", "bob", "succeeded", (4000.0, 3599.0, MiB, 1700.0)),
        ("test", "bob", "queued", (9000.0, 9000.0, MiB, 9000.0)),  # the platform's fault: not counted
    ])
    before = _count(home)
    with pytest.raises(compute.BudgetSpent) as refused:
        _submit(home, "ann")
    assert str(refused.value) == ("phase toy/test: participant 'ann' has used 1 hours of the 1 CPU hours each "
                                  "participant may use (compute_budget.cpu_hours_per_participant)")
    assert refused.value.http_status == 403
    assert _count(home) == before
    _submit(home, "bob")  # 3599 s of CPU and 1700 s of GPU: under both budgets
    _submit(home, "cyd")  # nothing used


def test_a_gpu_budget_and_a_challenge_budget_count_every_phase(home):
    _phases(home, [{"slug": "test", **OPEN, "compute_budget": {"gpu_hours_per_participant": 1}},
                   {"slug": "final", **OPEN, "compute_budget": {"cpu_hours_per_challenge": 2}}], [
        ("test", "ann", "succeeded", (3600.0, 10.0, MiB, 3600.0)),
        ("test", "bob", "succeeded", (3600.0, 5000.0, MiB, 0.0)),
        ("final", "cyd", "succeeded", (3600.0, 2200.0, MiB, 0.0)),
    ])  # CPU of the challenge: 10 + 5000 + 2200 = 7210 s = 2.003 h
    with pytest.raises(compute.BudgetSpent, match=r"participant 'ann' has used 1 hours of the 1 GPU hours .*"
                                                  r"gpu_hours_per_participant"):
        _submit(home, "ann")
    with pytest.raises(compute.BudgetSpent, match=r"^phase toy/final: challenge toy has used 2\.003 hours of its "
                                                  r"2 CPU hours \(compute_budget.cpu_hours_per_challenge\)$"):
        _submit(home, "dan", "final")
    _submit(home, "dan", "test")  # the challenge budget is the final phase's: test has none


def test_a_budget_must_be_a_positive_number_of_hours(tmp_path):
    path = write_definition(tmp_path / "bad.yaml", phases=[{"slug": "test", "compute_budget": {
        "cpu_hours_per_participant": -1}}])
    with pytest.raises(DefinitionError, match=r"bad.yaml: phases.0.compute_budget.cpu_hours_per_participant: "):
        load_definition(path)
    path = write_definition(tmp_path / "typo.yaml", phases=[{"slug": "test", "compute_budget": {"cpu_hours": 1}}])
    with pytest.raises(DefinitionError, match=r"typo.yaml: phases.0.compute_budget.cpu_hours: "):
        load_definition(path)


@pytest.mark.podman
def test_the_command_line_refuses_a_submission_over_budget_in_one_line(home, tmp_path, example_images):
    organizer.create_challenge(home, write_definition(tmp_path / "toy.yaml", phases=[
        {"slug": "test", **OPEN, "compute_budget": {"cpu_hours_per_participant": 0.001}}]))
    organizer.ingest_phase(home, "toy", "test", write_source(tmp_path / "src", n=1))
    with session_scope(home.database_url) as session:
        phase = session.scalar(sa.select(Phase))
        submission = Submission(phase=phase, participant="ann", image="i", image_digest="d", state="succeeded")
        submission.jobs.append(Job(case=phase.cases[0], state="succeeded", runtime_seconds=5.0, cpu_seconds=3.6))
        session.add(submission)
    result = runner.invoke(app, ["submit", "localhost/medarena-example-noop:latest", "-c", "toy", "-p", "test",
                                 "-u", "ann"], env={"MEDARENA_HOME": str(home.home), "COLUMNS": "300"})
    assert result.exit_code == 1
    assert result.output.strip() == ("error: phase toy/test: participant 'ann' has used 0.001 hours of the 0.001 "
                                     "CPU hours each participant may use (compute_budget.cpu_hours_per_participant)")
    assert _count(home) == 1


def test_the_migration_adds_empty_figures_to_existing_jobs(tmp_path):
    url = f"sqlite:///{tmp_path}/old.db"
    engine = database_at(url, "0005", runtime_seconds=2.5)
    engine.dispose()
    upgrade(url)
    with session_scope(url) as session:
        job = session.get(Job, 1)
        assert (job.runtime_seconds, job.cpu_seconds, job.peak_memory_bytes, job.gpu_seconds) == (2.5, None, None, None)
        assert compute.submission_totals(session, [1])[1] == compute.Totals(1, 0, 2.5, 0.0, 0.0, None)
        job.peak_memory_bytes = 6 * 2**30  # over 32 bits
    with session_scope(url) as session:
        assert session.get(Job, 1).peak_memory_bytes == 6 * 2**30
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    command.downgrade(config, "0005")  # and back down
    with sa.create_engine(url).connect() as db:
        assert "cpu_seconds" not in {r[1] for r in db.exec_driver_sql("PRAGMA table_info(jobs)")}
