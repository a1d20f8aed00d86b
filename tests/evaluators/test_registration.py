"""Registration evaluator against hand-computed cases and SimpleITK's DisplacementFieldTransform."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from medarena.evaluators import registration as reg
from medarena.evaluators.image import Image
from medarena.evaluators.registration import folding, jacobian_determinant, sdlogj
from medarena.evaluators.registration._fields import field_to_mm, field_to_voxels
from medarena.evaluators.tasks import CaseError

SHAPE = (12, 14, 16)
SPACING = (2.5, 1.2, 0.8)  # z, y, x
ORIGIN = (10.0, -20.0, 35.0)


def rotation() -> np.ndarray:
    a, b = 0.4, 0.3
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    return rz @ rx


DIRECTION = tuple(rotation().ravel())


def grid(array_shape=SHAPE, components: int | None = None) -> Image:
    shape = array_shape + ((components,) if components else ())
    return Image(np.zeros(shape), SPACING, ORIGIN, DIRECTION)


def physical_grid(image: Image) -> np.ndarray:
    index = np.moveaxis(np.indices(image.shape, dtype=float), 0, -1)
    return image.index_to_physical(index)


def to_sitk(image: Image) -> sitk.Image:
    vector = image.array.ndim == image.ndim + 1
    out = sitk.GetImageFromArray(image.array, isVector=vector)
    out.SetSpacing(tuple(reversed(image.spacing)))
    out.SetOrigin(image.origin)
    out.SetDirection(image.direction)
    return out


def smooth_field(seed: int = 0, amplitude: float = 6.0) -> Image:
    rng = np.random.default_rng(seed)
    u = np.stack([ndimage.gaussian_filter(rng.normal(size=SHAPE), 2.5) for _ in range(3)], axis=-1)
    u *= amplitude / np.abs(u).max()
    return Image(u, SPACING, ORIGIN, DIRECTION)


# --- geometry helpers checked by hand -------------------------------------------------------------

def test_image_geometry_matches_simpleitk():
    image = grid()
    index = np.array([[1, 2, 3], [11, 13, 15]], dtype=float)  # array order
    itk = to_sitk(Image(np.zeros(SHAPE), SPACING, ORIGIN, DIRECTION))
    expected = [itk.TransformContinuousIndexToPhysicalPoint(tuple(i[::-1])) for i in index]
    np.testing.assert_allclose(image.index_to_physical(index), expected, atol=1e-12)


# --- TRE ----------------------------------------------------------------------------------------------

def test_pure_translation_has_known_tre_and_unit_jacobian():
    t = np.array([3.0, -1.5, 2.0])  # mm, x y z
    field = Image(np.broadcast_to(t, SHAPE + (3,)).copy(), SPACING, ORIGIN, DIRECTION)
    fixed = grid().index_to_physical(np.array([[2.0, 3.0, 4.0], [5.5, 7.25, 9.0], [9.0, 1.0, 12.0]]))
    residual = np.array([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0], [0.0, 0.0, -2.0]])
    moving = fixed + t + residual
    tre = reg.target_registration_error(fixed, moving, field)
    np.testing.assert_allclose(tre, [0.0, 5.0, 2.0], atol=1e-12)
    j = jacobian_determinant(field.array, SPACING, DIRECTION)
    np.testing.assert_allclose(j, 1.0, atol=1e-12)
    assert sdlogj(j) == pytest.approx(0.0, abs=1e-12) and folding(j) == 0.0


def test_tre_matches_simpleitk_displacement_field_transform():
    """Rotated, anisotropic, offset grid: x_f + u(x_f) agrees with SimpleITK's transform."""
    field = smooth_field()
    transform = sitk.DisplacementFieldTransform(sitk.Cast(to_sitk(field), sitk.sitkVectorFloat64))
    rng = np.random.default_rng(5)
    index = rng.uniform(0, np.array(SHAPE) - 1, size=(40, 3))
    fixed = field.index_to_physical(index)
    expected = np.array([transform.TransformPoint(tuple(p)) for p in fixed])
    moving = fixed + rng.normal(size=fixed.shape)
    np.testing.assert_allclose(reg.target_registration_error(fixed, moving, field),
                               np.linalg.norm(expected - moving, axis=1), atol=1e-9)


def test_tre_summary_by_hand():
    out = reg.tre_summary(np.array([1.0, 2.0, 3.0, 10.0]))
    assert out["tre_mean"] == 4.0 and out["tre_median"] == 2.5 and out["tre_max"] == 10.0
    assert out["tre_p95"] == pytest.approx(3.0 + 0.85 * 7.0)  # position 0.95 * 3 = 2.85
    assert out["tre_std"] == pytest.approx(math.sqrt((9 + 4 + 1 + 36) / 4))


# --- Jacobian -----------------------------------------------------------------------------------------

def test_linear_field_has_known_jacobian_on_rotated_grid():
    a = np.array([[0.05, -0.1, 0.02], [0.03, 0.08, -0.04], [-0.06, 0.01, 0.1]])
    image = grid()
    u = physical_grid(image) @ a.T  # u(x) = A x in mm, so ∇u = A everywhere
    j = jacobian_determinant(u, SPACING, DIRECTION)
    np.testing.assert_allclose(j, np.linalg.det(np.eye(3) + a), rtol=1e-12)
    # the index-space derivative alone (direction ignored) would give another value
    assert not np.allclose(jacobian_determinant(u, SPACING), np.linalg.det(np.eye(3) + a))


def test_fold_gives_nonpositive_jacobian_where_expected():
    # u_x(x) = A sin(w x) with A w = 2 (x in mm): J = 1 + 2 cos(w x) analytically
    n, h = 400, 0.05
    w = 2 * math.pi / (n * h / 2)
    x = np.arange(n) * h
    u = np.zeros((3, 4, n, 3))
    u[..., 0] = (2.0 / w) * np.sin(w * x)
    j = jacobian_determinant(u, (1.0, 1.0, h))[1, 1]
    analytic = 1 + 2 * np.cos(w * x)
    inner = slice(1, -1)
    assert np.all(j[inner][analytic[inner] < -0.05] <= 0)
    assert np.all(j[inner][analytic[inner] > 0.05] > 0)
    assert folding(j) == pytest.approx(np.mean(analytic <= 0), abs=4 / n)


def test_sdlogj_by_hand_and_mask():
    j = np.array([1.0, math.e, math.e ** 2, -1.0])
    logs = np.array([0.0, 1.0, 2.0, math.log(1e-9)])
    assert sdlogj(j) == pytest.approx(logs.std())
    assert sdlogj(j, np.array([1, 1, 1, 0], bool)) == pytest.approx(np.std([0.0, 1.0, 2.0]))
    assert folding(j) == 0.25 and folding(j, np.array([1, 1, 0, 0], bool)) == 0.0


def test_jacobian_of_2d_field_by_hand():
    # u = (0.5 x, -0.25 y) on spacing (y 2, x 1): J = 1.5 * 0.75
    yy, xx = np.indices((5, 6), dtype=float)
    u = np.stack([0.5 * xx * 1.0, -0.25 * yy * 2.0], axis=-1)
    np.testing.assert_allclose(jacobian_determinant(u, (2.0, 1.0)), 1.5 * 0.75)


# --- warped labels ------------------------------------------------------------------------------------

def test_warped_labels_match_simpleitk_resample():
    field = smooth_field(seed=3)
    rng = np.random.default_rng(2)
    moving_array = ndimage.median_filter(rng.integers(0, 4, size=(15, 13, 18)).astype(np.uint8), 3)
    moving = Image(moving_array, (1.1, 1.3, 0.9), (5.0, -15.0, 30.0), tuple(np.eye(3).ravel()))
    reference_grid = to_sitk(Image(np.zeros(SHAPE, np.uint8), SPACING, ORIGIN, DIRECTION))
    transform = sitk.DisplacementFieldTransform(sitk.Cast(to_sitk(field), sitk.sitkVectorFloat64))
    expected = sitk.GetArrayFromImage(
        sitk.Resample(to_sitk(moving), reference_grid, transform, sitk.sitkNearestNeighbor, 0))
    warped = reg.warp_labels(moving, field)
    assert (warped > 0).sum() > 100
    np.testing.assert_array_equal(warped, expected)


def test_voxel_translation_of_labels_scores_perfectly():
    fixed = np.zeros(SHAPE, np.uint8)
    fixed[3:8, 4:10, 5:12] = 1
    fixed[8:11, 2:5, 2:6] = 2
    moving = np.roll(fixed, (1, -2, 3), axis=(0, 1, 2))  # the moving label is shifted by these voxels
    shift_index = np.array([3, -2, 1]) * np.array(SPACING[::-1])  # ITK order, mm along each axis
    u = np.broadcast_to(rotation() @ shift_index, SHAPE + (3,)).copy()
    ref = {"fixed_labels": Image(fixed, SPACING, ORIGIN, DIRECTION),
           "moving_labels": Image(moving, SPACING, ORIGIN, DIRECTION)}
    result = reg.TASK.score_case(ref, {"field": u}, reg.RegistrationSettings())
    by_label = {r["label"]: r for r in result.rows}
    assert by_label["1"]["dice"] == 1.0 and by_label["2"]["dice"] == 1.0
    assert by_label["1"]["hd95"] == 0.0
    assert by_label[None]["folding"] == 0.0


# --- the task -----------------------------------------------------------------------------------------

def case(field: Image | None = None) -> tuple[dict, dict]:
    field = field or smooth_field()
    rng = np.random.default_rng(9)
    fixed = field.index_to_physical(rng.uniform(1, np.array(SHAPE) - 2, size=(6, 3)))
    moving = fixed + reg.sample_field(field, fixed) + np.array([1.0, 0.0, 0.0])
    return ({"fixed_landmarks": fixed, "moving_landmarks": moving,
             "fixed_image": Image(np.zeros(SHAPE), SPACING, ORIGIN, DIRECTION)}, {"field": field})


def test_task_whole_case_row():
    ref, pred = case()
    result = reg.TASK.score_case(ref, pred, reg.RegistrationSettings())
    (row,) = result.rows
    assert row["label"] is None
    assert row["tre_mean"] == pytest.approx(1.0) and row["tre_max"] == pytest.approx(1.0)
    initial = np.linalg.norm(ref["fixed_landmarks"] - ref["moving_landmarks"], axis=1)
    assert row["tre_initial_mean"] == pytest.approx(initial.mean())
    assert {"sdlogj", "folding", "tre_p95", "tre_initial_p95"} <= row.keys()
    assert [p["id"] for p in result.pooled["landmarks"]] == ["1", "2", "3", "4", "5", "6"]


def test_task_metric_selection_and_landmark_rows():
    ref, pred = case()
    settings = reg.RegistrationSettings(metrics=["tre_mean", "folding"], per_landmark_rows=True)
    rows = reg.TASK.score_case(ref, pred, settings).rows
    assert set(rows[0]) == {"label", "tre_mean", "folding"}
    assert len(rows) == 7 and rows[1]["label"] == "landmark 1" and rows[1]["tre"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown registration metrics"):
        reg.RegistrationSettings(metrics=["tre_mean", "nope"])


def test_task_voxel_landmarks_and_voxel_field():
    field = smooth_field()
    ref, _ = case(field)
    index_itk = [field.physical_to_index(ref[k])[:, ::-1] for k in ("fixed_landmarks", "moving_landmarks")]
    u_vox = field_to_voxels(field)
    np.testing.assert_allclose(field_to_mm(u_vox, field), field.array, atol=1e-12)
    settings = reg.RegistrationSettings(field_units="voxel", landmark_units="voxel")
    ref_vox = dict(ref, fixed_landmarks=index_itk[0], moving_landmarks=index_itk[1])
    row = reg.TASK.score_case(ref_vox, {"field": Image(u_vox, SPACING, ORIGIN, DIRECTION)}, settings).rows[0]
    assert row["tre_mean"] == pytest.approx(1.0)


def test_mask_restricts_regularity():
    field = smooth_field(amplitude=40.0)
    j = jacobian_determinant(field.array, SPACING, DIRECTION)
    assert folding(j) > 0
    mask = j > 0.5
    ref = {"mask": Image(mask.astype(np.uint8), SPACING, ORIGIN, DIRECTION)}
    row = reg.TASK.score_case(ref, {"field": field}, reg.RegistrationSettings()).rows[0]
    assert row["folding"] == 0.0
    assert row["sdlogj"] == pytest.approx(np.log(j[mask]).std())
    row = reg.TASK.score_case(ref, {"field": field}, reg.RegistrationSettings(use_mask=False)).rows[0]
    assert row["folding"] == pytest.approx(np.mean(j <= 0))


@pytest.mark.parametrize(("change", "message"), [
    (lambda ref, pred: pred.update(field=Image(np.zeros(SHAPE + (2,)), SPACING, ORIGIN, DIRECTION)),
     "3 components"),
    (lambda ref, pred: pred.update(field=Image(np.zeros((12, 14, 15, 3)), SPACING, ORIGIN, DIRECTION)),
     "grid"),
    (lambda ref, pred: pred["field"].array.__setitem__((1, 2, 3, 0), np.nan), "1 NaN"),
    (lambda ref, pred: ref.update(moving_landmarks=ref["moving_landmarks"][:-1]), "6 fixed and 5 moving"),
    (lambda ref, pred: ref["fixed_landmarks"].__setitem__(2, ref["fixed_landmarks"][2] + 500.0),
     "1 fixed landmarks outside the fixed image \\(3\\)"),
    (lambda ref, pred: pred.update(field=Image(np.zeros(SHAPE + (3,)), SPACING, (0.0, 0.0, 0.0), DIRECTION)),
     "origin"),
    (lambda ref, pred: pred.pop("field"), "no displacement field"),
])
def test_bad_input_is_a_clear_case_error(change, message):
    ref, pred = case(smooth_field())
    ref = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in ref.items()}
    pred = {"field": Image(pred["field"].array.copy(), SPACING, ORIGIN, DIRECTION)}
    change(ref, pred)
    with pytest.raises(CaseError, match=message):
        reg.TASK.score_case(ref, pred, reg.RegistrationSettings())


def test_metrics_needing_missing_inputs_are_errors():
    ref, pred = case()
    with pytest.raises(CaseError, match="labels"):
        reg.TASK.score_case(ref, pred, reg.RegistrationSettings(metrics=["dice"]))


def test_landmarks_as_grand_challenge_documents_pair_by_name():
    ref, pred = case()
    fixed, moving = ref["fixed_landmarks"], ref["moving_landmarks"]
    names = [f"L{k}" for k in range(len(fixed))]
    ref_docs = dict(ref, fixed_landmarks={"type": "Multiple points", "points": [
        {"name": n, "point": p.tolist()} for n, p in zip(names, fixed, strict=True)]},
        moving_landmarks={"type": "Multiple points", "points": [
            {"name": n, "point": p.tolist()} for n, p in reversed(list(zip(names, moving, strict=True)))]})
    result = reg.TASK.score_case(ref_docs, pred, reg.RegistrationSettings())
    assert result.rows[0]["tre_max"] == pytest.approx(1.0)
    assert [p["id"] for p in result.pooled["landmarks"]] == names
    short = dict(ref_docs, moving_landmarks={"points": [{"point": [0, 0, 0]}]})
    with pytest.raises(CaseError, match="6 fixed and 1 moving landmarks"):
        reg.TASK.score_case(short, pred, reg.RegistrationSettings())
