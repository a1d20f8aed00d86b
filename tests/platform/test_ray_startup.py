"""Starting the local Ray cluster on a slow machine: a raylet that takes longer than Ray's own 30 s
to register still starts, and one that never registers in time ends with one clear error.

The raylet is slowed down for real: Ray starts it behind `valgrind` when RAY_RAYLET_VALGRIND=1,
and a `valgrind` on PATH here sleeps, then runs the raylet itself. Each case runs in its own
process (a Ray driver cannot be started twice in one), ended with its Ray processes afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

DRIVER = textwrap.dedent("""
    import os, sys, time
    from medarena.platform import scheduler
    from medarena.platform.settings import Settings
    home = sys.argv[1]
    settings = Settings(home=home, database_url=f"sqlite:///{home}/db", store=f"{home}/store", ray_address=None)
    started = time.monotonic()
    try:
        scheduler.start_ray(settings)
    except scheduler.SchedulerError as error:
        print("ERROR", error, flush=True)
    else:
        import ray
        print("STARTED", round(time.monotonic() - started), ray.cluster_resources().get("CPU"), flush=True)
    os._exit(0)
""")


def _start_with_slow_raylet(tmp_path: Path, delay_s: int, env: dict[str, str]) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    valgrind = bin_dir / "valgrind"  # Ray passes five valgrind options before the raylet's command
    valgrind.write_text(f"#!/bin/sh\nsleep {delay_s}\nshift 5\nexec \"$@\"\n")
    valgrind.chmod(0o755)
    environment = {**os.environ, "RAY_RAYLET_VALGRIND": "1", "RAY_AUTH_MODE": "disabled",
                   "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(Path(__file__).parents[2])}
    environment.pop("RAY_raylet_start_wait_time_s", None)
    environment.update(env)
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path)], env=environment, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = driver.communicate(timeout=delay_s + 240)
    finally:
        try:  # the driver's Ray processes share its process group unless they died with it
            os.killpg(driver.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return output


def test_a_raylet_slower_than_rays_own_30_s_still_starts(tmp_path):
    output = _start_with_slow_raylet(tmp_path, delay_s=45, env={})
    started = [line for line in output.splitlines() if line.startswith("STARTED")]
    assert started, output[-3000:]
    _, seconds, cpus = started[0].split()
    assert int(seconds) >= 45 and float(cpus) >= 1


def test_a_raylet_that_never_registers_in_time_ends_with_one_clear_error(tmp_path):
    output = _start_with_slow_raylet(tmp_path, delay_s=120, env={"RAY_raylet_start_wait_time_s": "3"})
    errors = [line for line in output.splitlines() if line.startswith("ERROR")]
    assert errors == [
        "ERROR starting the local Ray cluster: its node did not register in time "
        "(RAY_raylet_start_wait_time_s=3 s; an overloaded machine?); "
        "Ray's logs are in /tmp/ray/session_latest/logs; a larger RAY_raylet_start_wait_time_s waits longer"
    ], output[-3000:]
    assert "STARTED" not in output
