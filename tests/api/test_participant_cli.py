"""The participant's command line against a running server and worker, end to end, with a real
podman image: login, upload in parts (and resuming one), submit, follow, status, results."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from medarena.platform import organizer
from medarena.platform.account_tables import Upload, User
from medarena.platform.database import Job, Submission, session_scope
from medarena.platform.submissions import find_phase
from medarena.services import accounts
from tests.api.conftest import REPO, settings_for, start_server, stop_server
from tests.platform.challenge_data import write_definition, write_source

IMAGE = "localhost/medarena-example-noop:latest"


@pytest.fixture(scope="module")
def service(tmp_path_factory, example_images):
    home = tmp_path_factory.mktemp("cli-home")
    settings = settings_for(home)
    organizer.create_challenge(settings, write_definition(home / "toy.yaml", phases=[
        {"slug": "test", "opens": "2020-01-01T00:00:00Z", "submission_limit": 10, "case_results_public": True},
        {"slug": "budgeted", "opens": "2020-01-01T00:00:00Z", "submission_limit": 10,
         "compute_budget": {"cpu_hours_per_participant": 0.001}}],
        limits={"wall_time_seconds": 120, "memory_mb": 256, "cpus": 1}))
    organizer.ingest_phase(settings, "toy", "test", write_source(home / "source", n=2))
    organizer.ingest_phase(settings, "toy", "budgeted", write_source(home / "source", n=2))
    accounts.add_user(settings, "alice", "alice-password")
    accounts.grant_role(settings, "alice", "toy", "participant")
    server = start_server(settings, home / "server.log")
    worker_log = (home / "worker.log").open("w")
    worker = subprocess.Popen([sys.executable, "-m", "medarena.cli", "worker", "--poll", "1"], env=server.env,
                              stdout=worker_log, stderr=subprocess.STDOUT, cwd=str(REPO))
    config = home / "config"
    yield server, config
    worker.terminate()
    worker.wait(60)
    stop_server(server)


def medarena(config, *args, stdin: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, XDG_CONFIG_HOME=str(config), XDG_CACHE_HOME=str(config.parent / "cache"),
               PYTHONPATH=str(REPO), COLUMNS="200")
    env.pop("MEDARENA_URL", None)
    env.pop("MEDARENA_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "medarena.cli", *args], input=stdin, capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=str(REPO))


@pytest.mark.podman
def test_login_submit_follow_results(service):
    server, config = service
    wrong = medarena(config, "login", server.url, "-u", "alice", "--password-stdin", stdin="nope\n")
    assert wrong.returncode == 1 and wrong.stderr.strip() == "error: wrong user name or password"

    login = medarena(config, "login", server.url, "-u", "alice", "--password-stdin", stdin="alice-password\n")
    assert login.returncode == 0, login.stderr
    credentials = config / "medarena" / "credentials.json"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert json.loads(credentials.read_text())["url"] == server.url

    submitted = medarena(config, "submit", IMAGE, "-c", "toy", "-p", "test", "--follow")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    out = submitted.stdout
    assert "submission " in out and " queued (sha256:" in out
    assert "case0: succeeded" in out and "case1: succeeded" in out
    assert "rank 1 of 1" in out
    submission = int(out.split("submission ", 1)[1].split()[0])

    status = medarena(config, "status")
    assert status.returncode == 0 and "toy/test" in status.stdout and "alice" in status.stdout
    results = medarena(config, "results", str(submission), "--logs")
    assert results.returncode == 0, results.stderr
    assert "case0" in results.stdout and "dice" in results.stdout
    with session_scope(server.settings.database_url) as session:  # measured in the container's own cgroup
        jobs = session.get(Submission, submission).jobs
        wall, cpu = sum(j.runtime_seconds for j in jobs), sum(j.cpu_seconds or 0 for j in jobs)
        assert all(j.cpu_seconds and 0 < j.cpu_seconds <= j.runtime_seconds for j in jobs) or os.geteuid() != 0
    assert f"compute: 2 case(s) ran, wall {wall:.1f} s, CPU {cpu:.1f} s, GPU 0.0 s" in results.stdout

    ended = medarena(config, "cancel", str(submission))
    assert ended.returncode == 1 and ended.stderr.strip() == f"error: submission {submission} has already ended " \
                                                             "(succeeded)"


@pytest.mark.podman
def test_a_spent_compute_budget_refuses_before_the_image_is_sent(service):
    server, config = service
    assert medarena(config, "login", server.url, "-u", "alice", "--password-stdin",
                    stdin="alice-password\n").returncode == 0
    with session_scope(server.settings.database_url) as session:  # 3.6 s of CPU used: the phase's budget
        phase, _ = find_phase(session, "toy", "budgeted")
        alice = session.scalar(select(User.id).where(User.username == "alice"))
        used = Submission(phase=phase, participant="alice", submitter_id=alice, image="i", image_digest="d",
                          state="succeeded")
        used.jobs.append(Job(case=phase.cases[0], state="succeeded", runtime_seconds=4.0, cpu_seconds=3.6))
        session.add(used)
    refused = medarena(config, "submit", IMAGE, "-c", "toy", "-p", "budgeted")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        "error: phase toy/budgeted: participant 'alice' has used 0.001 hours of the 0.001 CPU hours each "
        "participant may use (compute_budget.cpu_hours_per_participant)")
    with session_scope(server.settings.database_url) as session:
        assert session.scalar(select(func.count(Upload.id)).where(Upload.phase_id == phase.id)) == 0
        assert session.scalar(select(func.count(Submission.id)).where(Submission.phase_id == phase.id)) == 1


@pytest.mark.podman
def test_an_interrupted_upload_resumes(service, tmp_path):
    import httpx

    server, config = service
    assert medarena(config, "login", server.url, "-u", "alice", "--password-stdin",
                    stdin="alice-password\n").returncode == 0
    tarball = tmp_path / "noop.tar"
    subprocess.run(["podman", "save", "-o", str(tarball), IMAGE], check=True, capture_output=True)
    data = tarball.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    token = json.loads((config / "medarena" / "credentials.json").read_text())["token"]
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        upload = client.post("/api/v1/challenges/toy/phases/test/uploads",
                             json={"size": len(data), "sha256": sha, "part_size": 4 << 20}).json()
        first = data[:4 << 20]
        client.put(f"/api/v1/uploads/{upload['id']}/parts/0", content=first,
                   headers={"X-Part-SHA256": hashlib.sha256(first).hexdigest()}).raise_for_status()
    # what the command line remembers of an upload it started
    (config / "medarena" / "uploads.json").write_text(json.dumps({f"toy/test/{sha}": upload["id"]}))
    resumed = medarena(config, "submit", str(tarball), "-c", "toy", "-p", "test")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming upload {upload['id']} at part 1" in resumed.stderr
    assert " queued (sha256:" in resumed.stdout
    assert json.loads((config / "medarena" / "uploads.json").read_text()) == {}

    logout = medarena(config, "logout")
    assert logout.returncode == 0 and not (config / "medarena" / "credentials.json").exists()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.get("/api/v1/me").status_code == 401  # the server revoked it
