"""What a container run costs in podman calls: one per case once the image is checked, counted
by a ``podman`` on the PATH that writes down each call before running the real one."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest

from medarena.platform import runner, usage
from medarena.platform.runner import Limits, load_image, run_container
from tests.platform.test_runner import ct_case, ct_image

pytestmark = pytest.mark.podman
LIMITS = Limits(wall_time_seconds=30, memory_mb=256, cpus=1, pids=64)


@pytest.fixture
def podman_calls(tmp_path, monkeypatch):
    real = shutil.which("podman")
    folder, log = tmp_path / "counting", tmp_path / "calls"
    folder.mkdir()
    script = folder / "podman"
    script.write_text(f"#!/bin/sh\necho \"$*\" >> {log}\nexec {real} \"$@\"\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")

    def calls() -> list[str]:
        """podman's commands (run, rm, image, ...) since the last look."""
        lines = log.read_text().splitlines() if log.exists() else []
        log.unlink(missing_ok=True)
        return [_command(line.split()) for line in lines]

    return calls


def _command(words: list[str]) -> str:
    while words and words[0].startswith("-"):  # podman's global options, --runtime PATH among them
        words = words[2:] if words[0] == "--runtime" else words[1:]
    return words[0]


def test_a_case_costs_one_podman_call_once_the_pinned_image_is_checked(example_images, tmp_path, podman_calls):
    digest = load_image(example_images + "noop:latest").digest
    runner._verified_images.discard(digest)
    usage.cgroup_parent_supported(runner.podman_env)  # a `podman info` once per process, not per case
    podman_calls()
    for i in range(3):
        result = run_container(digest, ct_case(tmp_path / f"in{i}", ct_image()), tmp_path / f"out{i}", LIMITS,
                               name=f"medarena-test-calls-{i}")
        assert result.status == "ok", result
        assert podman_calls() == (["image", "run"] if i == 0 else ["run"])


def test_a_failing_exit_status_that_podman_also_uses_is_told_apart_by_the_events(example_images, tmp_path,
                                                                                 podman_calls):
    context = tmp_path / "context"
    context.mkdir()
    (context / "Containerfile").write_text('FROM localhost/medarena-base:latest\n'
                                           'ENTRYPOINT ["sh", "-c", "echo \'Error: not podman\' >&2; exit 125"]\n')
    name = "localhost/medarena-test-exit125:latest"
    built = subprocess.run(["podman", "build", "-q", "-t", name, str(context)], capture_output=True, text=True,
                           env=runner.podman_env(), timeout=300)
    assert built.returncode == 0, built.stderr
    try:
        digest = load_image(name).digest
        podman_calls()
        result = run_container(digest, ct_case(tmp_path / "in", ct_image()), tmp_path / "out", LIMITS)
        # the container itself said 125 (it started): the participant's exit code, not a platform fault
        assert (result.status, result.exit_code, result.message) == ("exit_code", 125,
                                                                     "exited with code 125: not podman")
        assert podman_calls() == ["image", "run", "events"]  # the image checked once, as any
    finally:
        subprocess.run(["podman", "rmi", "--force", name], capture_output=True, env=runner.podman_env())
