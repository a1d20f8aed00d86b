"""Segmentation benchmarks: surface metrics vs surface-distance, and overlap counts (the chunked
path: bench/segmentation_chunked.py).

Run: ``.venv/bin/python bench/segmentation.py [--repeat 3]``. Every measurement
runs in its own child process, which reports its wall time (median over repeats) and its own
peak RSS; surface-distance is timed in the same run on the same arrays. Our measurements first
make one call (``first_call_seconds``: numba's compiled kernels loaded from its cache, or compiled
when ``ours_deepmind_cold`` runs with an empty cache) and then time the repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

SIZE = 512
SPACING = (0.8, 0.8, 1.5)
METRICS = ["hd95", "assd", "nsd@2"]


def spheres(n: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Spheres of radius 180 and 174.6 voxels, centres 4 voxels apart, built slab by slab."""
    a = np.zeros((n, n, n), bool)
    b = np.zeros_like(a)
    c = (n - 1) / 2
    y, x = np.ogrid[:n, :n]
    plane = (y - c) ** 2 + (x - c) ** 2
    for z in range(n):
        a[z] = plane + (z - c) ** 2 <= 180 ** 2
        b[z] = plane + (z - c - 4) ** 2 <= 174.6 ** 2
    return a, b


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_ours(repeat: int, convention: str) -> dict:
    from medarena.evaluators.segmentation import evaluate

    a, b = spheres()
    start = time.perf_counter()
    values = evaluate(a, b, spacing=SPACING, metrics=METRICS, convention=convention)["1"]
    first = time.perf_counter() - start
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        values = evaluate(a, b, spacing=SPACING, metrics=METRICS, convention=convention)["1"]
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "first_call_seconds": first, "values": values,
            "peak_rss_mb": peak_rss_mb()}


def run_surface_distance(repeat: int) -> dict:
    import surface_distance as sd

    a, b = spheres()
    times, values = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        d = sd.compute_surface_distances(a, b, SPACING)
        gt_to_pred, pred_to_gt = sd.compute_average_surface_distance(d)
        area_gt, area_pred = np.sum(d["surfel_areas_gt"]), np.sum(d["surfel_areas_pred"])
        values = {"hd95": sd.compute_robust_hausdorff(d, 95),
                  "assd": (gt_to_pred * area_gt + pred_to_gt * area_pred) / (area_gt + area_pred),
                  "nsd@2": sd.compute_surface_dice_at_tolerance(d, 2.0)}
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "values": {k: float(v) for k, v in values.items()},
            "peak_rss_mb": peak_rss_mb()}


def run_counts(repeat: int) -> dict:
    from medarena.evaluators.segmentation._overlap import label_counts

    rng = np.random.default_rng(0)
    ref = rng.integers(0, 5, (SIZE, SIZE, SIZE), dtype=np.uint8)
    pred = ref.copy()
    pred[rng.random(pred.shape, dtype=np.float32) < 0.1] = 0
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        label_counts(ref, pred, [1, 2, 3, 4])
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "peak_rss_mb": peak_rss_mb()}


def child(name: str, *args: str, env: dict[str, str] | None = None) -> dict:
    output = subprocess.run([sys.executable, __file__, "--child", name, *args], check=True,
                            capture_output=True, text=True, env=None if env is None else {**os.environ, **env}).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--peer-repeat", type=int, default=1)
    parser.add_argument("--child", nargs="+")
    options = parser.parse_args()
    if options.child:
        name, *rest = options.child
        if name == "ours":
            result = run_ours(options.repeat, rest[0])
        elif name == "peer":
            result = run_surface_distance(options.peer_repeat)
        else:
            result = run_counts(options.repeat)
        print(json.dumps(result, default=float))
        return
    with tempfile.TemporaryDirectory() as cache:
        cold = child("ours", "deepmind", "--repeat", "1", env={"NUMBA_CACHE_DIR": cache})
    results = {
        "ours_deepmind_cold": cold,
        "ours_deepmind": child("ours", "deepmind", "--repeat", str(options.repeat)),
        "ours_default": child("ours", "default", "--repeat", str(options.repeat)),
        "surface_distance": child("peer", "--peer-repeat", str(options.peer_repeat)),
        "counts": child("counts", "--repeat", str(options.repeat)),
    }
    results["speedup_deepmind"] = results["surface_distance"]["seconds"] / results["ours_deepmind"]["seconds"]
    print(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
