"""The ``l2r`` convention: the formulas of Learn2Reg's evaluation script (MDL-UzL/L2R at 8847509), by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medarena.evaluators import registration as reg
from medarena.evaluators.image import Image
from medarena.evaluators.registration import _learn2reg as learn2reg
from medarena.evaluators.tasks import CaseResult, jsonable

L2R = reg.RegistrationSettings(convention="l2r", landmark_units="voxel")


def voxel_field(shape, fill=None) -> np.ndarray:
    u = np.zeros(tuple(shape) + (3,))
    if fill is not None:
        u[...] = fill
    return u


def test_tre_of_a_voxel_translation_scaled_by_moving_spacing():
    shape = (20, 22, 24)
    t = np.array([1.5, -2.0, 0.5])  # voxels along x, y, z
    fixed = np.array([[8.0, 9.0, 10.0], [12.3, 7.7, 9.1]])  # ITK index order
    moving = fixed + t + np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    spacing = (3.0, 2.0, 1.0)  # z, y, x: so x counts 1 mm, y 2 mm, z 3 mm
    ref = {"fixed_landmarks": fixed, "moving_landmarks": moving,
           "fixed_image": Image(np.zeros(shape), spacing)}
    row = reg.TASK.score_case(ref, {"field": Image(voxel_field(shape, t), spacing)}, L2R).rows[0]
    assert row["tre_max"] == pytest.approx(math.hypot(2.0, 3.0), abs=1e-9)
    assert row["tre_mean"] == pytest.approx((1.0 + math.hypot(2.0, 3.0)) / 2, abs=1e-9)
    initial = np.linalg.norm((fixed - moving) * np.array([1.0, 2.0, 3.0]), axis=1)
    assert row["tre_initial_mean"] == pytest.approx(initial.mean())


def test_tre_samples_the_field_with_cubic_splines():
    # u_x = c x^2 (voxels): a cubic spline reproduces it, linear interpolation would not
    shape, c = (30, 30, 40), 0.01
    x = np.arange(shape[2], dtype=float)
    u = voxel_field(shape)
    u[..., 0] = c * x**2
    fixed = np.array([[20.5, 15.0, 15.0]])
    spline = learn2reg.sample_field_spline(u, fixed)
    assert spline[0, 0] == pytest.approx(c * 20.5**2, abs=1e-8)
    linear = reg.sample_field(Image(u, (1.0, 1.0, 1.0)), fixed)
    assert linear[0, 0] == pytest.approx(c * (20**2 + 21**2) / 2)


def test_tre_departure_with_different_grids_is_reproduced():
    """The script scales (i_f + u - i_m) by the moving spacing even when the grids differ."""
    shape = (12, 12, 12)
    fixed, moving = np.array([[5.0, 10.0, 10.0]]), np.array([[3.0, 5.0, 5.0]])
    u = voxel_field(shape, [1.0, 0.0, 0.0])
    ref = {"fixed_landmarks": fixed, "moving_landmarks": moving,
           "fixed_image": Image(np.zeros(shape), (1.0, 1.0, 1.0)),
           "moving_image": Image(np.zeros(shape), (2.0, 2.0, 2.0))}
    row = reg.TASK.score_case(ref, {"field": Image(u, (1.0, 1.0, 1.0))}, L2R).rows[0]
    assert row["tre_mean"] == pytest.approx(math.sqrt(6.0**2 + 10.0**2 + 10.0**2))  # (3, 5, 5) voxels * 2 mm
    # physically the warped fixed point (6, 10, 10) mm is the moving point 2 * (3, 5, 5) mm
    default = reg.RegistrationSettings(landmark_units="voxel", field_units="voxel")
    assert reg.TASK.score_case(ref, {"field": Image(u, (1.0, 1.0, 1.0))}, default).rows[0]["tre_mean"] \
        == pytest.approx(0.0, abs=1e-12)


def quadratic_field(shape, c):
    x = np.arange(shape[2], dtype=float)
    u = voxel_field(shape)
    u[..., 0] = c * x**2  # central differences are exact: du/dx = 2 c x, J = 1 + 2 c x
    return u


def test_sdlogj_adds_three_and_crops_two_voxels():
    shape, c = (8, 9, 30), 0.02
    u = quadratic_field(shape, c)
    x = np.arange(2, shape[2] - 2, dtype=float)
    row = reg.TASK.score_case({}, {"field": Image(u, (1.0, 1.0, 1.0))}, L2R).rows[0]
    assert row["sdlogj"] == pytest.approx(np.log(4 + 2 * c * x).std(), rel=1e-10)
    no_offset = reg.RegistrationSettings(convention="l2r", l2r_jacobian_offset=0.0)
    row0 = reg.TASK.score_case({}, {"field": Image(u, (1.0, 1.0, 1.0))}, no_offset).rows[0]
    assert row0["sdlogj"] == pytest.approx(np.log(1 + 2 * c * x).std(), rel=1e-10)


def test_sdlogj_offset_compresses_by_about_four_near_identity():
    shape, c = (8, 9, 30), 0.0005
    u = quadratic_field(shape, c)
    with_offset = reg.TASK.score_case({}, {"field": Image(u, (1.0, 1.0, 1.0))}, L2R).rows[0]["sdlogj"]
    no_offset = reg.RegistrationSettings(convention="l2r", l2r_jacobian_offset=0.0)
    without = reg.TASK.score_case({}, {"field": Image(u, (1.0, 1.0, 1.0))}, no_offset).rows[0]["sdlogj"]
    assert with_offset / without == pytest.approx(0.25, rel=0.05)


def test_l2r_jacobian_ignores_spacing_of_voxel_fields_and_counts_folds():
    shape = (8, 8, 30)
    u = quadratic_field(shape, -0.05)  # J = 1 - 0.1 x: J <= 0 from x = 10 on
    jac = learn2reg.jacobian_determinant_l2r(u)
    assert jac.shape == (4, 4, 26)
    x = np.arange(2, 28)
    np.testing.assert_allclose(jac[1, 1], 1 - 0.1 * x, atol=1e-12)
    row = reg.TASK.score_case({}, {"field": Image(u, (2.0, 2.0, 2.0))}, L2R).rows[0]
    assert row["folding"] == pytest.approx(np.mean(1 - 0.1 * x <= 1e-12))


def test_labels_in_voxels_with_nan_for_absent_labels():
    shape = (14, 15, 16)
    fixed = np.zeros(shape, np.uint8)
    fixed[3:8, 4:10, 5:12] = 1
    fixed[9:12, 2:5, 2:6] = 3
    moving = np.roll(fixed, (1, -2, 3), axis=(0, 1, 2))
    moving[moving == 3] = 0  # label 3 absent from the moving labels
    u = voxel_field(shape, [3.0, -2.0, 1.0])
    ref = {"fixed_labels": Image(fixed, (2.0, 2.0, 2.0)), "moving_labels": Image(moving, (2.0, 2.0, 2.0))}
    settings = reg.RegistrationSettings(convention="l2r", labels={"one": 1, "three": 3})
    result = reg.TASK.score_case(ref, {"field": Image(u, (2.0, 2.0, 2.0))}, settings)
    rows = {r["label"]: r for r in result.rows}
    assert rows["one"]["dice"] == 1.0 and rows["one"]["hd95"] == 0.0
    assert math.isnan(rows["three"]["dice"]) and math.isnan(rows["three"]["hd95"])
    assert result.pooled["l2r_dice"] == 1.0


def test_hd95_in_voxels_and_inf_for_an_empty_warped_label():
    fixed = np.zeros((10, 10, 10), np.uint8)
    fixed[2:6, 2:6, 2:6] = 1
    moving = fixed.copy()
    shifted = learn2reg.warp_labels_l2r(moving, voxel_field(fixed.shape, [2.0, 0.0, 0.0]))
    (dice, hd), = learn2reg.label_scores_l2r(fixed, moving, shifted, [1]).values()
    assert dice == pytest.approx(0.5) and hd == pytest.approx(2.0)  # 2 voxels, whatever the spacing
    gone = learn2reg.warp_labels_l2r(moving, voxel_field(fixed.shape, [50.0, 0.0, 0.0]))
    assert learn2reg.label_scores_l2r(fixed, moving, gone, [1])[1][1] == math.inf


def test_aggregation_as_the_l2r_script_by_hand():
    values = [float(v) for v in range(1, 11)]
    out = learn2reg.aggregate_l2r({"dice": values, "hd95": values, "tre": values, "sdlogj": values})
    # np.quantile(x, .3): position 0.3 * 9 = 2.7 -> 3 + 0.7 = 3.7 for Dice and HD95
    assert out["dice_30"] == pytest.approx(3.7) and out["hd95_30"] == pytest.approx(3.7)
    # np.quantile(x, .7): position 0.7 * 9 = 6.3 -> 7 + 0.3 = 7.3 for TRE and SDlogJ
    assert out["tre_30"] == pytest.approx(7.3) and out["sdlogj_30"] == pytest.approx(7.3)
    assert out["tre_mean"] == 5.5
    # numpy's population std: sum of squared deviations 82.5 / n = 10
    assert out["dice_std"] == pytest.approx(np.sqrt(8.25)) and out["tre_std"] == pytest.approx(np.sqrt(8.25))


def test_aggregation_keeps_nan_and_one_case_has_zero_spread():
    out = learn2reg.aggregate_l2r({"tre": [1.0, math.nan, 3.0], "dice": [0.4]})
    assert all(math.isnan(out[f"tre_{s}"]) for s in ("mean", "std", "30"))  # numpy, not pandas
    assert out["dice_std"] == 0.0 and out["dice_mean"] == 0.4 and out["dice_30"] == 0.4


def test_score_dataset_pools_the_case_values():
    results = [CaseResult(rows=[], pooled={"l2r_tre": v, "l2r_sdlogj": s, "l2r_dice": d})
               for v, s, d in ((1.0, 0.1, 0.9), (2.0, 0.3, 0.5), (4.0, 0.2, 0.7))]
    out = reg.TASK.score_dataset(results, L2R)
    assert out["tre_mean"] == pytest.approx(7 / 3)
    assert out["tre_30"] == pytest.approx(2.8)  # 0.7 quantile: position 1.4 of [1, 2, 4] -> 2 + 0.4 * 2
    assert out["sdlogj_30"] == pytest.approx(0.24)  # position 1.4 of [0.1, 0.2, 0.3]
    assert out["dice_30"] == pytest.approx(0.62)  # 0.3 quantile: position 0.6 of [0.5, 0.7, 0.9]
    assert out["tre_std"] == pytest.approx(np.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 3))
    assert "hd95_mean" not in out
    assert reg.TASK.score_dataset(results, reg.RegistrationSettings()) == {}


def test_a_case_without_any_scorable_label_makes_the_dice_summary_nan():
    """Every label absent from the moving labels: np.nanmean gives NaN for the case (stored as
    JSON null), and numpy's mean over cases is then NaN, as in the script."""
    shape = (10, 10, 10)
    fixed = np.zeros(shape, np.uint8)
    fixed[2:6, 2:6, 2:6] = 1
    ref_ok = {"fixed_labels": Image(fixed, (1.0,) * 3), "moving_labels": Image(fixed, (1.0,) * 3)}
    ref_absent = {"fixed_labels": Image(fixed, (1.0,) * 3), "moving_labels": Image(np.zeros_like(fixed), (1.0,) * 3)}
    settings = reg.RegistrationSettings(convention="l2r", labels={"one": 1})
    field = {"field": Image(voxel_field(shape), (1.0,) * 3)}
    ok, absent = (reg.TASK.score_case(r, field, settings) for r in (ref_ok, ref_absent))
    assert ok.pooled["l2r_dice"] == 1.0 and math.isnan(absent.pooled["l2r_dice"])
    stored = CaseResult(rows=[], pooled=jsonable(absent.pooled))
    assert stored.pooled["l2r_dice"] is None
    out = reg.TASK.score_dataset([ok, stored], settings)
    assert math.isnan(out["dice_mean"]) and math.isnan(out["hd95_30"])
    assert reg.TASK.score_dataset([ok, ok], settings)["dice_mean"] == 1.0


def test_summary_directions():
    from medarena.evaluators.registry import higher_is_better

    assert higher_is_better("dice_30") and higher_is_better("dice_mean")
    assert not any(higher_is_better(m) for m in ("tre_30", "tre_mean", "hd95_30", "sdlogj_30", "sdlogj_mean"))
