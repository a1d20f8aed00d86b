"""Segmentation metrics against hand-computed values and the peer libraries.

Peers: MONAI (default HD/HD95/ASSD/NSD over border voxels, with spacing), google-deepmind's
surface-distance (the ``deepmind`` convention), MedPy (``pooled`` HD95, ASSD and the
directed means), panoptica (instance metrics). MONAI computes in float32, hence its 1e-5 tolerance.
"""

from __future__ import annotations

import math

import medpy.metric.binary as medpy_binary
import numpy as np
import pytest
import surface_distance as deepmind
import torch
from monai.metrics import (
    compute_average_surface_distance,
    compute_hausdorff_distance,
    compute_surface_dice,
)
from scipy import ndimage

from medarena.evaluators import overlap, surface
from medarena.evaluators.instances import instance_metrics
from medarena.evaluators.segmentation import evaluate, parse_metric
from medarena.evaluators.surfels import surfel_table

ALL = ["dice", "iou", "sensitivity", "precision", "specificity", "accuracy", "volume_similarity",
       "volume_difference_ml", "hd", "hd95", "assd", "masd", "nsd@1"]


def blobs(shape, seed, touch_border=False):
    """Two overlapping random smooth binary masks."""
    rng = np.random.default_rng(seed)
    masks = []
    for _ in range(2):
        field = ndimage.gaussian_filter(rng.random(shape), 2.0)
        mask = field > np.quantile(field, 0.7)
        if touch_border:
            mask[0] |= True
        masks.append(mask)
    return masks


CASES = [((24, 20, 18), (1.5, 0.7, 0.9), 0), ((30, 26), (0.6, 1.1), 1), ((16, 22, 20), (1.0, 1.0, 1.0), 2)]


# --- hand-computed ----------------------------------------------------------------------------------


def test_cubes_counts_by_hand():
    a = np.zeros((10, 10, 10), bool)
    b = np.zeros_like(a)
    a[2:6, 2:6, 2:6] = True  # 64 voxels
    b[3:7, 2:6, 2:6] = True  # shifted by one slice: 48 shared
    row = evaluate(a, b, spacing=(2.0, 1.0, 1.0), metrics=ALL[:8])["1"]
    assert row["dice"] == pytest.approx(2 * 48 / 128)
    assert row["iou"] == pytest.approx(48 / 80)
    assert row["sensitivity"] == pytest.approx(48 / 64)
    assert row["precision"] == pytest.approx(48 / 64)
    assert row["specificity"] == pytest.approx((1000 - 80) / (1000 - 64))
    assert row["accuracy"] == pytest.approx((1000 - 32) / 1000)
    assert row["volume_similarity"] == pytest.approx(1.0)
    assert row["volume_difference_ml"] == pytest.approx(0.0)
    c = np.zeros_like(a)
    c[2:6, 2:6, 2:4] = True  # 32 voxels inside a
    row = evaluate(a, c, spacing=(2.0, 1.0, 1.0), metrics=["volume_similarity", "volume_difference_ml"])["1"]
    assert row["volume_similarity"] == pytest.approx(1 - 32 / 96)
    assert row["volume_difference_ml"] == pytest.approx(32 * 2.0 / 1000)


def test_shifted_cube_distances_by_hand_anisotropic():
    # Cube shifted by one voxel along axis 0 (spacing 2 mm): the far faces are 2 mm from the other
    # border; the side border voxels of each slab have a border voxel of the other at 0 mm.
    a = np.zeros((12, 12, 12), bool)
    b = np.zeros_like(a)
    a[2:8, 2:8, 2:8] = True
    b[3:9, 2:8, 2:8] = True
    row = evaluate(a, b, spacing=(2.0, 0.5, 0.5), metrics=["hd", "hd95", "assd", "masd", "nsd@1", "nsd@2"])["1"]
    # Border voxels per cube: 6^3 - 4^3 = 152. From A: its first face (36) is 2 mm from B's face;
    # the 4x4 centre of its last face lies inside B's slab, 0.5 mm (12 voxels) or 1 mm (4) from
    # B's side faces; the other 100 are on B's border. B is the mirror image.
    d_ab = np.r_[np.full(36, 2.0), np.full(12, 0.5), np.full(4, 1.0), np.zeros(100)]
    assert row["hd"] == pytest.approx(2.0)
    assert row["hd95"] == pytest.approx(np.percentile(d_ab, 95)) == 2.0
    assert row["assd"] == pytest.approx(2 * d_ab.sum() / 304)
    assert row["masd"] == pytest.approx(d_ab.mean())
    assert row["nsd@1"] == pytest.approx((304 - 72) / 304)
    assert row["nsd@2"] == pytest.approx(1.0)


def test_one_voxel_objects_and_2d():
    a = np.zeros((7, 9), bool)
    b = np.zeros_like(a)
    a[1, 1] = True
    b[4, 5] = True
    row = evaluate(a, b, spacing=(0.5, 2.0), metrics=["dice", "hd", "hd95", "assd", "nsd@3"])["1"]
    distance = math.hypot(3 * 0.5, 4 * 2.0)
    assert row["dice"] == 0.0
    assert row["hd"] == pytest.approx(distance)
    assert row["hd95"] == pytest.approx(distance)
    assert row["assd"] == pytest.approx(distance)
    assert row["nsd@3"] == 0.0


def test_touching_the_image_border_counts_as_border():
    # The full image is one object: every voxel on the image's faces is a border voxel.
    a = np.ones((4, 4, 4), bool)
    assert surface.border_voxels(a).sum() == 64 - 8
    b = a.copy()
    b[0] = False  # prediction misses the first slice (spacing 3 mm along axis 0)
    row = evaluate(a, b, spacing=(3.0, 1.0, 1.0), metrics=["hd", "masd"])["1"]
    # A's border (56 voxels): slice 0 (16) is 3 mm from B's first slice; the rest (40) lies on
    # B's border. B's border (44): the 2x2 centre of its first slice is 1 mm from A's ring in that
    # slice; the rest (40) lies on A's border.
    d_ab = np.r_[np.full(16, 3.0), np.zeros(40)]
    d_ba = np.r_[np.full(4, 1.0), np.zeros(40)]
    assert row["hd"] == pytest.approx(3.0)
    assert row["masd"] == pytest.approx((d_ab.mean() + d_ba.mean()) / 2)


@pytest.mark.parametrize("convention", ["default", "pooled"])
def test_empty_masks_default(convention):
    empty = np.zeros((5, 6, 7), bool)
    full = empty.copy()
    full[1:3, 1:3, 1:3] = True
    diagonal = math.sqrt((5 * 2.0) ** 2 + 6 ** 2 + 7 ** 2)
    both = evaluate(empty, empty, spacing=(2, 1, 1), metrics=ALL, labels={"x": 1}, convention=convention)["x"]
    assert both["empty"] == "both"
    assert (both["dice"], both["iou"], both["nsd@1"]) == (1.0, 1.0, 1.0)
    assert (both["hd"], both["hd95"], both["assd"], both["masd"]) == (0.0, 0.0, 0.0, 0.0)
    assert math.isnan(both["sensitivity"]) and math.isnan(both["precision"])
    one = evaluate(empty, full, spacing=(2, 1, 1), metrics=ALL, labels={"x": 1}, convention=convention)["x"]
    assert one["empty"] == "reference"
    assert (one["dice"], one["iou"], one["nsd@1"]) == (0.0, 0.0, 0.0)
    for key in ("hd", "hd95", "assd", "masd"):
        assert one[key] == pytest.approx(diagonal)
    other = evaluate(full, empty, spacing=(2, 1, 1), metrics=["dice"], labels={"x": 1})["x"]
    assert other["empty"] == "prediction"


def test_empty_masks_deepmind_match_surface_distance(monkeypatch):
    # surface-distance's empty-mask branches still use np.NaN / np.Inf, removed in NumPy 2.
    monkeypatch.setattr(np, "NaN", np.nan, raising=False)
    monkeypatch.setattr(np, "Inf", np.inf, raising=False)
    empty = np.zeros((5, 6, 7), bool)
    full = empty.copy()
    full[1:3, 1:3, 1:3] = True
    for a, b in ((empty, empty), (full, empty), (empty, full)):
        sd = deepmind.compute_surface_distances(a, b, (2.0, 1.0, 1.0))
        row = evaluate(a, b, spacing=(2, 1, 1), metrics=["dice", "hd", "hd95", "nsd@1"], labels={"x": 1},
                       convention="deepmind")["x"]
        with np.errstate(invalid="ignore", divide="ignore"):
            expected = {"dice": deepmind.compute_dice_coefficient(a, b),
                        "hd": deepmind.compute_robust_hausdorff(sd, 100),
                        "hd95": deepmind.compute_robust_hausdorff(sd, 95),
                        "nsd@1": deepmind.compute_surface_dice_at_tolerance(sd, 1.0)}
        for key, value in expected.items():
            assert (math.isnan(value) and math.isnan(row[key])) or row[key] == value, (key, a.any(), b.any())


# --- peers -------------------------------------------------------------------------------------------


def _tensor(mask):
    return torch.tensor(mask[None, None], dtype=torch.float64)


@pytest.mark.parametrize("shape,spacing,seed", CASES)
def test_default_convention_matches_monai(shape, spacing, seed):
    a, b = blobs(shape, seed, touch_border=seed == 0)
    row = evaluate(a, b, spacing=spacing, metrics=["hd", "hd95", "hd90", "assd", "nsd@1.5"])["1"]
    ref, pred = _tensor(a), _tensor(b)
    assert row["hd"] == pytest.approx(compute_hausdorff_distance(pred, ref, spacing=spacing).item(), abs=1e-5)
    assert row["hd95"] == pytest.approx(
        compute_hausdorff_distance(pred, ref, percentile=95, spacing=spacing).item(), abs=1e-5)
    assert row["hd90"] == pytest.approx(
        compute_hausdorff_distance(pred, ref, percentile=90, spacing=spacing).item(), abs=1e-5)
    assert row["assd"] == pytest.approx(
        compute_average_surface_distance(pred, ref, symmetric=True, spacing=spacing).item(), abs=1e-5)
    monai_nsd = compute_surface_dice(pred, ref, [1.5], include_background=True, spacing=spacing)
    assert row["nsd@1.5"] == pytest.approx(monai_nsd.item(), abs=1e-6)


@pytest.mark.parametrize("shape,spacing,seed", CASES)
def test_deepmind_convention_matches_surface_distance(shape, spacing, seed):
    a, b = blobs(shape, seed + 10, touch_border=True)
    row = evaluate(a, b, spacing=spacing, metrics=["dice", "hd", "hd95", "hd99", "assd", "masd", "nsd@1"],
                   convention="deepmind")["1"]
    sd = deepmind.compute_surface_distances(a, b, spacing)
    gt_to_pred, pred_to_gt = deepmind.compute_average_surface_distance(sd)
    areas_gt, areas_pred = np.sum(sd["surfel_areas_gt"]), np.sum(sd["surfel_areas_pred"])
    assert row["dice"] == pytest.approx(deepmind.compute_dice_coefficient(a, b), abs=1e-12)
    assert row["hd"] == pytest.approx(deepmind.compute_robust_hausdorff(sd, 100), abs=1e-9)
    assert row["hd95"] == pytest.approx(deepmind.compute_robust_hausdorff(sd, 95), abs=1e-9)
    assert row["hd99"] == pytest.approx(deepmind.compute_robust_hausdorff(sd, 99), abs=1e-9)
    assert row["masd"] == pytest.approx((gt_to_pred + pred_to_gt) / 2, abs=1e-9)
    assert row["assd"] == pytest.approx(
        (gt_to_pred * areas_gt + pred_to_gt * areas_pred) / (areas_gt + areas_pred), abs=1e-9)
    assert row["nsd@1"] == pytest.approx(deepmind.compute_surface_dice_at_tolerance(sd, 1.0), abs=1e-9)


@pytest.mark.parametrize("shape,spacing,seed", CASES)
def test_pooled_convention_matches_medpy(shape, spacing, seed):
    a, b = blobs(shape, seed + 20)
    row = evaluate(a, b, spacing=spacing, metrics=["hd", "hd95", "assd", "masd"], convention="pooled")["1"]
    assert row["hd95"] == pytest.approx(medpy_binary.hd95(b, a, voxelspacing=spacing), abs=1e-9)
    assert row["hd"] == pytest.approx(medpy_binary.hd(b, a, voxelspacing=spacing), abs=1e-9)
    # MedPy's assd pools both directions (our assd); its asd is one direction's mean.
    assert row["assd"] == pytest.approx(medpy_binary.assd(b, a, voxelspacing=spacing), abs=1e-9)
    directed = [medpy_binary.asd(b, a, voxelspacing=spacing), medpy_binary.asd(a, b, voxelspacing=spacing)]
    assert row["masd"] == pytest.approx(np.mean(directed), abs=1e-9)
    default = evaluate(a, b, spacing=spacing, metrics=["hd95"])["1"]["hd95"]
    assert default >= row["hd95"] - 1e-12  # the max of directed percentiles bounds the pooled one


def test_surfel_tables_equal_surface_distance_tables():
    from surface_distance import lookup_tables

    from medarena.evaluators.surfels import surfel_table

    for spacing in [(0.7, 1.3, 2.1), (1.0, 1.0, 1.0), (0.8, 0.8, 1.5)]:
        expected = lookup_tables.create_table_neighbour_code_to_surface_area(spacing)
        np.testing.assert_allclose(surfel_table(spacing), expected, rtol=0, atol=1e-12)
    for spacing in [(0.7, 1.3), (2.0, 0.5)]:
        expected = lookup_tables.create_table_neighbour_code_to_contour_length(spacing)
        np.testing.assert_allclose(surfel_table(spacing), expected, rtol=0, atol=1e-12)


def test_instances_match_panoptica():
    from panoptica import (
        ConnectedComponentsInstanceApproximator,
        InputType,
        NaiveThresholdMatching,
        Panoptica_Evaluator,
    )

    ref = np.zeros((20, 20, 20), np.uint8)
    pred = np.zeros_like(ref)
    ref[2:6, 2:6, 2:6] = 1
    pred[2:6, 2:6, 3:7] = 1  # IoU 48/80: a match
    ref[10:14, 10:14, 10:14] = 1
    pred[10:13, 10:14, 10:14] = 1  # IoU 48/64: a match
    ref[16:18, 2:4, 2:4] = 1  # missed
    pred[16:19, 15:18, 15:18] = 1  # false positive
    pred[0, 19, 19] = 1  # one-voxel false positive
    evaluator = Panoptica_Evaluator(expected_input=InputType.SEMANTIC,
                                    instance_approximator=ConnectedComponentsInstanceApproximator(),
                                    instance_matcher=NaiveThresholdMatching(), verbose=False)
    peer = evaluator.evaluate(pred, ref, verbose=False)["ungrouped"]
    ours = evaluate(ref, pred, spacing=(1, 1, 1),
                    metrics=["lesion_tp", "lesion_fp", "lesion_fn", "lesion_f1", "panoptic_quality"])["1"]
    assert (ours["lesion_tp"], ours["lesion_fp"], ours["lesion_fn"]) == (peer.tp, peer.fp, peer.fn) == (2, 2, 1)
    assert ours["lesion_f1"] == pytest.approx(peer.rq, abs=1e-12)
    assert ours["panoptic_quality"] == pytest.approx(peer.pq, abs=1e-12)
    # by hand: SQ = (0.6 + 0.75) / 2, RQ = 2 / (2 + 1 + 0.5)
    assert ours["panoptic_quality"] == pytest.approx(0.675 * 2 / 3.5)


def test_instances_iou_exactly_half_is_not_a_match():
    # docs/metrics.md: a match needs IoU > 0.5 (panoptica's default accepts IoU >= 0.5).
    ref = np.zeros((8, 8), bool)
    ref[1:5, 1:5] = True
    pred = np.zeros_like(ref)
    pred[1:3, 1:5] = True
    result = instance_metrics(ref, pred)
    assert (result.tp, result.fp, result.fn) == (0, 1, 1)
    assert result.panoptic_quality == 0.0


def test_instance_connectivity():
    ref = np.zeros((6, 6), bool)
    ref[1, 1] = ref[2, 2] = True  # diagonal neighbours: one lesion (8-conn) or two (4-conn)
    assert instance_metrics(ref, ref).tp == 1
    assert instance_metrics(ref, ref, connectivity=1).tp == 2


# --- multi-label and evaluate() ----------------------------------------------------------------------


def test_multilabel_rows_equal_per_label_binary_scores():
    a, b = blobs((20, 18, 16), 5)
    c, d = blobs((20, 18, 16), 6)
    ref = np.where(a, 1, 0) + np.where(c & ~a, 3, 0)
    pred = np.where(b, 1, 0) + np.where(d & ~b, 3, 0)
    rows = evaluate(ref.astype(np.uint8), pred.astype(np.uint8), spacing=(1, 2, 1), metrics=ALL,
                    labels={"liver": 1, "tumor": 3, "both": [1, 3], "absent": 2})
    assert list(rows) == ["liver", "tumor", "both", "absent"]
    for name, mask_r, mask_p in (("liver", ref == 1, pred == 1), ("tumor", ref == 3, pred == 3),
                                 ("both", ref > 0, pred > 0)):
        counts = overlap.confusion_counts(mask_r, mask_p)
        assert rows[name]["dice"] == pytest.approx(2 * counts.tp / (2 * counts.tp + counts.fp + counts.fn))
        assert rows[name]["hd95"] == pytest.approx(
            compute_hausdorff_distance(_tensor(mask_p), _tensor(mask_r), percentile=95,
                                       spacing=(1, 2, 1)).item(), abs=1e-5)
    assert rows["absent"]["empty"] == "both"
    assert set(evaluate(ref, pred, spacing=(1, 2, 1), metrics=["dice"])) == {"1", "3"}


def test_metric_names():
    assert parse_metric("hd95").parameter == 95.0
    assert parse_metric("hd@99.5").parameter == 99.5
    assert parse_metric("nsd@2").parameter == 2.0
    with pytest.raises(ValueError, match="unknown metric 'dsc'"):
        parse_metric("dsc")
    with pytest.raises(ValueError, match="unknown convention 'mine'"):
        evaluate(np.zeros((3, 3)), np.zeros((3, 3)), spacing=(1, 1), metrics=["dice"], convention="mine")


@pytest.mark.parametrize("prediction,message", [
    (np.full((4, 4), 0.5), "non-integer"),
    (np.array([[np.nan, 0], [0, 1]]), "NaN"),
    (-np.ones((4, 4), np.int16), "negative"),
    (np.zeros((5, 4), np.uint8), "shape mismatch"),
])
def test_bad_input(prediction, message):
    reference = np.zeros(prediction.shape if message != "shape mismatch" else (4, 4), np.uint8)
    with pytest.raises(ValueError, match=message):
        evaluate(reference, prediction, spacing=(1, 1), metrics=["dice"])


def test_float_masks_with_whole_values_are_accepted():
    a = np.zeros((6, 6), np.float32)
    a[1:4, 1:4] = 1.0
    assert evaluate(a, a, spacing=(1, 1), metrics=["dice"])["1"]["dice"] == 1.0


def test_nsd_tolerance_per_label():
    a = np.zeros((10, 10), np.uint8)
    a[2:5, 2:5] = 1
    a[6:9, 6:9] = 2
    b = np.roll(a, 1, axis=0)
    rows = evaluate(a, b, spacing=(1.5, 1), metrics=["nsd"], nsd_tolerance={"1": 1.0, "2": 2.0})
    assert rows["1"]["nsd"] < 1.0
    assert rows["2"]["nsd"] == 1.0


@pytest.mark.parametrize("shape", [(1,), (7,), (33, 17, 9), ((1 << 20) + 3,)])
@pytest.mark.parametrize("top", [1, 4, 15, 16, 300])
def test_label_counts_equal_bincount_counts(shape, top):
    # The uint8 small-label path packs (reference, prediction) into one byte; odd sizes and blocks
    # pad one pair. Labels absent from one side or from both, and values >= 16, must still count.
    rng = np.random.default_rng(top)
    dtype = np.uint8 if top < 256 else np.uint16
    ref = rng.integers(0, top + 1, shape).astype(dtype)
    pred = rng.integers(0, top + 1, shape).astype(dtype)
    pred[pred == 2] = 0  # label 2 absent from the prediction
    ref.flat[-1] = top
    labels = [1, 2, 3, 15, 16, 40]
    size = max(labels + [top]) + 1
    joint = np.bincount(ref.astype(np.int64).ravel() * size + pred.ravel(), minlength=size * size)
    joint = joint.reshape(size, size)
    got = overlap.label_counts(ref, pred, labels)
    for v in labels:
        tp = int(joint[v, v])
        fp, fn = int(joint[:, v].sum()) - tp, int(joint[v].sum()) - tp
        assert got[v] == overlap.Counts(tp, fp, fn, ref.size - tp - fp - fn), v
    small = overlap.small_label_joint(ref, pred) if dtype == np.uint8 else None
    if top < 16:
        np.testing.assert_array_equal(small, joint[:16, :16])
    else:
        assert small is None


@pytest.mark.parametrize("shape", [(3, 4, 63), (4, 3, 64), (5, 6, 65), (6, 5, 130), (1, 1, 1), (2, 9, 128)])
def test_packed_surface_points_equal_whole_array_definitions(shape):
    # 3D surface points come from rows packed 64 voxels to a word; rows crossing word boundaries
    # must give the points and codes of the whole-array definitions, in the same (raster) order.
    rng = np.random.default_rng(sum(shape))
    field = ndimage.gaussian_filter(rng.random(shape), 1.0)
    spacing, offset = (0.8, 1.1, 1.5), (3, 0, 5)
    noise = rng.random(shape) < 0.5  # every neighbour code
    for mask in (field > np.quantile(field, 0.5), noise, np.ones(shape, bool), np.zeros(shape, bool)):
        points, weights = surface.surface_points(mask, spacing, "voxel", offset)
        expected = (np.stack(np.nonzero(surface.border_voxels(mask)), 1) + np.array(offset)) * spacing
        np.testing.assert_array_equal(points.reshape(-1, 3), expected)
        assert weights is None
        points, weights = surface.surface_points(mask, spacing, "surfel", offset)
        codes = surface.neighbour_codes(mask)
        index = np.nonzero((codes != 0) & (codes != 255))
        expected = (np.stack(index, 1) + np.array(offset) - 0.5) * spacing
        np.testing.assert_array_equal(points.reshape(-1, 3), expected)
        np.testing.assert_array_equal(weights, surfel_table(spacing)[codes[index]])
