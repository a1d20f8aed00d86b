"""Surface distances between two binary masks, and the metrics built on them.

Two surface definitions (docs/metrics.md, section Segmentation):

- ``"voxel"`` (default, as MetricsReloaded and MONAI): the border voxels of a mask are its voxels
  with a face neighbour (6-connectivity in 3D, 4 in 2D) outside it; outside the image counts as
  outside. Points are voxel centres; every border voxel weighs 1.
- ``"surfel"`` (google-deepmind/surface-distance, Nikolov et al. 2021): points are the corners of
  the voxel grid whose 2x2x2 neighbourhood is mixed, each weighted by its surfel area (2D: contour
  length), see :mod:`medarena.evaluators.segmentation._surfels`.

D_AB holds, for every surface point of A, the Euclidean distance in mm to the nearest surface
point of B; D_BA the other way. Only the surface points are ever touched: the masks are cropped
to the bounding box of their union, the points extracted, and nearest neighbours found on a cell
grid (:mod:`medarena.evaluators.segmentation._nearest`), so the cost grows with the surface, not with
the image. The points themselves: :mod:`medarena.evaluators.segmentation._surface_points`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np

from medarena.evaluators._checks import check_same_shape, check_spacing
from medarena.evaluators.segmentation._nearest import nearest_distances
from medarena.evaluators.segmentation._surface_points import (
    SURFACES,
    border_voxels,
    bounding_box,
    neighbour_codes,
    surface_points,
)

__all__ = [  # the surface-point helpers are used through this module by both paths
    "SURFACES", "SurfaceDistances", "assd", "assd_from_distances", "border_voxels", "bounding_box",
    "directed_percentile", "hausdorff_distance", "hausdorff_from_distances", "image_diagonal", "masd",
    "masd_from_distances", "nearest_distances", "neighbour_codes", "nsd", "nsd_from_distances",
    "sort_pairs", "surface_distances", "surface_distances_in_box", "surface_points",
]


@dataclass(frozen=True)
class SurfaceDistances:
    """Directed surface distances (mm) with the weight of each surface point.

    ``weights_ab`` is None when every point weighs 1 (voxel borders), else the surfel areas.
    A side whose mask is empty has no points; the other side's distances are then ``inf``.
    """

    ab: np.ndarray
    ba: np.ndarray
    weights_ab: np.ndarray | None = None
    weights_ba: np.ndarray | None = None

    @property
    def weighted(self) -> bool:
        return self.weights_ab is not None


def surface_distances(
    reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float], surface: str = "voxel"
) -> SurfaceDistances:
    """D_AB and D_BA between the surfaces of two binary masks (see the module docstring)."""
    a, b = np.asarray(reference, bool), np.asarray(prediction, bool)
    return surface_distances_in_box(a, b, spacing, surface, (0,) * a.ndim)


def surface_distances_in_box(
    reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float], surface: str,
    origin: Sequence[int],
) -> SurfaceDistances:
    """:func:`surface_distances` of two masks cut from larger images, ``origin`` being the index
    of their first voxel there; every mask voxel outside the cut must be empty. Points keep their
    positions in the larger images, so the values equal those computed on the whole images."""
    a, b = np.asarray(reference, bool), np.asarray(prediction, bool)
    check_same_shape(a.shape, b.shape)
    spacing = check_spacing(spacing, a.ndim)
    box = bounding_box(a, b)
    if box is None:
        empty = np.zeros(0)
        return SurfaceDistances(empty, empty, *((empty, empty) if surface == "surfel" else (None, None)))
    offset = [int(o) + s.start for o, s in zip(origin, box, strict=True)]
    points_a, weights_a = surface_points(a[box], spacing, surface, offset)
    points_b, weights_b = surface_points(b[box], spacing, surface, offset)
    return SurfaceDistances(
        nearest_distances(points_a, points_b), nearest_distances(points_b, points_a), weights_a, weights_b
    )


def directed_percentile(distances: np.ndarray, percentile: float, weights: np.ndarray | None = None) -> float:
    """The ``percentile`` of one directed distance set.

    Unweighted: numpy's linear interpolation. Weighted (surface-distance's
    ``compute_robust_hausdorff``): sort by distance, then the first distance whose cumulative
    weight share reaches ``percentile / 100``. Empty set: inf.
    """
    if len(distances) == 0:
        return math.inf
    if weights is None:
        return float(np.percentile(distances, percentile))
    sorted_distances, sorted_weights = sort_pairs(np.asarray(distances, float), np.asarray(weights, float))
    cumulative = np.cumsum(sorted_weights) / np.sum(sorted_weights)
    index = int(np.searchsorted(cumulative, percentile / 100.0))
    return float(sorted_distances[min(index, len(distances) - 1)])


_MAX_DISTINCT_PAIRS = 1 << 16


def sort_pairs(distances: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (distance, weight) pairs sorted by distance, then weight (as ``np.lexsort``).

    Surface distances and surfel areas take few distinct values (points on one lattice, areas
    from a table), so the distinct pairs are counted in a hash table, sorted, and repeated by
    their counts; the result is the same two arrays as indexing with the lexsort order, since
    equal pairs are equal floats. More than 65 536 distinct pairs, or a NaN: plain lexsort.
    """
    counted = _count_pairs(distances + 0.0, weights + 0.0, _MAX_DISTINCT_PAIRS)  # + 0.0: no -0.0
    if counted is None:
        order = np.lexsort((weights, distances))
        return distances[order], weights[order]
    keys_d, keys_w, counts = counted
    order = np.lexsort((keys_w, keys_d))
    return np.repeat(keys_d[order], counts[order]), np.repeat(keys_w[order], counts[order])


@numba.njit(cache=True)
def _count_pairs(
    distances: np.ndarray, weights: np.ndarray, limit: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Distinct (distance, weight) pairs and their counts (open addressing on the bit patterns),
    or None when there are more than ``limit`` of them or a NaN."""
    size = 1 << 10
    while size < 4 * min(limit, distances.shape[0]):
        size *= 2
    bits_d, bits_w = distances.view(np.uint64), weights.view(np.uint64)
    slot_d, slot_w = np.zeros(size, np.uint64), np.zeros(size, np.uint64)
    count = np.zeros(size, np.int64)
    distinct = 0
    for i in range(distances.shape[0]):
        if distances[i] != distances[i] or weights[i] != weights[i]:
            return None
        a, b = bits_d[i], bits_w[i]
        h = ((a * np.uint64(0x9E3779B97F4A7C15)) ^ (b * np.uint64(0xC2B2AE3D27D4EB4F))) >> np.uint64(40)
        j = int(h) & (size - 1)
        while count[j] != 0 and (slot_d[j] != a or slot_w[j] != b):
            j = (j + 1) & (size - 1)
        if count[j] == 0:
            distinct += 1
            if distinct > limit:
                return None
            slot_d[j], slot_w[j] = a, b
        count[j] += 1
    used = np.flatnonzero(count)
    return slot_d[used].view(np.float64), slot_w[used].view(np.float64), count[used]


def hausdorff_from_distances(sd: SurfaceDistances, percentile: float = 100.0, pooled: bool = False) -> float:
    """HD_p = max(P_p(D_AB), P_p(D_BA)); ``pooled``: P_p(D_AB ∪ D_BA) (MedPy, seg-metrics).

    p = 100 is the Hausdorff distance; 95 the usual robust variant.
    """
    if pooled:
        joined = np.concatenate([sd.ab, sd.ba])
        weights = None if sd.weights_ab is None else np.concatenate([sd.weights_ab, sd.weights_ba])
        return directed_percentile(joined, percentile, weights)
    return max(directed_percentile(sd.ab, percentile, sd.weights_ab),
               directed_percentile(sd.ba, percentile, sd.weights_ba))


def _weighted_sum_and_total(distances: np.ndarray, weights: np.ndarray | None) -> tuple[float, float]:
    if weights is None:
        return float(np.sum(distances)), float(len(distances))
    return float(np.sum(distances * weights)), float(np.sum(weights))


def assd_from_distances(sd: SurfaceDistances) -> float:
    """ASSD = (ΣD_AB + ΣD_BA) / (|D_AB| + |D_BA|) (weighted by surfel area when weighted)."""
    sum_ab, n_ab = _weighted_sum_and_total(sd.ab, sd.weights_ab)
    sum_ba, n_ba = _weighted_sum_and_total(sd.ba, sd.weights_ba)
    return (sum_ab + sum_ba) / (n_ab + n_ba) if n_ab + n_ba else math.nan


def masd_from_distances(sd: SurfaceDistances) -> float:
    """MASD = (mean D_AB + mean D_BA) / 2 (MetricsReloaded; the mean of MedPy's two ``asd``)."""
    sum_ab, n_ab = _weighted_sum_and_total(sd.ab, sd.weights_ab)
    sum_ba, n_ba = _weighted_sum_and_total(sd.ba, sd.weights_ba)
    if not n_ab or not n_ba:
        return math.nan
    return (sum_ab / n_ab + sum_ba / n_ba) / 2.0


def nsd_from_distances(sd: SurfaceDistances, tolerance: float) -> float:
    """NSD@τ = (#{D_AB ≤ τ} + #{D_BA ≤ τ}) / (|D_AB| + |D_BA|), counts weighted by surfel area
    when weighted (Nikolov et al. 2021, "surface Dice")."""
    if sd.weights_ab is None:
        hits = np.count_nonzero(sd.ab <= tolerance) + np.count_nonzero(sd.ba <= tolerance)
        total = len(sd.ab) + len(sd.ba)
    else:
        hits = np.sum(sd.weights_ab[sd.ab <= tolerance]) + np.sum(sd.weights_ba[sd.ba <= tolerance])
        total = np.sum(sd.weights_ab) + np.sum(sd.weights_ba)
    return float(hits / total) if total else math.nan


def image_diagonal(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """Length in mm of the image's diagonal, ‖shape × spacing‖: the worst-case distance."""
    return float(np.linalg.norm(np.asarray(shape, float) * np.asarray(spacing, float)))


def _checked_spacing(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float]) -> tuple[float, ...]:
    check_same_shape(np.shape(reference), np.shape(prediction))
    return check_spacing(spacing, np.ndim(reference))


def _default_empty(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float],
                   both: float) -> float | None:
    """MetricsReloaded's empty-mask rule for distances: 0 if both empty, the diagonal if one is."""
    has_a, has_b = bool(np.any(reference)), bool(np.any(prediction))
    if has_a and has_b:
        return None
    return both if not (has_a or has_b) else image_diagonal(np.shape(reference), spacing)


def hausdorff_distance(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float],
                       percentile: float = 100.0) -> float:
    """Hausdorff distance HD_p = max(P_p(D_AB), P_p(D_BA)) in mm (p = 100: the Hausdorff distance, p = 95: HD95).

    Border voxels (voxels with a face neighbour outside the mask) at their centres; D_AB
    are the distances in mm from each border voxel of A to the nearest one of B, D_BA the
    other way. In the example, four of the eight border voxels of each square are 1 mm from
    the other's border and four lie on it.

    Parameters
    ----------
    reference, prediction : numpy.ndarray
        Binary masks of one shape, 2D or 3D (non-zero is foreground).
    spacing : sequence of float
        Voxel size in mm, one positive value per axis (array order).
    percentile : float
        p in [0, 100]; percentiles interpolate linearly (numpy's default).

    Returns
    -------
    float
        In mm. Empty masks (Metrics Reloaded): 0 when both are empty, the image diagonal when
        exactly one is.

    References
    ----------
    MONAI 1.6.1 ``compute_hausdorff_distance`` (checked equal in the tests); Maier-Hein et al.,
    Metrics Reloaded, Nature Methods 21:195 (2024); docs/metrics.md, section Segmentation.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((6, 6), bool); a[1:4, 1:4] = True  # a 3 x 3 square
    >>> b = np.roll(a, 1, axis=1)                       # the same square, one voxel to the right
    >>> hausdorff_distance(a, b, spacing=(1, 1)), hausdorff_distance(a, b, (1, 1), percentile=95)
    (1.0, 1.0)
    """
    spacing = _checked_spacing(reference, prediction, spacing)
    empty = _default_empty(reference, prediction, spacing, 0.0)
    if empty is not None:
        return empty
    return hausdorff_from_distances(surface_distances(reference, prediction, spacing), percentile)


def assd(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float]) -> float:
    """Average symmetric surface distance (ΣD_AB + ΣD_BA) / (|D_AB| + |D_BA|) in mm.

    Border voxels (voxels with a face neighbour outside the mask) at their centres; D_AB
    are the distances in mm from each border voxel of A to the nearest one of B, D_BA the
    other way. In the example, four of the eight border voxels of each square are 1 mm from
    the other's border and four lie on it.

    Parameters
    ----------
    reference, prediction : numpy.ndarray
        Binary masks of one shape, 2D or 3D (non-zero is foreground).
    spacing : sequence of float
        Voxel size in mm, one positive value per axis (array order).

    Returns
    -------
    float
        In mm; empty masks as :func:`hausdorff_distance`.

    References
    ----------
    MONAI 1.6.1 ``compute_average_surface_distance(symmetric=True)``; docs/metrics.md, section
    Segmentation.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((6, 6), bool); a[1:4, 1:4] = True  # a 3 x 3 square
    >>> b = np.roll(a, 1, axis=1)                       # the same square, one voxel to the right
    >>> assd(a, b, spacing=(1, 1))  # (4 + 4) / (8 + 8)
    0.5
    """
    spacing = _checked_spacing(reference, prediction, spacing)
    empty = _default_empty(reference, prediction, spacing, 0.0)
    if empty is not None:
        return empty
    return assd_from_distances(surface_distances(reference, prediction, spacing))


def masd(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float]) -> float:
    """Mean average surface distance (mean D_AB + mean D_BA) / 2 in mm.

    Border voxels (voxels with a face neighbour outside the mask) at their centres; D_AB
    are the distances in mm from each border voxel of A to the nearest one of B, D_BA the
    other way. In the example, four of the eight border voxels of each square are 1 mm from
    the other's border and four lie on it.

    Parameters
    ----------
    reference, prediction : numpy.ndarray
        Binary masks of one shape, 2D or 3D (non-zero is foreground).
    spacing : sequence of float
        Voxel size in mm, one positive value per axis (array order).

    Returns
    -------
    float
        In mm; empty masks as :func:`hausdorff_distance`.

    References
    ----------
    Maier-Hein et al., Metrics Reloaded, Nature Methods 21:195 (2024) (MASD); docs/metrics.md,
    section Segmentation.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((6, 6), bool); a[1:4, 1:4] = True  # a 3 x 3 square
    >>> b = np.roll(a, 1, axis=1)                       # the same square, one voxel to the right
    >>> masd(a, b, spacing=(1, 1))  # (4 / 8 + 4 / 8) / 2
    0.5
    """
    spacing = _checked_spacing(reference, prediction, spacing)
    empty = _default_empty(reference, prediction, spacing, 0.0)
    if empty is not None:
        return empty
    return masd_from_distances(surface_distances(reference, prediction, spacing))


def nsd(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float], tolerance: float) -> float:
    """Normalized surface distance (surface Dice) (#{D_AB ≤ τ} + #{D_BA ≤ τ}) / (|D_AB| + |D_BA|).

    Border voxels (voxels with a face neighbour outside the mask) at their centres; D_AB
    are the distances in mm from each border voxel of A to the nearest one of B, D_BA the
    other way. In the example, four of the eight border voxels of each square are 1 mm from
    the other's border and four lie on it.

    Parameters
    ----------
    reference, prediction : numpy.ndarray
        Binary masks of one shape, 2D or 3D (non-zero is foreground).
    spacing : sequence of float
        Voxel size in mm, one positive value per axis (array order).
    tolerance : float
        τ in mm.

    Returns
    -------
    float
        In [0, 1]; 1 when both masks are empty, 0 when exactly one is.

    References
    ----------
    Nikolov et al., arXiv:1809.04430 (2021); MONAI 1.6.1 ``compute_surface_dice(use_subvoxels=False)``;
    docs/metrics.md, section Segmentation.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((6, 6), bool); a[1:4, 1:4] = True  # a 3 x 3 square
    >>> b = np.roll(a, 1, axis=1)                       # the same square, one voxel to the right
    >>> nsd(a, b, (1, 1), tolerance=0.5), nsd(a, b, (1, 1), tolerance=1.0)
    (0.5, 1.0)
    """
    spacing = _checked_spacing(reference, prediction, spacing)
    has_a, has_b = bool(np.any(reference)), bool(np.any(prediction))
    if not (has_a and has_b):
        return 1.0 if not (has_a or has_b) else 0.0
    return nsd_from_distances(surface_distances(reference, prediction, spacing), tolerance)
