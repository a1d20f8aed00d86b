"""The chunked segmentation path gives the very floats of the in-memory path, whatever the slabs."""

import dask.array as da
import numpy as np
import pytest
import zarr
from scipy import ndimage

from medarena.evaluators.segmentation import evaluate, evaluate_chunked
from medarena.evaluators.segmentation._chunked import slabs

METRICS = ["dice", "iou", "tp", "fp", "fn", "tn", "volume_difference_ml", "hd", "hd95", "assd", "masd", "nsd@1.5"]


def _blobs(shape, seed, top=2):
    rng = np.random.default_rng(seed)
    out = np.zeros(shape, np.uint8)
    for value in range(1, top + 1):
        field = ndimage.gaussian_filter(rng.random(shape), 2)
        out[(field > np.quantile(field, 0.75)) & (out == 0)] = value
    out[0, :3] = 1  # touches the first slice and an edge
    out[-1, -2:] = top  # and the last
    return out


def _zarr(tmp_path, name, array, chunks):
    z = zarr.create_array(str(tmp_path / f"{name}.zarr"), shape=array.shape, chunks=chunks, dtype=array.dtype)
    z[:] = array
    return z


def _same(got, expected):
    assert got.keys() == expected.keys()
    for label, row in expected.items():
        assert got[label].keys() == row.keys(), label
        for metric, value in row.items():
            if isinstance(value, float) and np.isnan(value):
                assert np.isnan(got[label][metric]), (label, metric)
            else:
                assert got[label][metric] == value, (label, metric, got[label][metric], value)


@pytest.mark.parametrize("convention", ["default", "deepmind", "pooled"])
@pytest.mark.parametrize("slab_planes", [1, 2, 3, 8, 64])
def test_same_floats_for_any_slab_size(tmp_path, convention, slab_planes):
    shape, spacing = (23, 19, 21), (1.5, 0.7, 0.9)
    a, b = _blobs(shape, 1), _blobs(shape, 2)
    stores = _zarr(tmp_path, "a", a, (8, 19, 21)), _zarr(tmp_path, "b", b, (8, 19, 21))
    expected = evaluate(a, b, spacing=spacing, metrics=METRICS, convention=convention)
    got = evaluate_chunked(*stores, spacing=spacing, metrics=METRICS, convention=convention,
                           slab_voxels=slab_planes * 19 * 21)
    _same(got, expected)


def test_labels_declared_grouped_missing_and_appearing_late(tmp_path):
    shape = (20, 16, 18)
    a, b = _blobs(shape, 3, top=3), _blobs(shape, 4, top=3)
    a[15, 5:9, 5:9] = 7  # a label only in the last slabs, and only in the reference
    labels = {"one": 1, "whole": [1, 2, 3], "seven": 7, "absent": 9}
    expected = evaluate(a, b, spacing=(1, 1, 2), metrics=METRICS, labels=labels)
    got = evaluate_chunked(_zarr(tmp_path, "a", a, (4, 16, 18)), _zarr(tmp_path, "b", b, (4, 16, 18)),
                           spacing=(1, 1, 2), metrics=METRICS, labels=labels, slab_voxels=4 * 16 * 18)
    _same(got, expected)
    assert got["seven"]["empty"] == "prediction" and got["absent"]["empty"] == "both"
    undeclared = evaluate_chunked(a, b, spacing=(1, 1, 2), metrics=METRICS, slab_voxels=4 * 16 * 18)
    assert set(undeclared) == {"1", "2", "3", "7"}
    _same(undeclared, evaluate(a, b, spacing=(1, 1, 2), metrics=METRICS))


def test_wide_labels_bool_and_dask_inputs():
    shape = (18, 17, 15)
    a, b = _blobs(shape, 5, top=3).astype(np.uint16), _blobs(shape, 6, top=3).astype(np.uint16)
    a[a == 3], b[b == 2] = 300, 300  # beyond the small-label histogram: per-region counts
    a[:4][a[:4] == 300] = 0  # ... from the fifth slice on, after the first slabs were counted as small labels
    b[:4][b[:4] == 300] = 0
    expected = evaluate(a, b, spacing=(0.5, 1, 1), metrics=METRICS)
    got = evaluate_chunked(da.from_array(a, chunks=(3, 17, 15)), da.from_array(b, chunks=(3, 17, 15)),
                           spacing=(0.5, 1, 1), metrics=METRICS, slab_voxels=3 * 17 * 15)
    _same(got, expected)
    ma, mb = a > 0, b > 0
    _same(evaluate_chunked(ma, mb, spacing=(1, 1, 1), metrics=METRICS, slab_voxels=100),
          evaluate(ma, mb, spacing=(1, 1, 1), metrics=METRICS))


def test_two_dimensional_maps():
    a, b = _blobs((40, 33), 7), _blobs((40, 33), 8)
    for convention in ("default", "deepmind"):
        _same(evaluate_chunked(a, b, spacing=(0.6, 1.1), metrics=METRICS, convention=convention, slab_voxels=5 * 33),
              evaluate(a, b, spacing=(0.6, 1.1), metrics=METRICS, convention=convention))


def test_slabs_follow_whole_chunks_when_they_fit():
    assert slabs((100, 10, 10), 3000, 8) == [(0, 24), (24, 48), (48, 72), (72, 96), (96, 100)]
    assert slabs((100, 10, 10), 500, 8) == [(z, min(z + 5, 100)) for z in range(0, 100, 5)]  # a chunk does not fit
    assert slabs((5, 10, 10), 1, None) == [(z, z + 1) for z in range(5)]  # at least a slice


def test_refuses_what_needs_whole_components():
    a = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(ValueError, match="chunked path"):
        evaluate_chunked(a, a, spacing=(1, 1, 1), metrics=["lesion_f1"])
    with pytest.raises(ValueError, match="spacing"):
        evaluate_chunked(a, a, spacing=(1, 0, 1), metrics=["dice"])
