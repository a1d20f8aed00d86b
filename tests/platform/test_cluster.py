"""The scheduler on a real multi-node Ray cluster (infra/ray-local-cluster.sh), run as `medarena run`
in a subprocess: cases run on the worker nodes, a node lost mid-run is retried without charging the
participant, and GPU phases go to the GPU worker only."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from medarena.platform import organizer, scheduler
from medarena.platform.database import Job, Submission, session_scope
from tests.platform.challenge_data import write_definition, write_source

pytestmark = pytest.mark.podman
REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "infra" / "ray-local-cluster.sh"
WORKERS = ("node_1", "node_2", "node_3")  # node_1 alone has a (logical) GPU
SLOW_IMAGE = "localhost/medarena-test-slow-threshold:latest"


def _raylets() -> dict[str, psutil.Process]:
    """The worker nodes' raylet processes, by their resource name (node_k)."""
    found = {}
    for process in psutil.process_iter(["name", "cmdline"]):
        args = process.info["cmdline"] or []
        if process.info["name"] == "raylet":
            resources = next((a.split("=", 1)[1] for a in args if a.startswith("--static_resource_list=")), "")
            name = resources.split(",")[0]
            if name in WORKERS:
                found[name] = process
    return found


def _node_id(raylet: psutil.Process) -> str:
    return next(a.split("=", 1)[1] for a in raylet.cmdline() if a.startswith("--node_id="))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, example_images):
    env = {**os.environ, "MEDARENA_RAY_CLUSTER_DIR": str(tmp_path_factory.mktemp("ray-cluster"))}
    try:
        start = subprocess.run(["bash", str(SCRIPT), "start", str(len(WORKERS)), "--gpus-per-worker", "1",
                                "--gpu-workers", "1"], capture_output=True, text=True, env=env, timeout=120)
        assert start.returncode == 0, start.stderr
        address = start.stdout.strip().splitlines()[-1]
        assert address.startswith("127.")
        yield address, {name: _node_id(raylet) for name, raylet in _raylets().items()}
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, timeout=60)


def _challenge(home, tmp_path, n: int, **limits) -> None:
    definition = write_definition(tmp_path / "toy.yaml",
                                  limits={"wall_time_seconds": 60, "memory_mb": 256, "cpus": 1, **limits})
    organizer.create_challenge(home, definition)
    organizer.ingest_phase(home, "toy", "test", write_source(tmp_path / "src", n=n))


def _run(home, address: str) -> subprocess.Popen:
    env = {**os.environ, "MEDARENA_HOME": str(home.home), "MEDARENA_RAY_ADDRESS": address,
           "MEDARENA_STORE": home.store}  # one machine: the local store is shared by every node
    return subprocess.Popen([sys.executable, "-m", "medarena.cli", "run"], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen, timeout: float = 90) -> str:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"medarena run did not finish in {timeout} s:\n{output[-3000:]}")
    assert process.returncode == 0, output[-3000:]
    return output


def _jobs(home, submission_id: int) -> dict[str, Job]:
    with session_scope(home.database_url) as session:
        return {job.case.name: job for job in session.get(Submission, submission_id).jobs}


def _node(job: Job) -> str:
    return job.node.rsplit("/", 1)[-1]


def _containers(home) -> list[str]:
    listed = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True,
                            check=True).stdout.split()
    return [name for name in listed if name.startswith(f"medarena-{scheduler.namespace(home)}-")]


def test_cases_run_on_the_worker_nodes(cluster, home, tmp_path):
    address, nodes = cluster
    _challenge(home, tmp_path, n=6)
    sid, _ = organizer.submit(home, "toy", "test", "ann", "localhost/medarena-example-threshold:latest")
    _finish(_run(home, address))
    jobs = _jobs(home, sid)
    assert {j.state for j in jobs.values()} == {"succeeded"}
    used = {_node(j) for j in jobs.values()}
    assert used <= set(nodes.values()), (used, nodes)  # never the head (it has no CPU), never the driver
    assert len(used) >= 2  # three one-CPU workers share six cases


def test_gpu_phase_runs_only_on_the_gpu_worker_with_its_cdi_device(cluster, home, tmp_path):
    address, nodes = cluster
    _challenge(home, tmp_path, n=2, gpus=1)
    sid, _ = organizer.submit(home, "toy", "test", "ann", "localhost/medarena-example-threshold:latest")
    _finish(_run(home, address))
    # no CDI device exists on this machine: podman refuses it, a platform fault, retried; then the
    # case stays queued (never charged); with one GPU slot, the second case still gets its turns
    jobs = _jobs(home, sid)
    assert len(jobs) == 2
    for job in jobs.values():
        assert _node(job) == nodes["node_1"], job.node
        assert job.state == "queued" and job.reason is None
        assert job.attempts == scheduler.MAX_PLATFORM_ATTEMPTS
        assert "nvidia.com/gpu=0" in job.platform_log, job.platform_log  # for the organizer
        assert "does not count against the submission" in job.detail and "nvidia" not in job.detail
    with session_scope(home.database_url) as session:
        assert session.get(Submission, sid).state == "running"
    assert _containers(home) == []


def test_a_node_lost_mid_run_is_retried_and_charged_to_no_one(cluster, home, tmp_path):
    address, nodes = cluster
    build = tmp_path / "slow"
    build.mkdir()
    (build / "Containerfile").write_text(  # the threshold algorithm, after a 6 s pause
        "FROM localhost/medarena-example-threshold:latest\n"
        'ENTRYPOINT ["sh", "-c", "sleep 6; exec python3 -u /opt/algorithm/threshold.py"]\n')
    subprocess.run(["podman", "build", "-q", "-t", SLOW_IMAGE, str(build)], check=True, capture_output=True,
                   timeout=120)
    _challenge(home, tmp_path, n=4)
    sid, _ = organizer.submit(home, "toy", "test", "ann", SLOW_IMAGE)
    prefix = f"medarena-{scheduler.namespace(home)}-j"  # containers are named by job id
    process = _run(home, address)
    victim = _raylets()["node_2"]
    lost: set[str] = set()
    deadline = time.time() + 45
    while not lost and time.time() < deadline:  # a case whose container runs under node_2's raylet
        for child in victim.children(recursive=True):
            try:
                args = child.cmdline()
            except psutil.NoSuchProcess:
                continue
            if "run" in args and "--name" in args and args[args.index("--name") + 1].startswith(prefix):
                lost.add(args[args.index("--name") + 1].removeprefix(prefix))
        time.sleep(0.2)
    assert lost, "no case started on node_2"
    time.sleep(2)  # well inside the case's 6 s
    victim.kill()
    _finish(process)

    jobs = _jobs(home, sid)
    assert {n: j.state for n, j in jobs.items()} == dict.fromkeys(jobs, "succeeded")
    assert all(j.reason is None for j in jobs.values())
    lost = {name for name, job in jobs.items() if str(job.id) in lost}
    assert lost
    for case in lost:  # run again, elsewhere, by Ray or by the platform
        assert _node(jobs[case]) in {nodes["node_1"], nodes["node_3"]}, jobs[case].node
    with session_scope(home.database_url) as session:
        assert session.get(Submission, sid).state == "succeeded"
    assert _containers(home) == []
    assert not list((home.scratch).glob("j*-*")), "a scratch folder of the lost run is left"
