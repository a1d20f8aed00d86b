"""Benchmark of the ranking bootstrap: 1000 resamples over 30 submissions x 300 cases x 2 metrics.

Each scenario runs in a child process pinned to one core (BLAS threads 1); the figure is the
median of repeated runs, and the child's peak RSS is reported. Usage:
``.venv/bin/python bench/ranking.py [--repeats 5] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

SCENARIOS = {
    "aggregate-then-rank, mean": ("aggregate-then-rank", "mean"),
    "aggregate-then-rank, median": ("aggregate-then-rank", "median"),
    "rank-then-aggregate, mean": ("rank-then-aggregate", "mean"),
    "rank-then-aggregate, median": ("rank-then-aggregate", "median"),
    "test-based": ("test-based", "mean"),
}


def make_table(n_subs: int = 30, n_cases: int = 300, seed: int = 0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    skill = rng.normal(scale=0.05, size=n_subs)
    dice = np.clip(0.8 + skill[:, None] + rng.normal(scale=0.1, size=(n_subs, n_cases)), 0, 1)
    hd95 = np.abs(5 - 20 * skill[:, None] + rng.normal(scale=2, size=(n_subs, n_cases)))
    subs = np.array([f"sub{s:02d}" for s in range(n_subs)])
    cases = np.array([f"case{k:03d}" for k in range(n_cases)])
    frames = [
        pd.DataFrame({"submission": np.repeat(subs, n_cases), "case": np.tile(cases, n_subs),
                      "label": None, "metric": metric, "value": values.ravel()})
        for metric, values in (("dice", dice), ("hd95", hd95))
    ]
    return pd.concat(frames, ignore_index=True)


def child(method: str, aggregate: str, resamples: int) -> dict:
    """One timed run: build the dense table, bootstrap, Kendall's tau (what a leaderboard needs)."""
    from medarena.evaluators.ranking import RankingRecipe, bootstrap_stability

    table = make_table()
    recipe = RankingRecipe(method=method, aggregate=aggregate, bootstrap=resamples,
                           metrics=[{"metric": "dice"}, {"metric": "hd95"}])
    start = time.perf_counter()
    result = bootstrap_stability(table, recipe)
    seconds = time.perf_counter() - start
    assert result.ranks.shape == (resamples, 30)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_rss_mib": peak_mib, "median_tau": float(result.tau.median())}


def run_child(method: str, aggregate: str, resamples: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    command = [sys.executable, __file__, "--child", method, aggregate, str(resamples)]
    if hasattr(os, "sched_setaffinity"):
        command = ["taskset", "-c", "0", *command]
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one run per scenario")
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "AGGREGATE", "RESAMPLES"))
    args = parser.parse_args()
    if args.child:
        method, aggregate, resamples = args.child
        print(json.dumps(child(method, aggregate, int(resamples))))
        return
    repeats = 1 if args.quick else args.repeats
    print("bootstrap of 1000 resamples, 30 submissions x 300 cases x 2 metrics, one core")
    print(f"{'recipe':32s} {'median s':>9s} {'min s':>7s} {'peak RSS MiB':>13s} {'runs':>5s}")
    for name, (method, aggregate) in SCENARIOS.items():
        runs = [run_child(method, aggregate, 1000) for _ in range(repeats)]
        times = [r["seconds"] for r in runs]
        peak = max(r["peak_rss_mib"] for r in runs)
        print(f"{name:32s} {statistics.median(times):9.2f} {min(times):7.2f} {peak:13.0f} {len(runs):5d}")


if __name__ == "__main__":
    main()
