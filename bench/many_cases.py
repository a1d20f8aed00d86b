"""Many cases per container start: 1000 cases of 32^3 through the whole path.

A phase with ``many_cases_per_start: true`` and the example inference server
(``localhost/medarena-example-threshold-server``, grand-challenge's invoke API) against the same
algorithm run one case per start (``localhost/medarena-example-threshold``) on a sample of the
cases, whose time is scaled up. Each run goes through the scheduler on a local Ray with two
slots: export of the inputs, the algorithm, output checks, the predictions store, evaluation
(the demo's metrics), database writes. Prints the median end-to-end time of the server runs, per case, and the
driver's peak RSS.

    .venv/bin/python bench/many_cases.py [--cases 1000] [--repeats 3] [--one-per-start-sample 40]
    .venv/bin/python bench/many_cases.py --platform-only   # the same cases with no container at all

``--platform-only`` runs the cases on the in-process fake backend's no-op program instead (no
container at all): the platform's own work per case up to the output check (Ray task, export of
the inputs, the capped /output, the check, database writes). The no-op program leaves no output,
so these cases end ``missing_output`` and are not evaluated.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import yaml

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("CONTAINERS_CONF", str(REPO / "infra" / "containers.conf"))
SERVER = "localhost/medarena-example-threshold-server:latest"
ONE_PER_START = "localhost/medarena-example-threshold:latest"


def make_source(folder: Path, n: int, size: int = 32) -> None:
    rng = np.random.default_rng(0)
    for socket in ("scan", "segmentation"):
        (folder / socket).mkdir(parents=True)
    for i in range(n):
        mask = np.zeros((size,) * 3, np.uint8)
        lo = int(rng.integers(4, 12))
        mask[lo:lo + 12, lo:lo + 12, lo:lo + 12] = 1
        scan = (rng.normal(0, 1, (size,) * 3) + 6 * mask).astype(np.float32)
        sitk.WriteImage(sitk.GetImageFromArray(scan), str(folder / "scan" / f"case{i:04d}.mha"))
        sitk.WriteImage(sitk.GetImageFromArray(mask), str(folder / "segmentation" / f"case{i:04d}.mha"))


def challenge(home: Path, slug: str, cases: int, many: bool):
    from medarena.platform import organizer
    from medarena.platform.settings import load_settings

    settings = load_settings()
    definition = yaml.safe_load((REPO / "examples" / "demo-segmentation.yaml").read_text())
    definition["slug"] = slug
    definition["phases"][0]["submission_limit"] = 0
    definition["phases"][0]["many_cases_per_start"] = many
    definition["limits"] = {"wall_time_seconds": 60, "memory_mb": 512, "cpus": 1}
    (home / f"{slug}.yaml").write_text(yaml.safe_dump(definition))
    organizer.create_challenge(settings, home / f"{slug}.yaml")
    make_source(home / f"source-{slug}", cases)
    organizer.ingest_phase(settings, slug, "test", home / f"source-{slug}")
    return settings


def timed_run(settings, slug: str, image: str, cases: int, ending: str = "succeeded") -> float:
    from medarena.platform import organizer, scheduler

    sid, _ = organizer.submit(settings, slug, "test", f"p{time.monotonic_ns()}", image)
    t0 = time.perf_counter()
    scheduler.run(settings, [sid])
    seconds = time.perf_counter() - t0
    states = [row for row in organizer.submission_status(settings) if row[0] == sid][0]
    assert f"{cases} {ending}" in states[4], states
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one-per-start-sample", type=int, default=40)
    parser.add_argument("--platform-only", action="store_true")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="medarena-bench-"))
    os.environ["MEDARENA_HOME"] = str(home)
    from medarena.platform import scheduler

    settings = challenge(home, "many", args.cases, many=True)
    if args.platform_only:
        import dataclasses

        scheduler.start_ray(settings)
        fake = dataclasses.replace(settings, container_backend="fake")
        runs = [timed_run(fake, "many", "fake/noop", args.cases, ending="failed") for _ in range(args.repeats)]
        print(f"cases: {args.cases} of 32^3, no container (fake backend), load average at the end: "
              f"{os.getloadavg()[0]:.1f}")
        print(f"platform only: median {statistics.median(runs):.1f} s (runs: {', '.join(f'{t:.1f}' for t in runs)})")
        return
    challenge(home, "one", args.one_per_start_sample, many=False)
    scheduler.start_ray(settings)
    served = [timed_run(settings, "many", SERVER, args.cases) for _ in range(args.repeats)]
    single = timed_run(settings, "one", ONE_PER_START, args.one_per_start_sample)
    median = statistics.median(served)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"cases: {args.cases} of 32^3, repeats: {args.repeats}, cpus: {os.cpu_count()}, "
          f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(f"many cases per start: median {median:.1f} s (runs: {', '.join(f'{t:.1f}' for t in served)}), "
          f"{median / args.cases * 1000:.0f} ms per case")
    print(f"one case per start: {single:.1f} s for {args.one_per_start_sample} cases, "
          f"{single / args.one_per_start_sample * 1000:.0f} ms per case "
          f"(x{single / args.one_per_start_sample * args.cases / median:.1f} for {args.cases} cases)")
    print(f"driver peak RSS {rss_mb:.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
