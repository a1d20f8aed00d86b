"""Benchmark: registration and fusion evaluators on one core.

Registration: a smooth 256³ float32 displacement field (mm, identity direction, spacing 1 mm)
with 300 landmarks; medarena's ``TASK.score_case`` computes TRE (and the identity TRE), the
Jacobian determinant, SDlogJ and folding, including its input checks. Peers: SimpleITK's
``DisplacementFieldJacobianDeterminant`` filter (the Jacobian alone) and 300 calls of
``DisplacementFieldTransform.TransformPoint`` (the warped landmarks alone).

Fusion: three 1024² gray images (A, B, F = a noisy blend); medarena computes all twelve metrics.
Peers: scikit-image's SSIM (twice, A-F and B-F) and sewar's pixel-domain VIF (twice).

Every measurement runs in its own child process pinned to one CPU with BLAS/OpenMP threads set
to 1; the wall time is the median (and minimum) of the repeats inside that process, the CPU time
the median of the process's CPU time per repeat (less sensitive to other load on the machine),
the peak RSS the child's maximum resident set size (inputs included).

Run: .venv/bin/python bench/registration_fusion.py [--repeats 5]
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

import numpy as np

N_LANDMARKS = 300
FIELD_SHAPE = (256, 256, 256)
FUSION_SHAPE = (1024, 1024)


def make_field(seed: int = 0) -> np.ndarray:
    """A smooth field: random values on a coarse 9³ grid, upsampled (cubic), up to about ±8 mm."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    coarse = rng.normal(0, 3.0, (9, 9, 9, 3))
    zoom = [n / 9 for n in FIELD_SHAPE]
    field = np.empty(FIELD_SHAPE + (3,), np.float32)
    for c in range(3):
        field[..., c] = ndimage.zoom(coarse[..., c], zoom, order=3)
    return field


def registration_case():
    from medarena.evaluators.image import Image
    from medarena.evaluators.registration import sample_field

    field = Image(make_field(), (1.0, 1.0, 1.0))
    rng = np.random.default_rng(1)
    fixed = rng.uniform(2, np.array(FIELD_SHAPE) - 3, (N_LANDMARKS, 3))
    moving = fixed + sample_field(field, fixed) + rng.normal(0, 1.0, fixed.shape)
    return {"fixed_landmarks": fixed, "moving_landmarks": moving}, {"field": field}


def fusion_images():
    from scipy import ndimage

    rng = np.random.default_rng(2)
    a = np.clip(ndimage.gaussian_filter(rng.normal(size=FUSION_SHAPE), 3) * 400 + 128, 0, 255)
    b = np.clip(ndimage.gaussian_filter(rng.normal(size=FUSION_SHAPE), 5) * 600 + 100, 0, 255)
    f = np.clip(0.6 * a + 0.4 * b + rng.normal(0, 4, FUSION_SHAPE), 0, 255)
    return a, b, f


def job(name: str):
    """(the function to time, a description of its result)."""
    if name == "registration":
        from medarena.evaluators.registration import TASK, RegistrationSettings

        ref, pred = registration_case()
        settings = RegistrationSettings()
        return lambda: TASK.score_case(ref, pred, settings).rows[0]["sdlogj"]
    if name == "sitk_jacobian":
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(make_field().astype(np.float64), isVector=True)

        def jacobian_std() -> float:
            jacobian = sitk.DisplacementFieldJacobianDeterminant(image)  # kept alive while viewed
            return float(sitk.GetArrayViewFromImage(jacobian).std())

        return jacobian_std
    if name == "sitk_points":
        import SimpleITK as sitk

        ref, pred = registration_case()
        image = sitk.GetImageFromArray(pred["field"].array.astype(np.float64), isVector=True)
        transform = sitk.DisplacementFieldTransform(image)
        points = [tuple(p) for p in ref["fixed_landmarks"][:, ::-1]]
        return lambda: len([transform.TransformPoint(p) for p in points])
    if name == "fusion":
        from medarena.evaluators.fusion import fusion_metrics

        a, b, f = fusion_images()
        return lambda: fusion_metrics(a, b, f)["vif"]
    if name == "skimage_ssim":
        from skimage.metrics import structural_similarity

        a, b, f = fusion_images()
        kw = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": 255}
        return lambda: structural_similarity(a, f, **kw) + structural_similarity(b, f, **kw)
    if name == "sewar_vifp":
        from sewar.full_ref import vifp

        a, b, f = fusion_images()
        return lambda: vifp(a, f) + vifp(b, f)
    raise ValueError(name)


def child(name: str, repeats: int) -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    run = job(name)
    run()  # warm-up (imports, caches)
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"name": name, "median_s": statistics.median(times), "min_s": min(times),
                      "cpu_s": statistics.median(cpu), "peak_rss_mb": peak_mb}))


def measure(name: str, repeats: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS="1", SITK_NUM_THREADS="1")
    out = subprocess.run([sys.executable, __file__, "--child", name, "--repeats", str(repeats)],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child")
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.repeats)
        return
    rows = [
        ("registration", f"medarena TRE ({N_LANDMARKS} landmarks) + SDlogJ + folding, 256³ field"),
        ("sitk_jacobian", "SimpleITK DisplacementFieldJacobianDeterminant, 256³ (Jacobian only)"),
        ("sitk_points", f"SimpleITK DisplacementFieldTransform, {N_LANDMARKS} TransformPoint calls"),
        ("fusion", "medarena fusion, all twelve metrics, 1024²"),
        ("skimage_ssim", "scikit-image SSIM A-F + B-F, 1024²"),
        ("sewar_vifp", "sewar vifp A-F + B-F, 1024²"),
    ]
    print("| what | median s | min s | CPU s | peak RSS MB |\n|---|---|---|---|---|")
    for name, label in rows:
        if args.only and name not in args.only:
            continue
        r = measure(name, args.repeats)
        print(f"| {label} | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['cpu_s']:.3f} | {r['peak_rss_mb']:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
