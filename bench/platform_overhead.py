"""Platform overhead: 100 cases of 64^3 through the whole path with a no-op algorithm, against
the floor of the container runs alone, measured in the same run.

Each repeat submits the no-op image again and runs the scheduler on a local Ray: export of the
inputs to the contract layout, the container, output checks, the predictions store, evaluation
(dice, hd95), database writes and the leaderboard. The floor: as many bare ``podman run --rm`` of
the base image with the same isolation flags (the runner's own podman command, running
``true``), one after another, divided by the slots (the cases Ray runs at once). Prints the
medians of both, their ratio, the time per case, the load average and the driver's peak RSS.

    .venv/bin/python bench/platform_overhead.py [--cases 100] [--repeats 3] [--image IMAGE]

The no-op algorithm is ``bench/noop-shell`` (built on first use): a shell script that writes an
all-zero label map on the input's grid (the input's MetaImage header and zero bytes), so that the
container does as little as the floor's ``true`` and the difference is the platform's. The
Python no-op (``--image localhost/medarena-example-noop:latest``) spends about 0.2 s more per
case starting Python and NumPy, which is the algorithm's time, not the platform's.
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
import threading
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import yaml

REPO = Path(__file__).resolve().parents[1]
BASE_IMAGE = "localhost/medarena-base:latest"
NOOP_SHELL = "localhost/medarena-bench-noop-shell:latest"
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


def bare_runs(cases: int, limits, folder: Path, tag: str) -> None:
    """``cases`` bare runs of the base image under the runner's isolation, one after another."""
    from medarena.platform.runner import container_command, podman_env

    (folder / "input").mkdir(parents=True, exist_ok=True)
    env = podman_env()
    for i in range(cases):
        output = folder / f"output-{tag}-{i}"
        output.mkdir()
        command = container_command(BASE_IMAGE, folder / "input", output, limits, name=f"medarena-floor-{tag}-{i}")
        done = subprocess.run([*command, "true"], capture_output=True, env=env, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise SystemExit(f"the bare run failed: {done.stderr.decode(errors='replace')[-300:]}")
        output.rmdir()


def floor_seconds(cases: int, slots: int, limits, folder: Path) -> tuple[float, float]:
    """The floor as the target defines it (``cases`` bare runs one after another, divided by
    ``slots``), and what ``slots`` streams of bare runs side by side take for ``cases`` runs."""
    started = time.perf_counter()
    bare_runs(cases, limits, folder, "seq")
    sequential = (time.perf_counter() - started) / slots
    streams = [threading.Thread(target=bare_runs, args=(cases // slots, limits, folder, f"par{k}"))
               for k in range(slots)]
    started = time.perf_counter()
    for stream in streams:
        stream.start()
    for stream in streams:
        stream.join()
    return sequential, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image", default=NOOP_SHELL)
    args = parser.parse_args()
    if args.image == NOOP_SHELL:
        from medarena.platform.runner import podman_env

        subprocess.run(["podman", "build", "-q", "-t", NOOP_SHELL, str(REPO / "bench" / "noop-shell")],
                       check=True, capture_output=True, env=podman_env())
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
    times, floors, side_by_side = [], [], []
    for repeat in range(args.repeats):
        sid, _ = organizer.submit(settings, "bench", "test", "bench", args.image)
        t0 = time.perf_counter()
        scheduler.run(settings, [sid])
        times.append(time.perf_counter() - t0)
        states = organizer.submission_status(settings)[-1]
        assert f"{args.cases} succeeded" in states[4], states
        floor, together = floor_seconds(args.cases, slots, limits, home / f"floor{repeat}")
        floors.append(floor)
        side_by_side.append(together)
        shutil.rmtree(home / f"floor{repeat}")
        print(f"repeat {repeat + 1}: end to end {times[-1]:.1f} s, floor {floor:.1f} s, "
              f"{slots} streams of bare runs {together:.1f} s, load {os.getloadavg()[0]:.1f}", flush=True)
    load_after = os.getloadavg()
    median, floor, together = statistics.median(times), statistics.median(floors), statistics.median(side_by_side)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"cases: {args.cases} of 64^3, image: {args.image}, repeats: {args.repeats}, cpus: {os.cpu_count()}, "
          f"slots: {slots}")
    print(f"load average (1 min): {load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end")
    print(f"ingest: {ingest_seconds:.1f} s")
    print(f"end to end: median {median:.1f} s (runs: {', '.join(f'{t:.1f}' for t in times)})")
    print(f"floor ({args.cases} bare podman runs / {slots} slots): median {floor:.1f} s "
          f"(runs: {', '.join(f'{t:.1f}' for t in floors)})")
    print(f"{slots} streams of bare runs side by side: median {together:.1f} s "
          f"(runs: {', '.join(f'{t:.1f}' for t in side_by_side)})")
    print(f"end to end / floor: {median / floor:.2f}; end to end / side by side: {median / together:.2f}")
    print(f"per case: {median / args.cases * 1000:.0f} ms; driver peak RSS {rss_mb:.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
