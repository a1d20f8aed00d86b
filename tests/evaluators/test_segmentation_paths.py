"""BraTS 2023 lesion-wise scores, the chunked path, the task and the file loader."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import surface_distance as deepmind
import zarr
from scipy import ndimage

from medarena.evaluators.image import Image
from medarena.evaluators.segmentation import TASK, evaluate, evaluate_chunked
from medarena.evaluators.tasks import CaseError
from medarena.platform.loaders import segmentation as loader


def test_brats2023_lesion_wise_by_hand():
    spacing = (1.0, 1.0, 1.0)
    ref = np.zeros((40, 40, 40), np.uint8)
    ref[5:10, 5:10, 5:10] = 1  # lesion 1 (125 mm³)
    ref[5:10, 5:10, 12:15] = 1  # 2 voxels away: merged with lesion 1 by the dilation
    ref[25:30, 25:30, 25:30] = 1  # lesion 2, missed
    ref[35:37, 2:4, 2:4] = 1  # 8 mm³ ≤ 50: left out
    pred = np.zeros_like(ref)
    pred[6:10, 5:10, 5:11] = 1  # hits lesion 1
    pred[33:38, 33:38, 33:38] = 1  # false positive (beyond lesion 2's 3-voxel dilation)
    row = evaluate(ref, pred, spacing=spacing, metrics=["dice", "hd95", "lesion_tp", "lesion_fp", "lesion_fn"],
                   convention="brats2023")["1"]
    lesion = np.zeros(ref.shape, bool)
    lesion[5:10, 5:10, 5:10] = lesion[5:10, 5:10, 12:15] = True
    hit = np.zeros(ref.shape, bool)
    hit[6:10, 5:10, 5:11] = True
    dice = 2 * np.sum(lesion & hit) / (lesion.sum() + hit.sum())
    hd95 = deepmind.compute_robust_hausdorff(deepmind.compute_surface_distances(lesion, hit, spacing), 95)
    assert row["dice"] == pytest.approx(dice / 3)
    assert row["hd95"] == pytest.approx((hd95 + 374 + 374) / 3)
    assert (row["lesion_tp"], row["lesion_fp"], row["lesion_fn"]) == (1, 1, 1)


def test_brats2023_empty_case():
    empty = np.zeros((8, 8, 8), np.uint8)
    row = evaluate(empty, empty, spacing=(1, 1, 1), metrics=["dice", "hd95"], labels={"et": 3},
                   convention="brats2023")["et"]
    assert (row["dice"], row["hd95"]) == (1.0, 0.0)


def _label_maps(shape, seed):
    rng = np.random.default_rng(seed)
    maps = []
    for _ in range(2):
        f, g = (ndimage.gaussian_filter(rng.random(shape), 2) for _ in range(2))
        out = (f > np.quantile(f, 0.7)).astype(np.uint8)
        out[(g > np.quantile(g, 0.8)) & (out == 0)] = 2
        out[0, :3] = 1  # touches the image border
        maps.append(out)
    return maps


@pytest.mark.parametrize("convention", ["default", "deepmind", "pooled"])
@pytest.mark.parametrize("shape,spacing", [((30, 22, 26), (1.5, 0.7, 0.9)), ((40, 33), (0.6, 1.1))])
def test_chunked_path_equals_in_memory(tmp_path, convention, shape, spacing):
    a, b = _label_maps(shape, 3)
    stores = []
    for name, array in (("a", a), ("b", b)):
        z = zarr.create_array(str(tmp_path / f"{name}.zarr"), shape=shape, chunks=(7, *shape[1:]), dtype="uint8")
        z[:] = array
        stores.append(z)
    metrics = ["dice", "iou", "specificity", "volume_difference_ml", "hd", "hd95", "assd", "masd", "nsd@1"]
    expected = evaluate(a, b, spacing=spacing, metrics=metrics, convention=convention)
    slab = 5 * int(np.prod(shape[1:]))  # several slabs, not aligned with the zarr chunks
    got = evaluate_chunked(*stores, spacing=spacing, metrics=metrics, convention=convention, slab_voxels=slab)
    assert got.keys() == expected.keys() == {"1", "2"}
    for label in expected:
        for metric in metrics:
            assert got[label][metric] == pytest.approx(expected[label][metric], abs=1e-9), (label, metric)



@pytest.mark.parametrize("spacing", [(1.0, 0.0, 1.0), (1.0, -2.0, 1.0), (1.0, float("nan"), 1.0),
                                     (1.0, float("inf"), 1.0), (1.0, 1.0)])
def test_both_paths_refuse_a_bad_spacing(tmp_path, spacing):
    a, b = _label_maps((12, 10, 9), 2)
    store = zarr.create_array(str(tmp_path / "a.zarr"), shape=a.shape, chunks=(4, 10, 9), dtype="uint8")
    store[:] = a
    for score in (evaluate, evaluate_chunked):
        with pytest.raises(ValueError, match=r"spacing .* does not fit a 3D image \(one positive, finite value"):
            score(store[:] if score is evaluate else store, b, spacing=spacing, metrics=["dice", "hd95"])


def test_task_rows_and_geometry_errors():
    a = np.zeros((6, 7, 8), np.uint8)
    a[1:4, 1:4, 1:4] = 1
    settings = TASK.Settings(labels={"liver": 1, "tumor": 2}, metrics=["dice", "nsd@2"])
    result = TASK.score_case({"mask": Image(a, (1.0, 1.0, 2.0))}, {"mask": Image(a, (1.0, 1.0, 2.0))}, settings)
    assert result.rows == [{"label": "liver", "dice": 1.0, "nsd@2": 1.0},
                           {"label": "tumor", "dice": 1.0, "nsd@2": 1.0, "empty": "both"}]
    with pytest.raises(CaseError, match="spacing"):
        TASK.score_case({"mask": Image(a, (1.0, 1.0, 2.0))}, {"mask": Image(a, (1.0, 1.0, 1.0))}, settings)
    with pytest.raises(CaseError, match="shape mismatch"):
        TASK.score_case({"mask": Image(a, (1, 1, 2))}, {"mask": Image(a[:5], (1, 1, 2))}, settings)
    with pytest.raises(CaseError, match="NaN"):
        bad = a.astype(float)
        bad[0, 0, 0] = np.nan
        TASK.score_case({"mask": Image(a, (1, 1, 2))}, {"mask": Image(bad, (1, 1, 2))}, settings)


@pytest.mark.parametrize("settings,message", [
    ({"metrics": ["dice", "hausdorff"]}, "unknown metric"),
    ({"convention": "nnunet"}, "unknown convention"),
    ({"labels": {"liver": -1}}, "positive"),
    ({"metrics": ["dice"], "colour": "red"}, "Extra inputs"),
])
def test_settings_errors(settings, message):
    with pytest.raises(ValueError, match=message):
        TASK.Settings.model_validate(settings)


def _write(array, path, spacing=(1.0, 1.0, 2.0)):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))


def test_loader_pairs_by_case_and_reads(tmp_path):
    (tmp_path / "ref").mkdir()
    (tmp_path / "pred").mkdir()
    a = np.zeros((5, 6, 7), np.uint8)
    a[1:3, 1:4, 2:5] = 1
    _write(a, tmp_path / "ref" / "case1.nii.gz")
    _write(a, tmp_path / "ref" / "case2.mha")
    _write(a, tmp_path / "pred" / "case1.nii.gz")
    (tmp_path / "pred" / "notes.txt").write_text("not an image")
    pairs = loader.pair_cases(tmp_path / "ref", tmp_path / "pred")
    assert [(c, r.name, p.name if p else None) for c, r, p in pairs] == [
        ("case1", "case1.nii.gz", "case1.nii.gz"), ("case2", "case2.mha", None)]
    mask = loader.read_reference(pairs[0][1])["mask"]
    assert mask.spacing == (2.0, 1.0, 1.0) and mask.shape == (5, 6, 7)
    (tmp_path / "pred" / "broken.mha").write_text("garbage")
    with pytest.raises(CaseError, match="broken.mha"):
        loader.read_prediction(tmp_path / "pred" / "broken.mha")
