"""Benchmark: COCO AP and mAP of medarena's detection evaluator against pycocotools.

10,000 predicted and 5,000 reference 2D boxes over 500 cases (seeded). Both start from the same
in-memory boxes as JSON-like documents; medarena scores every case and pools them
(``score_case`` + ``score_dataset``), pycocotools builds its index, loads the results, evaluates
and accumulates (default parameters: 4 area ranges, maxDets 1/10/100, as a user runs it; and
with only the 'all' area range and maxDets 100, the part medarena computes). Times are medians of
repeated runs in this process; peak RSS is measured in a child process per tool.

Run: .venv/bin/python bench/detection.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

N_CASES, N_PRED, N_REF = 500, 10_000, 5_000


def make_data(seed: int = 0):
    """Per case: reference boxes, and predictions = jittered references plus random boxes."""
    rng = np.random.default_rng(seed)
    ref_counts = rng.multinomial(N_REF, np.ones(N_CASES) / N_CASES)
    extra = rng.multinomial(N_PRED - N_REF, np.ones(N_CASES) / N_CASES)
    cases = []
    for n_ref, n_extra in zip(ref_counts, extra, strict=True):
        xy = rng.uniform(0, 400, (n_ref, 2))
        ref = np.c_[xy, xy + rng.uniform(8, 60, (n_ref, 2))]
        jitter = ref + rng.normal(0, 4, ref.shape)
        xy = rng.uniform(0, 400, (n_extra, 2))
        pred = np.r_[jitter, np.c_[xy, xy + rng.uniform(8, 60, (n_extra, 2))]]
        pred[:, 2:] = np.maximum(pred[:, 2:], pred[:, :2] + 0.5)
        scores = rng.uniform(0, 1, len(pred))
        cases.append((ref, pred, scores))
    return cases


def documents(cases):
    return [({"boxes": [{"corners": b.tolist()} for b in ref]},
             {"boxes": [{"corners": b.tolist(), "score": float(s)} for b, s in zip(pred, scores, strict=True)]})
            for ref, pred, scores in cases]


def coco_inputs(cases):
    images, anns, dets = [], [], []
    for i, (ref, pred, scores) in enumerate(cases):
        images.append({"id": i + 1})
        for b in ref:
            w, h = float(b[2] - b[0]), float(b[3] - b[1])
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                         "bbox": [float(b[0]), float(b[1]), w, h], "area": w * h})
        for b, s in zip(pred, scores, strict=True):
            dets.append({"image_id": i + 1, "category_id": 1, "score": float(s),
                         "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]})
    return {"images": images, "annotations": anns, "categories": [{"id": 1}]}, dets


def run_medarena(docs):
    from medarena.evaluators.detection import TASK, DetectionSettings

    settings = DetectionSettings()
    results = [TASK.score_case({"lesions": r}, {"detections": p}, settings) for r, p in docs]
    dataset = TASK.score_dataset(results, settings)
    return dataset["map"], dataset["ap@0.5"], dataset["ap@0.75"]


def run_pycocotools(dataset, dets, only_all: bool = False):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        dt = gt.loadRes([dict(d) for d in dets])
        evaluation = COCOeval(gt, dt, "bbox")
        if only_all:
            evaluation.params.areaRng = [[0, 1e10]]
            evaluation.params.areaRngLbl = ["all"]
            evaluation.params.maxDets = [100]
        evaluation.evaluate()
        evaluation.accumulate()
    precision = evaluation.eval["precision"][:, :, 0, 0, -1]  # T x R, class 1, area all, maxDets 100
    ap = [float(np.mean(p[p > -1])) for p in precision]
    return float(np.mean(ap)), ap[0], ap[5]


def timed(fn, repeats):
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def child(tool: str) -> None:
    cases = make_data()
    if tool == "medarena":
        run_medarena(documents(cases))
    else:
        run_pycocotools(*coco_inputs(cases))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def peak_rss_mib(tool: str) -> float:
    out = subprocess.run([sys.executable, __file__, "--child", tool], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child", choices=["medarena", "pycocotools"])
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    cases = make_data()
    docs = documents(cases)
    coco_dataset, coco_dets = coco_inputs(cases)
    t_ours, ours = timed(lambda: run_medarena(docs), args.repeats)
    t_coco, coco = timed(lambda: run_pycocotools(coco_dataset, coco_dets), args.repeats)
    t_coco_all, coco_all = timed(lambda: run_pycocotools(coco_dataset, coco_dets, only_all=True), args.repeats)
    equal = np.allclose(ours, coco, rtol=0, atol=1e-12) and np.allclose(ours, coco_all, rtol=0, atol=1e-12)
    print(f"{N_PRED} predicted, {N_REF} reference boxes, {N_CASES} cases; median of {args.repeats} runs")
    print(f"{'tool':<34}{'time (s)':>10}{'map':>10}{'ap@0.5':>10}{'ap@0.75':>10}{'peak RSS (MiB)':>16}")
    rows = [("medarena", t_ours, ours, peak_rss_mib("medarena")),
            ("pycocotools (default params)", t_coco, coco, peak_rss_mib("pycocotools")),
            ("pycocotools ('all' area, 100 dets)", t_coco_all, coco_all, float("nan"))]
    for name, t, (m, a50, a75), rss in rows:
        print(f"{name:<34}{t:>10.3f}{m:>10.6f}{a50:>10.6f}{a75:>10.6f}{rss:>16.0f}")
    print(f"equal to pycocotools (|diff| <= 1e-12): {equal}")
    print(f"speed-up: {t_coco / t_ours:.1f}x (default params), {t_coco_all / t_ours:.1f}x ('all' area only)")
    if not equal:
        sys.exit(1)


if __name__ == "__main__":
    main()
