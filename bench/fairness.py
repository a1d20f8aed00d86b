"""Fairness: one large and one small submission queued in that order, two slots.

A 200-case submission of one participant is queued, then a 10-case submission of another, both
with the no-op algorithm on 16^3 cases, and the scheduler runs them on a local Ray with 2 CPUs
(one CPU per case: two containers at a time). Prints when the small submission's last case
finished, in seconds after the scheduler started and as a fraction of the large one's duration,
and the driver's peak RSS.

Run it once on the current code, and once on an older commit for comparison:

    .venv/bin/python bench/fairness.py [--big 200] [--small 10]
    .venv/bin/python bench/fairness.py --code-of COMMIT   # the scheduler as it was at COMMIT
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import yaml

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("CONTAINERS_CONF", str(REPO / "infra" / "containers.conf"))
NOOP = "localhost/medarena-example-noop:latest"


def make_source(folder: Path, n: int, size: int = 16) -> None:
    rng = np.random.default_rng(0)
    for socket in ("scan", "segmentation"):
        (folder / socket).mkdir(parents=True)
    mask = np.zeros((size,) * 3, np.uint8)
    mask[4:12, 4:12, 4:12] = 1
    for i in range(n):
        scan = rng.normal(0, 1, (size,) * 3).astype(np.float32)
        sitk.WriteImage(sitk.GetImageFromArray(scan), str(folder / "scan" / f"case{i:03d}.mha"))
        sitk.WriteImage(sitk.GetImageFromArray(mask), str(folder / "segmentation" / f"case{i:03d}.mha"))


def code_of(commit: str) -> Path:
    """The medarena package as it was at ``commit``, extracted into a temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="medarena-code-"))
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "medarena"], capture_output=True,
                             check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--big", type=int, default=200, help="cases of the first submission")
    parser.add_argument("--small", type=int, default=10, help="cases of the second submission")
    parser.add_argument("--code-of", help="run the medarena package of this git commit instead")
    args = parser.parse_args()
    if args.code_of:
        env = {**os.environ, "PYTHONPATH": str(code_of(args.code_of))}
        command = [sys.executable, __file__, "--big", str(args.big), "--small", str(args.small)]
        sys.exit(subprocess.run(command, env=env).returncode)

    home = Path(tempfile.mkdtemp(prefix="medarena-bench-"))
    os.environ["MEDARENA_HOME"] = str(home)
    import ray

    import medarena
    from medarena.platform import organizer, scheduler
    from medarena.platform.database import Submission, session_scope, utcnow
    from medarena.platform.settings import load_settings

    settings = load_settings()
    definition = yaml.safe_load((REPO / "examples" / "demo-segmentation.yaml").read_text())
    definition["slug"] = "bench"
    definition["phases"] = [{"slug": slug, "opens": "2020-01-01T00:00:00Z", "submission_limit": 0}
                            for slug in ("big", "small")]
    definition["evaluation"]["settings"]["metrics"] = ["dice"]
    definition["ranking"] = {}
    definition["limits"] = {"wall_time_seconds": 120, "memory_mb": 256, "cpus": 1}
    (home / "bench.yaml").write_text(yaml.safe_dump(definition))
    organizer.create_challenge(settings, home / "bench.yaml")
    for phase, n in (("big", args.big), ("small", args.small)):
        make_source(home / phase, n)
        organizer.ingest_phase(settings, "bench", phase, home / phase)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    big, _ = organizer.submit(settings, "bench", "big", "ann", NOOP)
    small, _ = organizer.submit(settings, "bench", "small", "bob", NOOP)
    load = os.getloadavg()[0]
    started = utcnow()  # naive UTC, as the jobs' finished_at
    t0 = time.perf_counter()
    scheduler.run(settings)
    total = time.perf_counter() - t0
    with session_scope(settings.database_url) as session:
        ends = {}
        for sid in (big, small):
            submission = session.get(Submission, sid)
            assert all(j.state == "succeeded" for j in submission.jobs), [j.detail for j in submission.jobs]
            ends[sid] = (max(j.finished_at for j in submission.jobs) - started).total_seconds()
    small_done, big_done = ends[small], ends[big]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"code: {Path(medarena.__file__).parent}")
    print(f"cases: {args.big} + {args.small} of 16^3, 2 slots; load average at start {load:.1f}, "
          f"at end {os.getloadavg()[0]:.1f}")
    print(f"small submission done after {small_done:.1f} s; large one after {big_done:.1f} s "
          f"({small_done / big_done:.2f} of it); whole run {total:.1f} s; driver peak RSS {rss_mb:.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
