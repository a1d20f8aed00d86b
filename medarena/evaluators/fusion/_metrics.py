"""The fusion metrics of a triple A, B, F, by name: the twelve of :mod:`medarena.evaluators.fusion`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from medarena.evaluators.fusion._qabf import qabf
from medarena.evaluators.fusion._single import (
    average_gradient,
    entropy,
    mutual_information,
    spatial_frequency,
    standard_deviation,
)
from medarena.evaluators.fusion._windows import (
    DATA_RANGE,
    SSIM_WINDOW,
    local_mean_variance,
    ssim_with,
    vif_scales,
    vif_with,
)

METRICS = ("en", "sd", "sf", "ag", "mi", "qabf", "ssim", "psnr", "rmse", "cc", "scd", "vif")


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
    (:mod:`medarena.evaluators.fusion` for the departures); docs/metrics.md, section Fusion.

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
    if min(f.shape) < SSIM_WINDOW.size:
        return float("nan")
    f_stats = local_mean_variance(f, SSIM_WINDOW)
    return (ssim_with(np.asarray(a, dtype=np.float64), f, f_stats, data_range)
            + ssim_with(np.asarray(b, dtype=np.float64), f, f_stats, data_range))


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
    MSE (:mod:`medarena.evaluators.fusion`);
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
    MSE (:mod:`medarena.evaluators.fusion`); docs/metrics.md, section Fusion.

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
    f_scales = vif_scales(f)
    return vif_with(vif_scales(a), f_scales, 2.0) + vif_with(vif_scales(b), f_scales, 2.0)


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
    :mod:`medarena.evaluators.fusion` (each metric's definition and its departures from VIFB); docs/metrics.md,
    section Fusion.

    Examples
    --------
    >>> import numpy as np
    >>> half = np.array([[0.0, 0.0, 255.0, 255.0]] * 4)
    >>> fusion_metrics(half, half, half, ["en", "sd", "mi", "rmse"])
    {'en': 1.0, 'sd': 127.5, 'mi': 2.0, 'rmse': 0.0}
    """
    return {m: float(METRIC_FUNCTIONS[m](a, b, f)) for m in metrics}
