"""Hostile algorithms against the real platform: one scheduler run (real podman, local Ray,
SQLite) of one submission per misbehaviour (tests/platform/hostile/hostile.py) between two
well-behaved ones, on a one-case phase. Each misbehaviour ends with its own exact reason, the
well-behaved submissions score as if alone, and nothing is left behind: no container, no scratch
folder, no mount, and the scratch file system (a file system of its own, so that its usage is
exact) back to what it held before."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from medarena.evaluators.image import Image
from medarena.platform import organizer, outputfs, scheduler
from medarena.platform.contract import Socket, write_inputs
from medarena.platform.database import Job, Submission, session_scope
from medarena.platform.outputfs import mounts_under
from medarena.platform.runner import Limits, podman_env, run_container
from medarena.platform.scheduling import recorder
from medarena.platform.settings import load_settings
from tests.platform.challenge_data import cube_case, write_definition, write_source

pytestmark = [pytest.mark.podman,
              pytest.mark.skipif(os.geteuid() != 0 or not outputfs.loop_mount_available(),
                                 reason="the capped output folder and an own scratch file system need root")]
REPO = Path(__file__).resolve().parents[2]
CONTEXT = Path(__file__).parent / "hostile"
BASE = "localhost/medarena-test-hostile:latest"
GOOD = "localhost/medarena-example-threshold:latest"
WALL, MEMORY, OUTPUT_MB = 45, 256, 64
SCAN, _ = cube_case(0)  # the phase's one case: (12, 24, 24) int16
SEG = "output socket 'segmentation': /output/images/segmentation/result.mha"
INVALID = "invalid_output"

# behaviour -> (state, reason, the exact detail: a string, or a compiled pattern)
EXPECTED = {
    "bad_utf8_name": ("failed", INVALID, r"/output/notes-\xff\xfe.txt: a file name that is not UTF-8"),
    "deep_nesting": ("failed", INVALID, "/output/" + "/".join(["d"] * 33) + ": folders nested more than 32 deep"),
    # more than the output check takes, fewer than the file system's inodes
    "twelve_thousand_files": ("failed", "output_too_large", "/output holds more than 10000 files and folders"),
    "hundred_thousand_files": ("failed", "output_too_large", re.compile(
        r"stopped: /output holds more files and folders than its file system has room for \(\d+\)")),
    "symlink_out": ("failed", INVALID, "/output/images/segmentation/result.mha: a symbolic link; outputs must be "
                                       "regular files and folders"),
    "hard_link": ("failed", INVALID, re.compile(r"/output/(copy\.mha|images/segmentation/[0-9a-f-]{36}\.mha): "
                                                r"a hard link \(2 names for one file\); outputs must be plain files")),
    "fifo": ("failed", INVALID, "/output/images/segmentation/pipe.mha: not a regular file or folder (a fifo, "
                                "socket or device); outputs must be regular files and folders"),
    "unix_socket": ("failed", INVALID, "/output/listen.sock: not a regular file or folder (a fifo, socket or "
                                       "device); outputs must be regular files and folders"),
    "sparse_100g": ("failed", "output_too_large", "/output/sparse.bin: 100.0 GB, more than the output limit of 64 MB"),
    "beyond_cap": ("failed", "output_too_large", "stopped: wrote more than the output limit of 64 MB"),
    "unreadable_file": ("failed", INVALID, "/output/secret: not readable by its owner (mode 000); leave outputs "
                                           "readable"),
    "unreadable_output_folder": ("failed", INVALID, "/output/images/segmentation: not readable by its owner "
                                                    "(mode 000); leave outputs readable"),
    "network": ("succeeded", None, ""),
    "fork_bomb": ("failed", "timeout", f"stopped after the wall-time limit of {WALL} s"),
    "memory_hog": ("failed", "out_of_memory", f"killed for exceeding the memory limit of {MEMORY} MB"),
    "sleep_forever": ("failed", "timeout", f"stopped after the wall-time limit of {WALL} s"),
    "huge_logs": ("succeeded", None, ""),
    "nan_output": ("failed", INVALID, f"{SEG}: 1 voxels are NaN or infinite"),
    "wrong_dtype": ("failed", INVALID, f"{SEG}: a segmentation must hold integer labels, found fractional values"),
    "wrong_grid": ("failed", INVALID, f"{SEG}: not on the input's grid: shape (11, 24, 24) instead of (12, 24, 24)"),
    # uint8 voxels: the data is one byte per voxel, the file lost its last 1000
    "truncated_mha": ("failed", INVALID, f"{SEG}: the file is truncated: {SCAN.size - 1000} of {SCAN.size} bytes "
                                         "of voxel data"),
    "host_paths": ("succeeded", None, ""),
    "write_input": ("succeeded", None, ""),
    "exit_nonzero": ("failed", "exit_code", "the algorithm exited with code 3: exit_nonzero: giving up on purpose"),
    # catatonit (PID 1) ignores SIGKILL from inside and passes SIGTERM on: 128 + 15
    "kill_init": ("failed", "exit_code", "the algorithm exited with code 143: kill_init: PID 1 survived SIGKILL; "
                                         "sending SIGTERM"),
    "orphans": ("succeeded", None, ""),
    "markup_log": ("failed", "exit_code", "the algorithm exited with code 1: [bold red]fake[/bold red] [/x] "
                                          "\x1b]0;title\x07\x1b[2J"),
    "setuid_escalation": ("succeeded", None, ""),
}
# what the stdout of the attacks that must come to nothing shows
REFUSED = {
    "network": ["network: interfaces ['lo']", "network: refused"],
    "host_paths": ["host paths: refused (Permission denied)", "host paths: refused (No such file or directory)"],
    "write_input": ["write /input: refused (Read-only file system)"],
    "setuid_escalation": ["privileges: refused (Operation not permitted)"],
}


@pytest.fixture(scope="module")
def ray_cluster():
    """The session's local Ray (as tests/conftest.py starts it), started here with retries when
    this module runs first: on a loaded machine the raylet sometimes stops waiting for its
    metrics agent and the start fails."""
    import ray

    if ray.is_initialized():
        yield ray
        return
    for attempt in range(4):
        try:
            ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
            break
        except Exception:
            ray.shutdown()
            if attempt == 3:
                raise
            time.sleep(10)
    yield ray
    ray.shutdown()


def podman(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, env=podman_env(), timeout=timeout)


@pytest.fixture(scope="module")
def hostile_images(example_images, tmp_path_factory):
    """One image per behaviour: the hostile algorithm with MEDARENA_HOSTILE baked in."""
    context = tmp_path_factory.mktemp("hostile-context")
    for file in CONTEXT.iterdir():
        shutil.copy(file, context)
    shutil.copy(REPO / "submissions" / "threshold" / "mha.py", context)
    built = podman("build", "-q", "-t", BASE, str(context))
    assert built.returncode == 0, built.stderr
    names = {}
    for behaviour in EXPECTED:
        (context / "Containerfile.behaviour").write_text(f"FROM {BASE}\nENV MEDARENA_HOSTILE={behaviour}\n")
        names[behaviour] = f"localhost/medarena-test-hostile-{behaviour.replace('_', '-')}:latest"
        built = podman("build", "-q", "-t", names[behaviour], "-f", str(context / "Containerfile.behaviour"),
                       str(context))
        assert built.returncode == 0, built.stderr
    yield names
    podman("rmi", "--force", *names.values(), BASE)


def used_bytes(path: Path) -> int:
    info = os.statvfs(path)
    return (info.f_blocks - info.f_bfree) * info.f_frsize


@pytest.fixture(scope="module")
def own_file_system(tmp_path_factory):
    """A folder that is a file system of its own (2 GB, sparse), so that its usage is exact."""
    root = tmp_path_factory.mktemp("scratch-fs")
    with outputfs.OutputFolder(root / "fs", 2 * 2**30) as folder:
        yield folder.path


@pytest.fixture(scope="module")
def hostile_run(hostile_images, own_file_system, tmp_path_factory, ray_cluster):
    tmp = tmp_path_factory.mktemp("hostile")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEDARENA_HOME", str(tmp / "home"))
        patch.delenv("MEDARENA_DATABASE_URL", raising=False)
        patch.delenv("MEDARENA_STORE", raising=False)
        settings = load_settings()
    settings.home.mkdir(parents=True)
    settings.scratch.symlink_to(own_file_system)
    limits = {"wall_time_seconds": WALL, "memory_mb": MEMORY, "cpus": 1, "pids": 64, "output_mb": OUTPUT_MB}
    organizer.create_challenge(settings, write_definition(tmp / "toy.yaml", limits=limits))
    organizer.ingest_phase(settings, "toy", "test", write_source(tmp / "src", n=1))
    submissions = {"good-first": organizer.submit(settings, "toy", "test", "good-first", GOOD)[0]}
    for behaviour, image in hostile_images.items():
        submissions[behaviour] = organizer.submit(settings, "toy", "test", behaviour.replace("_", "-"), image)[0]
    submissions["good-last"] = organizer.submit(settings, "toy", "test", "good-last", GOOD)[0]

    before = used_bytes(own_file_system)
    peak, stop = [before], threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            peak[0] = max(peak[0], used_bytes(own_file_system))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        finished = scheduler.run(settings)
    finally:
        stop.set()
        sampler.join()
    jobs = {}
    with session_scope(settings.database_url) as session:
        for name, sid in submissions.items():
            job = session.get(Submission, sid).jobs[0]
            jobs[name] = {"state": job.state, "reason": job.reason, "detail": job.detail,
                          "stdout": job.stdout_tail, "stderr": job.stderr_tail,
                          "runtime": job.runtime_seconds, "attempts": job.attempts,
                          "metrics": {(m.label, m.metric): m.value for m in job.metrics}}
    return {"settings": settings, "submissions": submissions, "finished": finished, "jobs": jobs,
            "before": before, "after": used_bytes(own_file_system), "peak": peak[0], "scratch": own_file_system}


@pytest.mark.parametrize("behaviour", sorted(EXPECTED))
def test_each_misbehaviour_ends_with_its_own_reason(hostile_run, behaviour):
    job = hostile_run["jobs"][behaviour]
    state, reason, detail = EXPECTED[behaviour]
    assert (job["state"], job["reason"]) == (state, reason), job
    if isinstance(detail, re.Pattern):
        assert detail.fullmatch(job["detail"]), job["detail"]
    else:
        assert job["detail"] == detail
    assert job["attempts"] == 1  # a participant's fault is never retried as the platform's
    for line in REFUSED.get(behaviour, []):
        assert line in job["stdout"], job["stdout"]


def test_the_run_finishes_every_submission(hostile_run):
    assert sorted(hostile_run["finished"]) == sorted(hostile_run["submissions"].values())


def test_well_behaved_submissions_before_and_after_score_as_alone(hostile_run):
    first, last = hostile_run["jobs"]["good-first"], hostile_run["jobs"]["good-last"]
    assert first["state"] == last["state"] == "succeeded"
    assert first["metrics"] == last["metrics"]
    _, mask = cube_case(0)
    for name in ("good-first", "good-last"):
        url = scheduler.predictions_url(hostile_run["settings"], "toy", "test", hostile_run["submissions"][name])
        predicted = zarr.open_group(url, mode="r")["case0"]["segmentation"][...] == 1
        dice = 2 * np.logical_and(mask == 1, predicted).sum() / ((mask == 1).sum() + predicted.sum())
        assert hostile_run["jobs"][name]["metrics"][("fg", "dice")] == pytest.approx(dice, abs=1e-12)
        assert dice > 0.95


def test_huge_logs_keep_only_a_storable_tail(hostile_run):
    job = hostile_run["jobs"]["huge_logs"]
    assert job["stdout"].endswith("huge_logs: the last stdout line\n")
    assert job["stderr"].endswith("huge_logs: the last stderr line\n")
    for tail in (job["stdout"], job["stderr"]):
        assert len(tail.encode()) <= 16_384 * 3 and "\x00" not in tail  # replacement characters: up to 3 bytes


def test_attacks_that_stop_early_are_stopped_early(hostile_run):
    jobs = hostile_run["jobs"]
    assert jobs["beyond_cap"]["runtime"] < WALL / 2
    assert jobs["hundred_thousand_files"]["runtime"] < WALL
    assert jobs["orphans"]["runtime"] < WALL / 2  # PID 1 ends the container when the algorithm ends


def test_nothing_is_left_behind(hostile_run):
    settings, scratch = hostile_run["settings"], hostile_run["scratch"]
    names = podman("ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert not [n for n in names if n.startswith(f"medarena-{scheduler.namespace(settings)}-")]
    assert list(scratch.iterdir()) == []
    assert mounts_under(scratch) == [str(scratch.resolve())]  # only the scratch file system itself
    # the 100 GB sparse file, 640 MB of logs, the writer past the cap: none reached the disk
    assert hostile_run["peak"] - hostile_run["before"] < 4 * (OUTPUT_MB + 40) * 2**20
    assert abs(hostile_run["after"] - hostile_run["before"]) <= 64 * 2**10


def test_a_failure_while_recording_a_case_is_a_platform_fault_and_the_loop_goes_on(home, tmp_path, example_images,
                                                                                  ray_cluster, monkeypatch):
    limits = {"wall_time_seconds": 60, "memory_mb": 256, "cpus": 1}
    organizer.create_challenge(home, write_definition(tmp_path / "toy.yaml", limits=limits))
    organizer.ingest_phase(home, "toy", "test", write_source(tmp_path / "src", n=1))
    broken, _ = organizer.submit(home, "toy", "test", "ann", GOOD)
    fine, _ = organizer.submit(home, "toy", "test", "bob", GOOD)
    record = recorder.record

    def failing_record(settings, item, outcome):
        if item.submission_id == broken and not outcome.platform_error:
            raise RuntimeError("the database refused this row (simulated)")
        return record(settings, item, outcome)

    monkeypatch.setattr(recorder, "record", failing_record)
    assert scheduler.run(home) == [fine]  # returns: the loop did not die
    with session_scope(home.database_url) as session:
        stuck = session.get(Submission, broken).jobs[0]
        assert (stuck.state, stuck.attempts) == ("queued", scheduler.MAX_PLATFORM_ATTEMPTS)
        assert "RuntimeError: the database refused this row (simulated)" in stuck.platform_log
        assert "Traceback" in stuck.platform_log and "RuntimeError" not in stuck.detail
        good = session.get(Submission, fine).jobs[0]
        assert (good.state, good.detail) == ("succeeded", "")
        assert session.query(Job).count() == 2
    monkeypatch.setattr(recorder, "record", record)
    assert scheduler.run(home) == [broken]  # a later run takes the case up again


def test_without_a_capped_file_system_a_watcher_and_the_file_size_limit_stop_the_writer(hostile_images, tmp_path,
                                                                                        monkeypatch):
    monkeypatch.setattr(outputfs, "loop_mount_available", lambda: False)  # as for a user without root
    scan = Image(array=SCAN, spacing=(2.0, 1.0, 0.5), origin=(0.0, 0.0, 0.0),
                 direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    write_inputs(tmp_path / "input", [Socket(slug="scan", kind="image", relative_path="images/scan")], {"scan": scan})
    limits = Limits(wall_time_seconds=WALL, memory_mb=MEMORY, output_mb=16)
    with outputfs.OutputFolder(tmp_path / "out", 16 * 2**20) as output:
        assert output.enforced_by == "walk"
        result = run_container(hostile_images["beyond_cap"], tmp_path / "input", output.path, limits, output=output)
        assert (result.status, result.message) == ("output_too_large",
                                                   "stopped: wrote more than the output limit of 16 MB")
        assert (output.path / "fill.bin").stat().st_size <= 16 * 2**20  # RLIMIT_FSIZE stopped the file there
    assert not (tmp_path / "out").exists()
