"""Image-fusion metrics: sources A and B, fused image F (2D, or slice by slice for 3D).

Definitions follow the VIFB benchmark (Zhang et al., "VIFB: a visible and infrared image fusion
benchmark", CVPR Workshops 2020) where VIFB defines the metric (EN, SD, SF, AG, MI, Q^AB/F, SSIM,
PSNR, RMSE); CC, SCD and VIF are not in VIFB and follow their original papers. Choices where the
references disagree, made once here:

- **Intensity scale**: every metric sees gray levels on [0, 255] (VIFB works on 8-bit images):
  the data range L of PSNR and SSIM is 255, EN and MI histogram 256 levels of width 1 (values are
  rounded to the nearest level for them only). Other inputs are mapped to that scale by the task
  setting ``intensity_range`` (:class:`FusionSettings`).
- **Log base**: bits (log2) for EN and MI.
- **Window**: SSIM with an 11 × 11 Gaussian window, σ = 1.5, K = (0.01, 0.03), averaged over the
  positions where the window fits ("valid"), as Wang et al.'s reference code and scikit-image.
- **Two sources**: MI, SSIM, SCD and VIF add the A and B terms; CC and RMSE average them; PSNR
  uses the mean of the two MSEs.
- **Colour**: an RGB image is converted to gray first, 0.2989 R + 0.5870 G + 0.1140 B (MATLAB's
  ``rgb2gray``, as VIFB's gray-level metrics).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

METRICS = ("en", "sd", "sf", "ag", "mi", "qabf", "ssim", "psnr", "rmse", "cc", "scd", "vif")
GRAY_LEVELS = 256
DATA_RANGE = 255.0


# --- single-image metrics -------------------------------------------------------------------------

def entropy(image: np.ndarray) -> float:
    """EN = −Σ_l p_l log2 p_l over the 256-level histogram of F (levels: values rounded, clipped
    to 0..255). 0 for a constant image; at most 8 bits. Reference: VIFB (Zhang et al. 2020)."""
    counts = np.bincount(_levels(image).ravel(), minlength=GRAY_LEVELS)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def standard_deviation(image: np.ndarray) -> float:
    """SD = sqrt(Σ (F − μ)² / (M N)), the population standard deviation. Reference: VIFB."""
    return float(np.asarray(image, dtype=np.float64).std())


def spatial_frequency(image: np.ndarray) -> float:
    """SF = sqrt(RF² + CF²), RF² = mean over rows of (F[i, j] − F[i, j−1])², CF² = mean over
    columns of (F[i, j] − F[i−1, j])²; each mean is over the differences that exist
    (M (N−1) and (M−1) N). Reference: VIFB; Eskicioglu & Fisher, IEEE Trans. Commun. 1995."""
    f = np.asarray(image, dtype=np.float64)
    rf = np.mean(np.diff(f, axis=1) ** 2) if f.shape[1] > 1 else 0.0
    cf = np.mean(np.diff(f, axis=0) ** 2) if f.shape[0] > 1 else 0.0
    return float(math.sqrt(rf + cf))


def average_gradient(image: np.ndarray) -> float:
    """AG = (1 / (M N)) Σ sqrt((∇_x F² + ∇_y F²) / 2), gradients by central differences (one-sided
    at the border, MATLAB's ``gradient`` / ``numpy.gradient``). Reference: VIFB."""
    f = np.asarray(image, dtype=np.float64)
    if min(f.shape) < 2:
        return 0.0
    gy, gx = np.gradient(f)
    return float(np.mean(np.sqrt((gx * gx + gy * gy) / 2)))


# --- two-image building blocks ---------------------------------------------------------------------

def mutual_information(x: np.ndarray, y: np.ndarray) -> float:
    """MI(X, Y) = Σ p(x, y) log2(p(x, y) / (p(x) p(y))) over the 256 × 256-level joint histogram,
    in bits. Reference: Qu et al., Electronics Letters 2002; VIFB."""
    joint = np.bincount((_levels(x).astype(np.int64) * GRAY_LEVELS + _levels(y)).ravel(),
                        minlength=GRAY_LEVELS * GRAY_LEVELS).reshape(GRAY_LEVELS, GRAY_LEVELS)
    p = joint / joint.sum()
    px, py = p.sum(axis=1), p.sum(axis=0)
    nz = p > 0
    return float((p[nz] * np.log2(p[nz] / np.outer(px, py)[nz])).sum())


def _gaussian_window(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    w = np.exp(-(x * x) / (2 * sigma * sigma))
    return w / w.sum()


def _filter_valid(image: np.ndarray, window: np.ndarray, step: int = 1) -> np.ndarray:
    """Correlation with the separable window ``outer(window, window)`` where it fits entirely,
    every ``step``-th row and column of that result."""
    n = window.size
    lo, hi = n // 2, n - 1 - n // 2
    # both passes run along contiguous rows (a pass across rows is several times slower); the
    # columns the second pass does not need are dropped before it
    out = ndimage.correlate1d(image, window, axis=1, mode="constant")[:, lo: image.shape[1] - hi: step]
    out = ndimage.correlate1d(np.ascontiguousarray(out.T), window, axis=1, mode="constant")
    return out[:, lo: image.shape[0] - hi: step].T


_SSIM_WINDOW = _gaussian_window(11, 1.5)


def _local_mean_variance(x: np.ndarray, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = _filter_valid(x, window)
    return mean, _filter_valid(x * x, window) - mean * mean


def ssim_pair(x: np.ndarray, y: np.ndarray, data_range: float = DATA_RANGE) -> float:
    """Mean SSIM (Wang et al., IEEE TIP 2004): 11 × 11 Gaussian window, σ = 1.5,
    C1 = (0.01 L)², C2 = (0.03 L)², population (co)variances, mean over the valid positions:
    SSIM = mean of (2 μ_x μ_y + C1)(2 σ_xy + C2) / ((μ_x² + μ_y² + C1)(σ_x² + σ_y² + C2)).
    NaN when the image is smaller than the window. The same as
    ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=L)``."""
    y = np.asarray(y, dtype=np.float64)
    if min(y.shape) < _SSIM_WINDOW.size:
        return float("nan")
    return _ssim_with(np.asarray(x, dtype=np.float64), y, _local_mean_variance(y, _SSIM_WINDOW), data_range)


def _ssim_with(x: np.ndarray, y: np.ndarray, y_stats: tuple[np.ndarray, np.ndarray], data_range: float) -> float:
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    my, vy = y_stats
    mx, vx = _local_mean_variance(x, _SSIM_WINDOW)
    mxy = mx * my
    cxy = _filter_valid(x * y, _SSIM_WINDOW) - mxy
    num = (2 * mxy + c1) * (2 * cxy + c2)
    den = (mx * mx + my * my + c1) * (vx + vy + c2)
    return float((num / den).mean())


def vif_pair(reference: np.ndarray, distorted: np.ndarray, sigma_nsq: float = 2.0) -> float:
    """Pixel-domain visual information fidelity VIFp (Sheikh & Bovik, IEEE TIP 2006), four scales.

    At scale k = 1..4 a Gaussian window of N = 2^(5−k) + 1 pixels, σ = N / 5, gives local
    variances σ_R², σ_D², covariance σ_RD ("valid" positions; from scale 2 on both images are first
    filtered with that window and subsampled by 2). With g = σ_RD / σ_R² and σ_V² = σ_D² − g σ_RD
    (g = 0 and σ_V² = σ_D² where σ_R² < 1e-10; g = 0, σ_V² = 0 where σ_D² < 1e-10; g < 0 → g = 0,
    σ_V² = σ_D²; σ_V² ≥ 1e-10):
    VIF = Σ log(1 + g² σ_R² / (σ_V² + σ_n²)) / Σ log(1 + σ_R² / σ_n²), σ_n² = 2.
    NaN when the denominator is 0 (a constant reference). The same as ``sewar.full_ref.vifp``.
    """
    return _vif_with(_vif_scales(reference), _vif_scales(distorted), sigma_nsq)


def _vif_scales(image: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per scale: (image at that scale, window, local mean, local variance clipped at 0)."""
    x = np.asarray(image, dtype=np.float64)
    scales = []
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        w = _gaussian_window(n, n / 5.0)
        if scale > 1:
            x = _filter_valid(x, w, step=2)
        if min(x.shape) < n:
            break
        mean, variance = _local_mean_variance(x, w)
        scales.append((x, w, mean, np.maximum(variance, 0)))
    return scales


def _vif_with(ref_scales: list, dist_scales: list, sigma_nsq: float) -> float:
    eps = 1e-10
    num = den = 0.0
    for (ref, w, mu1, s1), (dist, _, mu2, s2) in zip(ref_scales, dist_scales, strict=False):
        s12 = _filter_valid(ref * dist, w)
        s12 -= mu1 * mu2
        flat_ref, flat_dist = s1 < eps, s2 < eps
        g = s12 / (s1 + eps)
        sv = s2 - g * s12
        # the rules in the order of the reference code: a flat reference, then a flat distorted
        # image, then a negative gain
        sv = np.where(flat_ref, s2, sv)
        g[flat_ref | flat_dist] = 0
        sv[flat_dist] = 0
        negative = g < 0
        sv = np.where(negative, s2, sv)
        g[negative] = 0
        np.maximum(sv, eps, out=sv)
        s1 = np.where(flat_ref, 0.0, s1)
        sv += sigma_nsq
        num += float(np.log10(1 + g * g * s1 / sv).sum())
        den += float(np.log10(1 + s1 / sigma_nsq).sum())
    return num / den if den > 0 else float("nan")


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation r = Σ(x − x̄)(y − ȳ) / sqrt(Σ(x − x̄)² Σ(y − ȳ)²); NaN for a constant image."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    xc, yc = x - x.mean(), y - y.mean()
    den = math.sqrt(float(xc @ xc) * float(yc @ yc))
    return float(xc @ yc) / den if den > 0 else float("nan")


# --- fusion metrics on A, B, F ----------------------------------------------------------------------

def fusion_mi(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """MI = MI(A, F) + MI(B, F), bits. Reference: Qu et al. 2002; VIFB."""
    return mutual_information(a, f) + mutual_information(b, f)


def fusion_ssim(a: np.ndarray, b: np.ndarray, f: np.ndarray, data_range: float = DATA_RANGE) -> float:
    """SSIM = SSIM(A, F) + SSIM(B, F) (METRICS.md), each by :func:`ssim_pair`."""
    f = np.asarray(f, dtype=np.float64)
    if min(f.shape) < _SSIM_WINDOW.size:
        return float("nan")
    f_stats = _local_mean_variance(f, _SSIM_WINDOW)
    return (_ssim_with(np.asarray(a, dtype=np.float64), f, f_stats, data_range)
            + _ssim_with(np.asarray(b, dtype=np.float64), f, f_stats, data_range))


def _mse(x: np.ndarray, y: np.ndarray) -> float:
    d = np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    return float(np.mean(d * d))


def fusion_psnr(a: np.ndarray, b: np.ndarray, f: np.ndarray, data_range: float = DATA_RANGE) -> float:
    """PSNR = 10 log10(L² / MSE), MSE = (MSE(A, F) + MSE(B, F)) / 2; ``inf`` when MSE = 0.
    Reference: VIFB."""
    mse = (_mse(a, f) + _mse(b, f)) / 2
    return float("inf") if mse == 0 else 10 * math.log10(data_range ** 2 / mse)


def fusion_rmse(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """RMSE = (sqrt(MSE(A, F)) + sqrt(MSE(B, F))) / 2. Reference: VIFB."""
    return (math.sqrt(_mse(a, f)) + math.sqrt(_mse(b, f))) / 2


def fusion_cc(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """CC = (r(A, F) + r(B, F)) / 2, Pearson correlations. Reference: Ma et al., Information Fusion
    2019 (not defined by VIFB). NaN when an image is constant."""
    return (pearson(a, f) + pearson(b, f)) / 2


def fusion_scd(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """SCD = r(F − B, A) + r(F − A, B), the sum of the correlations of differences (Aslantas &
    Bendes, AEU 2015). NaN when a term is undefined (a constant image or difference)."""
    f = np.asarray(f, dtype=np.float64)
    return pearson(f - b, a) + pearson(f - a, b)


def fusion_vif(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """VIF = VIFp(A, F) + VIFp(B, F), each source the reference (:func:`vif_pair`; Sheikh & Bovik
    2006). Pixel-domain VIF, as commonly reported for fusion; Han et al.'s VIFF is a different metric."""
    f_scales = _vif_scales(f)
    return _vif_with(_vif_scales(a), f_scales, 2.0) + _vif_with(_vif_scales(b), f_scales, 2.0)


def _sobel(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sobel responses, correlation with [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]] (s_x) and its
    transpose (s_y), zero padding (MATLAB's ``filter2(h, F, 'same')``)."""
    p = np.pad(image, 1)
    across = p[:, 2:] - p[:, :-2]  # (H + 2, W)
    sx = across[:-2] + across[2:]
    sx += 2 * across[1:-1]
    down = p[2:] - p[:-2]  # (H, W + 2)
    sy = down[:, :-2] + down[:, 2:]
    sy += 2 * down[:, 1:-1]
    return sx, sy


def _strength_orientation(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sx, sy = _sobel(np.asarray(image, dtype=np.float64))
    g = np.sqrt(sx * sx + sy * sy)
    sx[sx == 0] = 1e-5  # α = atan(s_y / s_x) with s_x = 0 read as its limit, ±π/2 (0 when s_y = 0)
    return g, np.arctan(sy / sx)


def _edge_preservation(g_x: np.ndarray, a_x: np.ndarray, g_f: np.ndarray, a_f: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(g_x > g_f, g_f / g_x, g_x / g_f)
    g[(g_x == 0) | (g_f == 0)] = 0
    a = np.abs(np.abs(a_x - a_f) - np.pi / 2) * (2 / np.pi)
    q_g = 0.9994 / (1 + np.exp(-15 * (g - 0.5)))
    q_a = 0.9879 / (1 + np.exp(-22 * (a - 0.8)))
    return q_g * q_a


def qabf(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Xydeas–Petrović edge preservation Q^AB/F (Electronics Letters 2000).

    Sobel responses (zero padding) give edge strength g = sqrt(s_x² + s_y²) and orientation
    α = atan(s_y / s_x). For a source X: relative strength G^XF = g_F/g_X if g_X > g_F else g_X/g_F
    (0 where either is 0), relative orientation A^XF = | |α_X − α_F| − π/2 | · 2/π (orientations
    equal modulo π count as equal; the paper's 1 − |α_X − α_F|/(π/2) is this for |Δα| ≤ π/2),
    Q^XF = Γ_g / (1 + e^{κ_g (G^XF − σ_g)}) · Γ_α / (1 + e^{κ_α (A^XF − σ_α)}) with Γ_g = 0.9994,
    κ_g = −15, σ_g = 0.5, Γ_α = 0.9879, κ_α = −22, σ_α = 0.8.
    Q^AB/F = Σ(Q^AF g_A + Q^BF g_B) / Σ(g_A + g_B) (weights w = g^L, L = 1); NaN without edges.
    """
    g_a, a_a = _strength_orientation(a)
    g_b, a_b = _strength_orientation(b)
    g_f, a_f = _strength_orientation(f)
    den = float(g_a.sum() + g_b.sum())
    if den == 0:
        return float("nan")
    num = float((_edge_preservation(g_a, a_a, g_f, a_f) * g_a).sum()
                + (_edge_preservation(g_b, a_b, g_f, a_f) * g_b).sum())
    return num / den


def _levels(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(image, dtype=np.float64)), 0, GRAY_LEVELS - 1).astype(np.int64)


METRIC_FUNCTIONS = {
    "en": lambda a, b, f: entropy(f),
    "sd": lambda a, b, f: standard_deviation(f),
    "sf": lambda a, b, f: spatial_frequency(f),
    "ag": lambda a, b, f: average_gradient(f),
    "mi": fusion_mi,
    "qabf": qabf,
    "ssim": fusion_ssim,
    "psnr": fusion_psnr,
    "rmse": fusion_rmse,
    "cc": fusion_cc,
    "scd": fusion_scd,
    "vif": fusion_vif,
}


def fusion_metrics(a: np.ndarray, b: np.ndarray, f: np.ndarray, metrics: Sequence[str] = METRICS) -> dict[str, float]:
    """The chosen metrics of 2D gray images A, B, F on the 0..255 scale (one shape)."""
    return {m: float(METRIC_FUNCTIONS[m](a, b, f)) for m in metrics}
