"""Platform overhead: 100 cases of 64^3 through the whole path with a no-op algorithm, against
the floor of the container runs alone, measured in the same run.

Each repeat submits the no-op image again and runs the scheduler on a local Ray: export of the
inputs to the contract layout, the container, output checks, the predictions store, evaluation
(dice, hd95), database writes and the leaderboard. The floor: as many bare ``podman run --rm`` of
the base image with the same isolation flags (the runner's own podman command, running
``true``), one after another, divided by the slots (the cases Ray runs at once). Prints the
medians of both, their ratio, the time per case, the load average and the driver's peak RSS.

    .venv/bin/python bench/platform_overhead.py [--cases 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import yaml

REPO = Path(__file__).resolve().parents[1]
BASE_IMAGE = "localhost/medarena-base:latest"
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("CONTAINERS_CONF", str(REPO / "infra" / "containers.conf"))


def make_source(folder: Path, n: int, size: int = 64) -> None:
    rng = np.random.default_rng(0)
    for socket in ("scan", "segmentation"):
        (folder / socket).mkdir(parents=True)
    for i in range(n):
        scan = rng.normal(0, 1, (size,) * 3).astype(np.float32)
        mask = np.zeros((size,) * 3, np.uint8)
        mask[16:48, 16:48, 16:48] = 1
        sitk.WriteImage(sitk.GetImageFromArray(scan), str(folder / "scan" / f"case{i:03d}.mha"))
        sitk.WriteImage(sitk.GetImageFromArray(mask), str(folder / "segmentation" / f"case{i:03d}.mha"))


def floor_seconds(cases: int, slots: int, limits, folder: Path) -> float:
    """``cases`` bare runs of the base image under the runner's isolation, divided by ``slots``."""
    from medarena.platform.runner import container_command, podman_env

    (folder / "input").mkdir(parents=True, exist_ok=True)
    env = podman_env()
    started = time.perf_counter()
    for i in range(cases):
        output = folder / f"output{i}"
        output.mkdir()
        command = container_command(BASE_IMAGE, folder / "input", output, limits, name=f"medarena-floor-{i}")
        done = subprocess.run([*command, "true"], capture_output=True, env=env, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise SystemExit(f"the bare run failed: {done.stderr.decode(errors='replace')[-300:]}")
        output.rmdir()
    return (time.perf_counter() - started) / slots


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="medarena-bench-"))
    os.environ["MEDARENA_HOME"] = str(home)
    from medarena.platform import organizer, scheduler
    from medarena.platform.settings import load_settings

    settings = load_settings()
    definition = yaml.safe_load((REPO / "examples" / "demo-segmentation.yaml").read_text())
    definition["slug"] = "bench"
    definition["phases"][0]["submission_limit"] = 0
    definition["evaluation"]["settings"]["metrics"] = ["dice", "hd95"]
    definition["limits"] = {"wall_time_seconds": 60, "memory_mb": 512, "cpus": 1}
    (home / "bench.yaml").write_text(yaml.safe_dump(definition))
    organizer.create_challenge(settings, home / "bench.yaml")
    make_source(home / "source", args.cases)
    t0 = time.perf_counter()
    organizer.ingest_phase(settings, "bench", "test", home / "source")
    ingest_seconds = time.perf_counter() - t0
    scheduler.start_ray(settings)
    import ray

    from medarena.platform.challenges import ChallengeDefinition

    limits = ChallengeDefinition.model_validate(definition).limits
    slots = int(ray.cluster_resources()["CPU"] // limits.cpus)
    load_before = os.getloadavg()
    times, floors = [], []
    for repeat in range(args.repeats):
        sid, _ = organizer.submit(settings, "bench", "test", "bench", "localhost/medarena-example-noop:latest")
        t0 = time.perf_counter()
        scheduler.run(settings, [sid])
        times.append(time.perf_counter() - t0)
        states = organizer.submission_status(settings)[-1]
        assert f"{args.cases} succeeded" in states[4], states
        floors.append(floor_seconds(args.cases, slots, limits, home / f"floor{repeat}"))
        shutil.rmtree(home / f"floor{repeat}")
        print(f"repeat {repeat + 1}: end to end {times[-1]:.1f} s, floor {floors[-1]:.1f} s, "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
    load_after = os.getloadavg()
    median, floor = statistics.median(times), statistics.median(floors)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"cases: {args.cases} of 64^3, repeats: {args.repeats}, cpus: {os.cpu_count()}, slots: {slots}")
    print(f"load average (1 min): {load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end")
    print(f"ingest: {ingest_seconds:.1f} s")
    print(f"end to end: median {median:.1f} s (runs: {', '.join(f'{t:.1f}' for t in times)})")
    print(f"floor ({args.cases} bare podman runs / {slots} slots): median {floor:.1f} s "
          f"(runs: {', '.join(f'{t:.1f}' for t in floors)})")
    print(f"end to end / floor: {median / floor:.2f}")
    print(f"per case: {median / args.cases * 1000:.0f} ms; driver peak RSS {rss_mb:.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
