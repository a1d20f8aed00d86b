"""The chunked segmentation path against the in-memory path, on label maps in zarr stores.

Run: ``taskset -c 0 .venv/bin/python bench/segmentation_chunked.py [--size 1024] [--repeat 3]
[--memory-only]``. Two uint8 label maps of SIZE³ (nested spheres, labels 1 and 2, the prediction
shifted by 5 voxels along axis 0) are written slab by slab to zarr v3 stores (chunks 64 x 256 x
256, blosc-zstd as ingest writes them). Each measurement runs in its own child process, which
reports the median wall time of its repeats and its own peak RSS:

- ``chunked``: :func:`evaluate_chunked` over the stores (reading included);
- ``in_memory``: the stores read into numpy first (not timed), then :func:`evaluate` — the
  floor the chunked path is held to (at most 2x its time per voxel). Skipped with
  ``--memory-only`` (a 2048³ pair needs 16 GB in memory).

Metrics: dice, nsd@2 and hd95 under the default convention, both labels.
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

METRICS = ["dice", "nsd@2", "hd95"]
CHUNK = (64, 256, 256)


def write_inputs(folder: str, n: int) -> None:
    """Two SIZE³ uint8 maps: a sphere of radius 0.39 n (label 1) around one of 0.15 n (label 2)."""
    import zarr
    from zarr.codecs import BloscCodec

    c = (n - 1) / 2
    y, x = np.ogrid[:n, :n]
    plane = (y - c) ** 2 + (x - c) ** 2
    outer, inner = (0.39 * n) ** 2, (0.15 * n) ** 2
    for name, shift in (("ref", 0.0), ("pred", 5.0)):
        store = zarr.create_array(os.path.join(folder, f"{name}.zarr"), shape=(n, n, n), chunks=CHUNK,
                                  dtype="uint8", compressors=BloscCodec(cname="zstd", clevel=3))
        for z0 in range(0, n, CHUNK[0]):
            slab = np.zeros((CHUNK[0], n, n), np.uint8)
            for k in range(CHUNK[0]):
                r2 = plane + (z0 + k - c - shift) ** 2
                slab[k][r2 <= outer] = 1
                slab[k][r2 <= inner] = 2
            store[z0:z0 + CHUNK[0]] = slab


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(kind: str, folder: str, repeat: int) -> dict:
    import zarr

    from medarena.evaluators.segmentation import evaluate, evaluate_chunked

    ref = zarr.open_array(os.path.join(folder, "ref.zarr"), mode="r")
    pred = zarr.open_array(os.path.join(folder, "pred.zarr"), mode="r")
    if kind == "in_memory":
        ref, pred = ref[:], pred[:]
        score = evaluate
    else:
        score = evaluate_chunked
    tiny = np.zeros((8, 8, 8), np.uint8)
    tiny[2:5, 2:5, 2:5] = 1
    score(tiny, tiny, spacing=(1, 1, 1), metrics=METRICS)  # numba kernels loaded from their cache
    times, cpu, values = [], [], None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        values = score(ref, pred, spacing=(1.0, 1.0, 1.0), metrics=METRICS)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {"seconds": statistics.median(times), "runs": times, "cpu_seconds": statistics.median(cpu),
            "values": values, "peak_rss_mb": peak_rss_mb()}


def child(*args: str) -> dict:
    output = subprocess.run([sys.executable, __file__, "--child", *args], check=True, capture_output=True,
                            text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-only", action="store_true", help="skip the in-memory comparison")
    parser.add_argument("--child", nargs=3)
    options = parser.parse_args()
    if options.child:
        kind, folder, repeat = options.child
        print(json.dumps(run(kind, folder, int(repeat)), default=float))
        return
    results: dict = {"size": options.size, "load_average_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as folder:
        start = time.perf_counter()
        write_inputs(folder, options.size)
        results["write_seconds"] = time.perf_counter() - start
        results["chunked"] = child("chunked", folder, str(options.repeat))
        if not options.memory_only:
            results["in_memory"] = child("in_memory", folder, str(options.repeat))
            results["ratio"] = results["chunked"]["seconds"] / results["in_memory"]["seconds"]
            results["cpu_ratio"] = results["chunked"]["cpu_seconds"] / results["in_memory"]["cpu_seconds"]
            results["same_values"] = results["chunked"]["values"] == results["in_memory"]["values"]
    results["load_average_end"] = os.getloadavg()[0]
    print(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
