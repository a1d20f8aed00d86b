"""Windowed comparisons of two images: SSIM (Gaussian window) and pixel-domain VIF (four scales).

Definitions: :mod:`medarena.evaluators.fusion`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

DATA_RANGE = 255.0


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


SSIM_WINDOW = _gaussian_window(11, 1.5)


def local_mean_variance(x: np.ndarray, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = _filter_valid(x, window)
    return mean, _filter_valid(x * x, window) - mean * mean


def ssim_pair(x: np.ndarray, y: np.ndarray, data_range: float = DATA_RANGE) -> float:
    """Mean structural similarity SSIM(X, Y) with an 11 × 11 Gaussian window, σ = 1.5.

    SSIM = mean over the positions where the window fits of
    (2 μ_x μ_y + C1)(2 σ_xy + C2) / ((μ_x² + μ_y² + C1)(σ_x² + σ_y² + C2)), C1 = (0.01 L)²,
    C2 = (0.03 L)², population (co)variances.

    Parameters
    ----------
    x, y : numpy.ndarray
        Two images of one shape, 2D.
    data_range : float
        L, 255 for gray levels.

    Returns
    -------
    float
        At most 1; NaN when the image is smaller than the window.

    References
    ----------
    Wang et al., IEEE TIP 13:600 (2004); equal to scikit-image 0.26.0
    ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`` and
    sewar 0.4.10 (checked in the tests); docs/metrics.md, section Fusion.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).integers(0, 256, (32, 32)).astype(float)
    >>> round(ssim_pair(x, x), 6)
    1.0
    """
    y = np.asarray(y, dtype=np.float64)
    if min(y.shape) < SSIM_WINDOW.size:
        return float("nan")
    return ssim_with(np.asarray(x, dtype=np.float64), y, local_mean_variance(y, SSIM_WINDOW), data_range)


def ssim_with(x: np.ndarray, y: np.ndarray, y_stats: tuple[np.ndarray, np.ndarray], data_range: float) -> float:
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    my, vy = y_stats
    mx, vx = local_mean_variance(x, SSIM_WINDOW)
    mxy = mx * my
    cxy = _filter_valid(x * y, SSIM_WINDOW) - mxy
    num = (2 * mxy + c1) * (2 * cxy + c2)
    den = (mx * mx + my * my + c1) * (vx + vy + c2)
    return float((num / den).mean())


def vif_pair(reference: np.ndarray, distorted: np.ndarray, sigma_nsq: float = 2.0) -> float:
    """Pixel-domain visual information fidelity VIFp(R, D) over four scales.

    At scale k = 1..4 a Gaussian window of N = 2^(5−k) + 1 pixels, σ = N / 5, gives local variances
    σ_R², σ_D² and covariance σ_RD ("valid" positions; from scale 2 on both images are first filtered
    with that window and subsampled by 2). With g = σ_RD / σ_R² and σ_V² = σ_D² − g σ_RD (g = 0 and
    σ_V² = σ_D² where σ_R² < 1e-10; g = 0, σ_V² = 0 where σ_D² < 1e-10; g < 0 gives g = 0,
    σ_V² = σ_D²; σ_V² ≥ 1e-10):
    VIF = Σ log(1 + g² σ_R² / (σ_V² + σ_n²)) / Σ log(1 + σ_R² / σ_n²).

    Parameters
    ----------
    reference, distorted : numpy.ndarray
        Two images of one shape, 2D.
    sigma_nsq : float
        σ_n², the noise variance of the visual channel (2, as the reference code).

    Returns
    -------
    float
        About 1 for identical images; NaN when the denominator is 0 (a constant reference).

    References
    ----------
    Sheikh & Bovik, IEEE TIP 15:430 (2006); equal to sewar 0.4.10 ``full_ref.vifp`` (checked in
    the tests); docs/metrics.md, section Fusion.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).integers(0, 256, (32, 32)).astype(float)
    >>> round(vif_pair(x, x), 4)
    1.0
    """
    return vif_with(vif_scales(reference), vif_scales(distorted), sigma_nsq)


def vif_scales(image: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
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
        mean, variance = local_mean_variance(x, w)
        scales.append((x, w, mean, np.maximum(variance, 0)))
    return scales


def vif_with(ref_scales: list, dist_scales: list, sigma_nsq: float) -> float:
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
