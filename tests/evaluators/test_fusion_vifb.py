"""The documented departures from VIFB's MATLAB code (xingchenzhang/VIFB at 22b2ea9, ``metrics/``):
VIFB's formulas transcribed here, and the relation the fusion module's docstring states."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medarena.evaluators import fusion as fu


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(7)
    a = rng.integers(0, 256, (24, 31)).astype(float)
    f = np.clip(a + rng.integers(-30, 30, a.shape), 0, 255)
    a[0, :2] = f[0, :2] = (0.0, 255.0)  # both span 0..255, so VIFB's stretching changes nothing
    return a, f


def vifb_mutinf(a, b):
    """``metricsMutinf.m``'s ``mutinf``: each image stretched to [0, 1], ``int16(x * 255) + 1``
    (rounding half away from zero), 256 x 256 histogram, natural log."""
    def levels(x):
        x = (x - x.min()) / (x.max() - x.min())
        return np.floor(x * 255 + 0.5).astype(int)
    joint = np.zeros((256, 256))
    np.add.at(joint, (levels(a).ravel(), levels(b).ravel()), 1)
    p = joint / joint.sum()

    def h(q):
        return -(q[q > 0] * np.log(q[q > 0])).sum()
    return h(p.sum(1)) + h(p.sum(0)) - h(p)


def test_mi_is_vifbs_in_bits_on_images_spanning_all_levels(pair):
    a, f = pair
    assert fu.mutual_information(a, f) * math.log(2) == pytest.approx(vifb_mutinf(a, f), rel=1e-12)


def test_spatial_frequency_and_average_gradient_denominators(pair):
    _, f = pair
    m, n = f.shape
    # metricsSpatial_frequency.m: both sums over M N
    rf = ((f[:, 1:] - f[:, :-1]) ** 2).sum() / (m * n)
    cf = ((f[1:] - f[:-1]) ** 2).sum() / (m * n)
    ours_rf = ((f[:, 1:] - f[:, :-1]) ** 2).sum() / (m * (n - 1))
    ours_cf = ((f[1:] - f[:-1]) ** 2).sum() / ((m - 1) * n)
    assert fu.spatial_frequency(f) == pytest.approx(math.sqrt(ours_rf + ours_cf), rel=1e-12)
    assert fu.spatial_frequency(f) != pytest.approx(math.sqrt(rf + cf), rel=1e-3)
    # metricsAvg_gradient.m: the sum over M N pixels divided by (M - 1)(N - 1)
    gy, gx = np.gradient(f)
    vifb_ag = np.sqrt((gx ** 2 + gy ** 2) / 2).sum() / ((m - 1) * (n - 1))
    assert vifb_ag / fu.average_gradient(f) == pytest.approx(m * n / ((m - 1) * (n - 1)), rel=1e-12)


def test_psnr_and_rmse_use_the_mean_squared_error_not_vifbs_norm(pair):
    a, f = pair
    m, n = f.shape
    vifb_mse = math.sqrt(((a - f) ** 2).sum()) / (m * n)  # metricsPsnr.m / metricsRmse.m ``mse``
    mse = ((a - f) ** 2).mean()
    assert fu.fusion_rmse(a, a, f) == pytest.approx(math.sqrt(mse), rel=1e-12)
    assert vifb_mse == pytest.approx(math.sqrt(mse) / math.sqrt(m * n), rel=1e-12)  # shrinks with size
    assert fu.fusion_psnr(a, a, f) == pytest.approx(10 * math.log10(255 ** 2 / mse), rel=1e-12)
