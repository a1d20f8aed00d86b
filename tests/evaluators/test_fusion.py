"""Fusion metrics: published formulas on small arrays, scikit-image and sewar where they agree."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sewar.full_ref as sewar
from scipy import ndimage
from sewar.utils import Filter
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from medarena.evaluators import fusion as fu
from medarena.evaluators.image import Image
from medarena.evaluators.tasks import CaseError


def texture(seed: int, n: int = 96, sigma: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(ndimage.gaussian_filter(rng.normal(size=(n, n)), sigma) * 400 + 128, 0, 255)


@pytest.fixture(scope="module")
def triple():
    a, b = texture(1), texture(2, sigma=3.0)
    noise = np.random.default_rng(3).normal(size=a.shape) * 6
    return a, b, np.clip(0.6 * a + 0.4 * b + noise, 0, 255)


def skimage_ssim(x, y):
    return structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=255)


# --- against scikit-image and sewar ------------------------------------------------------------------

def test_ssim_matches_scikit_image_and_sewar(triple):
    a, b, f = triple
    assert fu.fusion_ssim(a, b, f) == pytest.approx(skimage_ssim(a, f) + skimage_ssim(b, f), abs=1e-12)
    gaussian = {"fltr": Filter.GAUSSIAN, "sigma": 1.5, "ws": 11}
    assert fu.ssim_pair(a, f) == pytest.approx(sewar.ssim(a, f, ws=11, MAX=255, fltr_specs=gaussian)[0], abs=1e-12)


def test_vif_matches_sewar_pixel_domain_vif(triple):
    a, b, f = triple
    assert fu.vif_pair(a, f) == pytest.approx(sewar.vifp(a, f), rel=1e-9)
    assert fu.fusion_vif(a, b, f) == pytest.approx(sewar.vifp(a, f) + sewar.vifp(b, f), rel=1e-9)
    assert fu.vif_pair(a, a) == pytest.approx(1.0)


def test_psnr_and_rmse_match_scikit_image_and_sewar_for_one_source(triple):
    a, _, f = triple
    assert fu.fusion_psnr(a, a, f) == pytest.approx(peak_signal_noise_ratio(a, f, data_range=255), abs=1e-10)
    assert fu.fusion_psnr(a, a, f) == pytest.approx(sewar.psnr(a, f, MAX=255), abs=1e-10)
    assert fu.fusion_rmse(a, a, f) == pytest.approx(sewar.rmse(a, f), abs=1e-10)


# --- published formulas on small arrays, by hand ---------------------------------------------------

def test_psnr_and_rmse_average_the_two_sources_by_hand():
    a, b, f = np.zeros((2, 2)), np.full((2, 2), 4.0), np.full((2, 2), 2.0)
    f[0, 0] = 0.0  # errors: A-F = (0, 2, 2, 2), B-F = (4, 2, 2, 2)
    mse_a, mse_b = 12 / 4, 28 / 4
    assert fu.fusion_psnr(a, b, f) == pytest.approx(10 * math.log10(255**2 / ((mse_a + mse_b) / 2)))
    assert fu.fusion_rmse(a, b, f) == pytest.approx((math.sqrt(mse_a) + math.sqrt(mse_b)) / 2)
    assert fu.fusion_psnr(f, f, f) == math.inf


def test_entropy_standard_deviation_by_hand():
    f = np.array([[0, 1], [2, 3]] * 2, dtype=float)
    assert fu.entropy(f) == pytest.approx(2.0)
    assert fu.entropy(np.full((4, 4), 7.0)) == 0.0
    assert fu.entropy(np.arange(256.0).reshape(16, 16)) == pytest.approx(8.0)
    assert fu.standard_deviation(f) == pytest.approx(math.sqrt(1.25))


def test_spatial_frequency_and_average_gradient_by_hand():
    assert fu.spatial_frequency(np.array([[0.0, 2.0], [4.0, 6.0]])) == pytest.approx(math.sqrt(4 + 16))
    y, x = np.indices((5, 7), dtype=float)
    assert fu.average_gradient(2 * x + 3 * y) == pytest.approx(math.sqrt((4 + 9) / 2))


def test_mutual_information_by_hand():
    a = np.array([[0, 255], [255, 0]], dtype=float)
    b = np.full((2, 2), 9.0)
    assert fu.fusion_mi(a, b, a) == pytest.approx(1.0)  # MI(A, A) = H(A) = 1 bit, MI(const, A) = 0
    independent = np.array([[0, 0], [255, 255]], dtype=float)
    assert fu.mutual_information(a, independent) == pytest.approx(0.0, abs=1e-12)


def test_cc_and_scd_by_hand():
    a = np.array([[1.0, 2.0], [3.0, 7.0]])
    b = np.array([[5.0, 1.0], [2.0, 2.0]])
    assert fu.fusion_cc(a, 10 - a, a) == pytest.approx(0.0)  # (1 + (-1)) / 2
    assert fu.fusion_scd(a, b, a + b) == pytest.approx(2.0)  # r(A, A) + r(B, B)
    ac, bc = a - a.mean(), b - b.mean()
    r_ab = (ac * bc).sum() / math.sqrt((ac**2).sum() * (bc**2).sum())
    assert fu.fusion_cc(a, b, b) == pytest.approx((r_ab + 1) / 2)


QG_ONE = 0.9994 / (1 + math.exp(-15 * (1 - 0.5)))
QA_ONE = 0.9879 / (1 + math.exp(-22 * (1 - 0.8)))


def test_qabf_of_perfect_and_halved_edges_by_hand(triple):
    a, b, _ = triple
    assert fu.qabf(a, b, a) < QG_ONE * QA_ONE
    assert fu.qabf(a, a, a) == pytest.approx(QG_ONE * QA_ONE, rel=1e-12)
    # F = 2A: every edge twice as strong, same orientation: G = 1/2 everywhere
    assert fu.qabf(a, a, 2 * a) == pytest.approx(0.9994 / 2 * QA_ONE, rel=1e-12)


def test_qabf_orientation_is_modulo_pi():
    """Gradients (ε, 1) and (−ε, 1) lie on nearly one line: α ≈ +π/2 and −π/2 are the same edge."""
    y, x = np.indices((200, 200), dtype=float)
    a, f = y + 0.01 * x, y - 0.01 * x
    assert fu.qabf(a, a, f) > 0.9
    stripes_y, stripes_x = np.sin(2 * np.pi * y / 20), np.sin(2 * np.pi * x / 20)
    assert fu.qabf(stripes_y, stripes_y, stripes_x) < 0.05  # perpendicular edges are lost


# --- the task ------------------------------------------------------------------------------------------

def test_task_scores_all_twelve(triple):
    a, b, f = triple
    result = fu.TASK.score_case({"source_a": Image(a, (1.0, 1.0)), "source_b": b}, {"fused": f},
                                fu.FusionSettings())
    (row,) = result.rows
    assert row["label"] is None and set(row) - {"label"} == set(fu.METRICS)
    assert row["ssim"] == pytest.approx(skimage_ssim(a, f) + skimage_ssim(b, f), abs=1e-12)


def test_slice_wise_3d_along_the_stated_axis(triple):
    a, b, f = triple
    stack = [np.repeat(x[:, None, :], 3, axis=1) for x in (a, b, f)]  # slices along axis 1
    settings = fu.FusionSettings(metrics=["ssim", "psnr"], slice_axis=1)
    (row,) = fu.TASK.score_case({"source_a": stack[0], "source_b": stack[1]}, {"fused": stack[2]}, settings).rows
    assert row["slices"] == 3
    assert row["ssim"] == pytest.approx(skimage_ssim(a, f) + skimage_ssim(b, f), abs=1e-12)
    mse = (np.mean((a - f) ** 2) + np.mean((b - f) ** 2)) / 2
    assert row["psnr"] == pytest.approx(10 * math.log10(255**2 / mse))


def test_intensity_range_maps_onto_gray_levels(triple):
    a, b, f = (np.round(x) for x in triple)
    settings = fu.FusionSettings(metrics=["psnr", "en", "mi"], intensity_range=(-1000.0, 1550.0))
    scaled = [x * 10 - 1000 for x in (a, b, f)]  # [0, 255] -> [-1000, 1550]
    (row,) = fu.TASK.score_case({"source_a": scaled[0], "source_b": scaled[1]}, {"fused": scaled[2]}, settings).rows
    assert row["psnr"] == pytest.approx(fu.fusion_psnr(a, b, f))
    assert row["en"] == pytest.approx(fu.entropy(f)) and row["mi"] == pytest.approx(fu.fusion_mi(a, b, f))
    with pytest.raises(CaseError, match="outside 0..255; set intensity_range"):
        fu.TASK.score_case({"source_a": scaled[0], "source_b": scaled[1]}, {"fused": scaled[2]},
                           fu.FusionSettings(metrics=["psnr"]))


def test_rgb_becomes_gray_with_rgb2gray_weights():
    rgb = np.zeros((12, 12, 3))
    rgb[..., 0] = 100.0
    gray = fu.to_gray(rgb, 2)
    assert gray[0, 0] == pytest.approx(29.89)


@pytest.mark.parametrize(("fused", "message"), [
    (np.zeros((20, 21)), "differ in size: source_a \\(20, 20\\), source_b \\(20, 20\\), fused \\(20, 21\\)"),
    (np.full((20, 20), np.nan), "fused has 400 NaN"),
])
def test_bad_input_is_a_clear_case_error(fused, message):
    ref = {"source_a": np.zeros((20, 20)), "source_b": np.zeros((20, 20))}
    with pytest.raises(CaseError, match=message):
        fu.TASK.score_case(ref, {"fused": fused}, fu.FusionSettings())


def test_settings_are_checked():
    with pytest.raises(ValueError, match="unknown fusion metrics"):
        fu.FusionSettings(metrics=["ssim", "qcb"])
    with pytest.raises(ValueError, match="hi > lo"):
        fu.FusionSettings(intensity_range=(5, 5))
