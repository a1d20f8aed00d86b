"""Metrics of one image (EN, SD, SF, AG) and the mutual information of two, on 256 gray levels.

Definitions and departures from VIFB: :mod:`medarena.evaluators.fusion`.
"""

from __future__ import annotations

import math

import numpy as np

GRAY_LEVELS = 256


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
    of its floor (:mod:`medarena.evaluators.fusion`); docs/metrics.md, section Fusion.

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
    ``metricsSpatial_frequency``, departed from in the denominators
    (:mod:`medarena.evaluators.fusion`); docs/metrics.md, section Fusion.

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
    denominator (:mod:`medarena.evaluators.fusion`); docs/metrics.md, section Fusion.

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
    22b2ea9) ``metricsMutinf``, departed from in the log base and the stretching (:mod:`medarena.evaluators.fusion`);
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


def _levels(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(image, dtype=np.float64)), 0, GRAY_LEVELS - 1).astype(np.int64)
