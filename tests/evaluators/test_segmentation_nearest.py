"""The cell-grid nearest-neighbour search equals scipy's k-d tree, float for float."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from medarena.evaluators.segmentation import _surface as surface
from medarena.evaluators.segmentation._nearest import nearest_distances


def _kdtree(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    return cKDTree(targets).query(points, k=1)[0]


def _lattice(rng: np.random.Generator, count: int, shape: tuple[int, ...], spacing: tuple[float, ...],
             shift: float = 0.0) -> np.ndarray:
    """Random voxel-index points (with repeats) times the spacing, as surface points are."""
    index = np.stack([rng.integers(0, n, count) for n in shape], 1)
    return (index + shift) * np.asarray(spacing)


def _clustered(rng: np.random.Generator, count: int, dim: int, spacing: tuple[float, ...]) -> np.ndarray:
    centres = rng.uniform(0, 200, (5, dim))
    points = centres[rng.integers(0, 5, count)] + rng.normal(0, 3, (count, dim))
    return np.round(points) * np.asarray(spacing)


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grid_search_equals_kdtree(dim, seed):
    rng = np.random.default_rng(seed)
    spacing = (1.5, 0.8, 0.8)[-dim:] if seed != 2 else (0.3, 2.7, 1.1)[-dim:]
    shape = (60, 80, 70)[-dim:]
    cases = [
        (_lattice(rng, 3000, shape, spacing), _lattice(rng, 2000, shape, spacing)),  # spread
        (_lattice(rng, 2000, shape, spacing, -0.5), _clustered(rng, 1500, dim, spacing)),  # clustered
        (_clustered(rng, 1000, dim, spacing), _clustered(rng, 50, dim, spacing)),  # few targets
        (rng.uniform(-500, 800, (400, dim)), _clustered(rng, 300, dim, spacing)),  # far from all targets
        (rng.uniform(0, 50, (500, dim)), rng.uniform(0, 50, (1, dim))),  # one target
        (rng.normal(0, 1e-3, (300, dim)), rng.normal(0, 1e-3, (200, dim))),  # tiny extent
    ]
    for points, targets in cases:
        np.testing.assert_array_equal(nearest_distances(points, targets), _kdtree(points, targets))


def test_grid_search_flat_and_degenerate_target_sets():
    rng = np.random.default_rng(5)
    points = rng.uniform(-20, 20, (500, 3))
    flat = np.concatenate([np.zeros((400, 1)), rng.uniform(-10, 10, (400, 2))], axis=1)
    line = np.stack([np.zeros(100), np.zeros(100), np.linspace(-1e4, 1e4, 100)], 1)
    same = np.ones((50, 3))
    for targets in (flat, line, same, np.concatenate([line, [[1e-7, 0.0, 0.0]]])):
        np.testing.assert_array_equal(nearest_distances(points, targets), _kdtree(points, targets))


def test_grid_search_sphere_surfaces_far_apart():
    """Query points whose nearest target is many cells away (many rings and slabs scanned)."""
    z, y, x = np.ogrid[:40, :40, :40]
    ball = (z - 20) ** 2 + (y - 20) ** 2 + (x - 20) ** 2 <= 8 ** 2
    a, _ = surface.surface_points(ball, (1.5, 0.8, 0.8), "surfel")
    b = a + np.array([300.0, -40.0, 120.0])
    far = np.concatenate([a, b[::7]])
    np.testing.assert_array_equal(nearest_distances(a, b), _kdtree(a, b))
    np.testing.assert_array_equal(nearest_distances(b, far), _kdtree(b, far))


def test_empty_sets():
    points = np.ones((4, 3))
    assert nearest_distances(np.zeros((0, 3)), points).shape == (0,)
    assert np.all(np.isinf(nearest_distances(points, np.zeros((0, 3)))))
    assert np.all(np.isinf(surface.nearest_distances(points[:, :2], np.zeros((0, 2)))))
    with pytest.raises(ValueError, match="N x 2 or N x 3"):
        nearest_distances(np.ones((3, 4)), np.ones((3, 4)))


def test_grid_search_groups_near_and_far_queries():
    """Nested surfaces (queries answered in groups) with a distant blob among the queries (groups
    whose radius is too small, then too large, so queries are searched one by one) and back."""
    z, y, x = np.ogrid[:48, :48, :48]
    outer = (z - 24) ** 2 + (y - 24) ** 2 + (x - 24) ** 2 <= 20 ** 2
    inner = (z - 26) ** 2 + (y - 23) ** 2 + (x - 24) ** 2 <= 16.5 ** 2
    spacing = (1.5, 0.8, 0.8)
    a, _ = surface.surface_points(outer, spacing, "surfel")
    b, _ = surface.surface_points(inner, spacing, "surfel")
    blob = a[::50] * 0.1 + np.array([400.0, 10.0, -30.0])
    queries = np.concatenate([a[: len(a) // 2], blob, a[len(a) // 2:]])
    np.testing.assert_array_equal(nearest_distances(queries, b), _kdtree(queries, b))
    np.testing.assert_array_equal(nearest_distances(b, a), _kdtree(b, a))


def _box_of(mask: np.ndarray) -> tuple[slice, ...] | None:
    nonzero = np.argwhere(mask)
    if len(nonzero) == 0:
        return None
    return tuple(slice(int(lo), int(hi) + 1) for lo, hi in zip(nonzero.min(0), nonzero.max(0), strict=True))


def test_bounding_box_of_cut_and_uncut_masks():
    rng = np.random.default_rng(3)
    for _ in range(20):
        a = rng.random((9, 7, 8)) < 0.02
        b = rng.random((9, 7, 8)) < 0.02
        expected = _box_of(a | b)
        assert surface.bounding_box(a, b) == expected
        assert surface.bounding_box(a.astype(np.uint8), b[:, ::-1][:, ::-1]) == expected  # integers, strided
        assert surface.bounding_box(a[:, 3], b[:, 3]) == _box_of(a[:, 3] | b[:, 3])
        if expected is not None:
            assert surface.bounding_box(a[expected], b[expected]) == tuple(slice(0, n) for n in a[expected].shape)
    assert surface.bounding_box(np.zeros((0, 3), bool)) is None


@pytest.mark.parametrize("count", [0, 1, 7, 5000, 100_000])
def test_sort_pairs_equals_lexsort(count):
    """Few distinct pairs (counted), many (lexsort), and NaN (lexsort) give lexsort's arrays."""
    rng = np.random.default_rng(count)
    few = (np.sqrt(rng.integers(0, 40, count) * 0.64), rng.integers(1, 5, count) * 0.3)
    many = (rng.random(count), rng.random(count))
    cases = [few, many]
    if count:
        cases.append((np.where(rng.random(count) < 0.1, np.nan, few[0]), few[1]))
    for distances, weights in cases:
        order = np.lexsort((weights, distances))
        sorted_distances, sorted_weights = surface.sort_pairs(distances, weights)
        np.testing.assert_array_equal(sorted_distances, distances[order])
        np.testing.assert_array_equal(sorted_weights, weights[order])
