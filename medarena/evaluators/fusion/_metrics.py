"""Image-fusion metrics: sources A and B, fused image F (2D, or slice by slice for 3D).

The benchmark followed is VIFB (Zhang et al., "VIFB: a visible and infrared image fusion
benchmark", CVPR Workshops 2020), whose MATLAB code (github.com/xingchenzhang/VIFB, ``metrics/``,
checked at commit 22b2ea9d91499cc5962d9bdcae9c290270f0fade) defines nine of the twelve metrics;
CC, SCD and VIF are not in VIFB and follow their original papers. Where medarena departs from
VIFB's code, the entry below says how and why. Definitions in full: docs/metrics.md, section Fusion.

Shared choices:

- **Intensity scale**: every metric sees gray levels on [0, 255] (VIFB works on 8-bit images):
  the data range L of PSNR and SSIM is 255; EN and MI histogram 256 levels of width 1. Other inputs
  are mapped to that scale once for all three images by the task setting ``intensity_range``.
- **Colour**: an RGB image is converted to gray first, 0.2989 R + 0.5870 G + 0.1140 B (MATLAB's
  ``rgb2gray``). *VIFB* scores an RGB fused image band by band and averages the bands; one gray
  image is what the gray sources of a medical fusion task are compared with.
- **Two sources**: MI, SSIM, SCD and VIF add the A and B terms; CC and RMSE average them; PSNR
  uses the mean of the two MSEs (as VIFB does for MI, SSIM, RMSE and PSNR).

The twelve metrics (``fusion_metrics`` names):

- ``en`` entropy −Σ p_l log2 p_l of F's 256-level histogram, in bits. *VIFB* takes the level
  ``floor(F)``; medarena rounds to the nearest level (the same on 8-bit images; on mapped
  intensities flooring would shift every value down by half a level on average).
- ``sd`` standard deviation of F, population (divided by M N), as VIFB's ``metricsVariance``.
- ``sf`` spatial frequency sqrt(RF² + CF²), RF² and CF² the mean squared differences of
  horizontal and vertical neighbours. *VIFB* divides both sums by M N; medarena divides each by
  the number of differences, M (N−1) and (M−1) N, so a ramp of slope 1 has SF = 1 whatever the
  image size (VIFB: sqrt((N−1)/N) for a horizontal ramp). VIFB also reads an RGB F as one image
  of 3 N columns.
- ``ag`` average gradient: the mean over the M N pixels of sqrt((∂_x F² + ∂_y F²) / 2), central
  differences inside and one-sided at the border (MATLAB's ``gradient``, ``numpy.gradient``).
  *VIFB* divides the sum over the M N pixels by (M−1)(N−1); medarena takes the mean over the
  pixels it sums, so a ramp of slope 1 has AG = 1/√2 whatever its size (VIFB's value is
  M N / ((M−1)(N−1)) times medarena's).
- ``mi`` MI(A, F) + MI(B, F) over 256 × 256-level joint histograms, in **bits** (log2).
  *VIFB* uses the natural log (nats) and first stretches each image by itself to its own
  [min, max] before binning it into 256 levels; medarena bins the gray levels as they are (the
  task maps all three images with one ``intensity_range``, so the same intensity falls in the same
  bin in A, B and F) and reports bits, the unit of EN and of Qu et al. (2002). On 8-bit images that
  each span 0..255, VIFB's MI = medarena's MI × ln 2.
- ``qabf`` Xydeas–Petrović Q^AB/F (Electronics Letters 36:308, 2000) with Sobel gradients (zero
  padding): see :func:`qabf`. *VIFB* sets the orientation α = π/2 wherever s_x = 0, so a flat
  pixel (s_x = s_y = 0) looks like a vertical edge and s_y < 0 gets +π/2; medarena takes the limit
  of atan(s_y / s_x), ±π/2 by the sign of s_y and 0 on a flat pixel, and compares orientations
  modulo π (an edge and its reverse are one edge; the paper's 1 − |Δα|/(π/2) for |Δα| ≤ π/2).
  VIFB's relative strength is g_F (not 1) where g_A = g_F, a slip in its code; medarena uses the
  paper's ratio (1, and 0 where either strength is 0).
- ``ssim`` SSIM(A, F) + SSIM(B, F), 11 × 11 Gaussian window, σ = 1.5, K = (0.01, 0.03), L = 255,
  the mean over the positions where the window fits: as VIFB's ``metricsSsim`` (and Wang et al.'s
  reference code, scikit-image 0.26.0 and sewar 0.4.10, checked in the tests).
- ``psnr`` 10 log10(L² / MSE), MSE = (MSE(A, F) + MSE(B, F)) / 2 with the standard
  MSE = mean((X − F)²). *VIFB*'s ``mse`` is sqrt(Σ(X − F)²) / (M N), a norm divided by the
  pixel count that shrinks as 1/sqrt(M N) with the image size and is no mean squared error, and
  its PSNR is 20 log10(255 / sqrt of the mean of those); medarena's equals scikit-image's and
  sewar's PSNR for one source.
- ``rmse`` (sqrt(MSE(A, F)) + sqrt(MSE(B, F))) / 2 with the standard MSE; *VIFB* averages its
  ``mse`` above instead (the same departure and reason as PSNR).
- ``cc`` (r(A, F) + r(B, F)) / 2, Pearson correlations (Ma et al., Information Fusion 45:153,
  2019); not in VIFB.
- ``scd`` r(F − B, A) + r(F − A, B), the sum of the correlations of differences (Aslantas &
  Bendes, AEU 69:1890, 2015); not in VIFB.
- ``vif`` VIFp(A, F) + VIFp(B, F), pixel-domain visual information fidelity with each source as the
  reference (Sheikh & Bovik, IEEE TIP 15:430, 2006), equal to sewar 0.4.10's ``vifp`` (checked in
  the tests); not in VIFB (Han et al.'s VIFF is a different metric).
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
    """Entropy EN = −Σ_l p_l log2 p_l over the 256-level histogram of F (values rounded to the
    nearest level, clipped to 0..255).

    Parameters
    ----------
    image : numpy.ndarray
        The fused image F, 2D, gray levels on [0, 255].

    Returns
    -------
    float
        In bits, 0 for a constant image, at most 8.

    References
    ----------
    VIFB (Zhang et al., CVPR Workshops 2020; code at 22b2ea9) ``metricsEntropy``, rounding instead
    of its floor (module docstring); docs/metrics.md, section Fusion.

    Examples
    --------
    >>> import numpy as np
    >>> half = np.array([[0.0, 0.0, 255.0, 255.0]] * 4)  # two levels, half the pixels each
    >>> entropy(half)
    1.0
    """
    counts = np.bincount(_levels(image).ravel(), minlength=GRAY_LEVELS)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def standard_deviation(image: np.ndarray) -> float:
    """Standard deviation SD = sqrt(Σ (F − μ)² / (M N)) (population).

    Parameters
    ----------
    image : numpy.ndarray
        The fused image F, 2D, gray levels on [0, 255].

    Returns
    -------
    float
        In gray levels.

    References
    ----------
    VIFB (Zhang et al., CVPR Workshops 2020; code at 22b2ea9) ``metricsVariance``; docs/metrics.md, section Fusion.

    Examples
    --------
    >>> import numpy as np
    >>> half = np.array([[0.0, 0.0, 255.0, 255.0]] * 4)  # two levels, half the pixels each
    >>> standard_deviation(half)
    127.5
    """
    return float(np.asarray(image, dtype=np.float64).std())


def spatial_frequency(image: np.ndarray) -> float:
    """Spatial frequency SF = sqrt(RF² + CF²).

    RF² is the mean of (F[i, j] − F[i, j−1])² over the M (N−1) horizontal neighbours, CF² the mean
    of (F[i, j] − F[i−1, j])² over the (M−1) N vertical ones (VIFB divides both sums by M N).

    Parameters
    ----------
    image : numpy.ndarray
        The fused image F, 2D, gray levels on [0, 255].

    Returns
    -------
    float
        In gray levels per pixel.

    References
    ----------
    Eskicioglu & Fisher, IEEE Trans. Commun. 43:2959 (1995); VIFB (Zhang et al., CVPR Workshops 2020; code at 22b2ea9)
    ``metricsSpatial_frequency``, departed from in the denominators (module docstring); docs/metrics.md, section Fusion.

    Examples
    --------
    >>> import numpy as np
    >>> ramp = np.tile(np.arange(5.0), (3, 1))  # each row 0, 1, 2, 3, 4
    >>> spatial_frequency(ramp)  # every horizontal difference is 1, every vertical one 0
    1.0
    """
    f = np.asarray(image, dtype=np.float64)
    rf = np.mean(np.diff(f, axis=1) ** 2) if f.shape[1] > 1 else 0.0
    cf = np.mean(np.diff(f, axis=0) ** 2) if f.shape[0] > 1 else 0.0
    return float(math.sqrt(rf + cf))


def average_gradient(image: np.ndarray) -> float:
    """Average gradient AG = (1 / (M N)) Σ sqrt((∂_x F² + ∂_y F²) / 2).

    Gradients by central differences, one-sided at the border (MATLAB's ``gradient``,
    ``numpy.gradient``); VIFB divides the same sum by (M−1)(N−1).

    Parameters
    ----------
    image : numpy.ndarray
        The fused image F, 2D, gray levels on [0, 255].

    Returns
    -------
    float
        In gray levels per pixel; 0 for an image thinner than 2 pixels.

    References
    ----------
    VIFB (Zhang et al., CVPR Workshops 2020; code at 22b2ea9) ``metricsAvg_gradient``, departed from in the
    denominator (module docstring); docs/metrics.md, section Fusion.

    Examples
    --------
    >>> import numpy as np
    >>> ramp = np.tile(np.arange(5.0), (3, 1))  # each row 0, 1, 2, 3, 4
    >>> round(average_gradient(ramp), 4)  # sqrt(1 / 2) at every pixel
    0.7071
    """
    f = np.asarray(image, dtype=np.float64)
    if min(f.shape) < 2:
        return 0.0
    gy, gx = np.gradient(f)
    return float(np.mean(np.sqrt((gx * gx + gy * gy) / 2)))


# --- two-image building blocks ---------------------------------------------------------------------

def mutual_information(x: np.ndarray, y: np.ndarray) -> float:
    """Mutual information MI(X, Y) = Σ p(x, y) log2(p(x, y) / (p(x) p(y))) over the 256 × 256-level
    joint histogram (values rounded to the nearest level, clipped to 0..255).

    Parameters
    ----------
    x, y : numpy.ndarray
        Two images of one shape, gray levels on [0, 255].

    Returns
    -------
    float
        In bits; 0 when either image is constant.

    References
    ----------
    Qu et al., Electronics Letters 38:313 (2002); VIFB (Zhang et al., CVPR Workshops 2020; code at
    22b2ea9) ``metricsMutinf``, departed from in the log base and the stretching (module docstring);
    docs/metrics.md, section Fusion.

    Examples
    --------
    >>> import numpy as np
    >>> half = np.array([[0.0, 0.0, 255.0, 255.0]] * 4)
    >>> mutual_information(half, half), mutual_information(half, np.zeros((4, 4)))
    (1.0, 0.0)
    """
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
    """MI = MI(A, F) + MI(B, F), by :func:`mutual_information`.

    Parameters
    ----------
    a, b, f : numpy.ndarray
        Sources A and B and the fused image F, 2D, one shape, gray levels on [0, 255].

    Returns
    -------
    float
        In bits.

    References
    ----------
    Qu et al., Electronics Letters 38:313 (2002); VIFB (Zhang et al., CVPR Workshops 2020; code at
    22b2ea9) ``metricsMutinf``
    (module docstring for the departures); docs/metrics.md, section Fusion.

    Examples
    --------
    >>> import numpy as np
    >>> half = np.array([[0.0, 0.0, 255.0, 255.0]] * 4)  # two levels, half the pixels each
    >>> fusion_mi(half, np.zeros((4, 4)), half)  # 1 bit from A, none from the constant B
    1.0
    """
    return mutual_information(a, f) + mutual_information(b, f)


def fusion_ssim(a: np.ndarray, b: np.ndarray, f: np.ndarray, data_range: float = DATA_RANGE) -> float:
    """SSIM = SSIM(A, F) + SSIM(B, F), each by :func:`ssim_pair`.

    Parameters
    ----------
    a, b, f : numpy.ndarray
        Sources A and B and the fused image F, 2D, one shape, gray levels on [0, 255].
    data_range : float
        L, 255 for gray levels.

    Returns
    -------
    float
        At most 2; NaN when F is smaller than the window.

    References
    ----------
    VIFB (Zhang et al., CVPR Workshops 2020; code at 22b2ea9) ``metricsSsim``; Wang et al., IEEE TIP
    13:600 (2004); docs/metrics.md, section Fusion.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).integers(0, 256, (32, 32)).astype(float)
    >>> round(fusion_ssim(x, x, x), 6)
    2.0
    """
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
    """PSNR = 10 log10(L² / MSE), MSE = (MSE(A, F) + MSE(B, F)) / 2, MSE(X, F) = mean((X − F)²).

    Parameters
    ----------
    a, b, f : numpy.ndarray
        Sources A and B and the fused image F, 2D, one shape, gray levels on [0, 255].
    data_range : float
        L, 255 for gray levels.

    Returns
    -------
    float
        In dB; ``inf`` when MSE = 0.

    References
    ----------
    VIFB (Zhang et al., CVPR Workshops 2020; code at 22b2ea9) ``metricsPsnr``, departed from in its
    MSE (module docstring);
    scikit-image 0.26.0 and sewar 0.4.10 for one source (checked in the tests); docs/metrics.md, section Fusion.

    Examples
    --------
    >>> import numpy as np
    >>> zeros, tens = np.zeros((4, 4)), np.full((4, 4), 10.0)
    >>> round(fusion_psnr(zeros, zeros, tens), 4)  # 10 log10(255² / 100)
    28.1308
    """
    mse = (_mse(a, f) + _mse(b, f)) / 2
    return float("inf") if mse == 0 else 10 * math.log10(data_range ** 2 / mse)


def fusion_rmse(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """RMSE = (sqrt(MSE(A, F)) + sqrt(MSE(B, F))) / 2, MSE(X, F) = mean((X − F)²).

    Parameters
    ----------
    a, b, f : numpy.ndarray
        Sources A and B and the fused image F, 2D, one shape, gray levels on [0, 255].

    Returns
    -------
    float
        In gray levels.

    References
    ----------
    VIFB (Zhang et al., CVPR Workshops 2020; code at 22b2ea9) ``metricsRmse``, departed from in its
    MSE (module docstring); docs/metrics.md, section Fusion.

    Examples
    --------
    >>> import numpy as np
    >>> zeros = np.zeros((4, 4))
    >>> fusion_rmse(zeros, np.full((4, 4), 20.0), np.full((4, 4), 10.0))  # (10 + 10) / 2
    10.0
    """
    return (math.sqrt(_mse(a, f)) + math.sqrt(_mse(b, f))) / 2


def fusion_cc(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """CC = (r(A, F) + r(B, F)) / 2, r the Pearson correlation.

    Parameters
    ----------
    a, b, f : numpy.ndarray
        Sources A and B and the fused image F, 2D, one shape, gray levels on [0, 255].

    Returns
    -------
    float
        In [−1, 1]; NaN when an image is constant.

    References
    ----------
    Ma et al., Information Fusion 45:153 (2019) (not in VIFB); docs/metrics.md, section Fusion.

    Examples
    --------
    >>> import numpy as np
    >>> ramp = np.tile(np.arange(5.0), (3, 1))  # each row 0, 1, 2, 3, 4
    >>> fusion_cc(ramp, 2 * ramp, ramp + 1)  # F is a linear function of A and of B
    1.0
    """
    return (pearson(a, f) + pearson(b, f)) / 2


def fusion_scd(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """SCD = r(F − B, A) + r(F − A, B), the sum of the correlations of differences.

    Parameters
    ----------
    a, b, f : numpy.ndarray
        Sources A and B and the fused image F, 2D, one shape, gray levels on [0, 255].

    Returns
    -------
    float
        In [−2, 2]; NaN when a term is undefined (a constant image or difference).

    References
    ----------
    Aslantas & Bendes, AEU 69:1890 (2015) (not in VIFB); docs/metrics.md, section Fusion.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.tile(np.arange(4.0), (4, 1)); b = a.T.copy()
    >>> fusion_scd(a, b, a + b)  # F − B is A and F − A is B
    2.0
    """
    f = np.asarray(f, dtype=np.float64)
    return pearson(f - b, a) + pearson(f - a, b)


def fusion_vif(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """VIF = VIFp(A, F) + VIFp(B, F), each source the reference (:func:`vif_pair`).

    Parameters
    ----------
    a, b, f : numpy.ndarray
        Sources A and B and the fused image F, 2D, one shape, gray levels on [0, 255].

    Returns
    -------
    float
        About 2 when F equals both sources; NaN when a source is constant.

    References
    ----------
    Sheikh & Bovik, IEEE TIP 15:430 (2006); sewar 0.4.10 ``vifp`` (checked in the tests; not in
    VIFB); docs/metrics.md, section Fusion.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).integers(0, 256, (32, 32)).astype(float)
    >>> round(fusion_vif(x, x, x), 4)
    2.0
    """
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
    """Xydeas–Petrović edge preservation Q^AB/F.

    Sobel responses (zero padding) give edge strength g = sqrt(s_x² + s_y²) and orientation
    α = atan(s_y / s_x) (where s_x = 0: ±π/2 by the sign of s_y, 0 on a flat pixel). For a source X:
    relative strength G^XF = g_F/g_X if g_X > g_F else g_X/g_F (0 where either is 0), relative
    orientation A^XF = | |α_X − α_F| − π/2 | · 2/π (orientations equal modulo π count as equal; the
    paper's 1 − |α_X − α_F|/(π/2) for |Δα| ≤ π/2), and
    Q^XF = Γ_g / (1 + e^{κ_g (G^XF − σ_g)}) · Γ_α / (1 + e^{κ_α (A^XF − σ_α)}) with Γ_g = 0.9994,
    κ_g = −15, σ_g = 0.5, Γ_α = 0.9879, κ_α = −22, σ_α = 0.8. Finally
    Q^AB/F = Σ(Q^AF g_A + Q^BF g_B) / Σ(g_A + g_B) (weights w = g^L, L = 1).

    Parameters
    ----------
    a, b, f : numpy.ndarray
        Sources A and B and the fused image F, 2D, one shape.

    Returns
    -------
    float
        In [0, 1) (at most 0.9994 · 0.9879 for every edge kept exactly); NaN when neither source has
        an edge.

    References
    ----------
    Xydeas & Petrović, Electronics Letters 36:308 (2000); VIFB (Zhang et al., CVPR Workshops 2020;
    code at 22b2ea9) ``metricsQabf``, departed from in the orientation of flat pixels, the
    comparison modulo π and equal strengths (module docstring); docs/metrics.md, section Fusion.

    Examples
    --------
    >>> import numpy as np
    >>> ramp = np.tile(np.arange(5.0), (3, 1))
    >>> round(qabf(ramp, ramp, ramp), 4)  # every edge kept: Q_g(1) Q_a(1) = 0.99885 * 0.97592
    0.9748
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
    """Several fusion metrics of one image triple at once.

    Parameters
    ----------
    a, b, f : numpy.ndarray
        Sources A and B and the fused image F, 2D gray images of one shape on the 0..255 scale.
    metrics : sequence of str
        Names among ``en sd sf ag mi qabf ssim psnr rmse cc scd vif`` (default: all twelve).

    Returns
    -------
    dict
        Metric name -> value.

    References
    ----------
    The module docstring (each metric's definition and its departures from VIFB); docs/metrics.md,
    section Fusion.

    Examples
    --------
    >>> import numpy as np
    >>> half = np.array([[0.0, 0.0, 255.0, 255.0]] * 4)
    >>> fusion_metrics(half, half, half, ["en", "sd", "mi", "rmse"])
    {'en': 1.0, 'sd': 127.5, 'mi': 2.0, 'rmse': 0.0}
    """
    return {m: float(METRIC_FUNCTIONS[m](a, b, f)) for m in metrics}
