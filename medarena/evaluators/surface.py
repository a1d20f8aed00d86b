"""Surface distances between two binary masks, and the metrics built on them.

Two surface definitions (METRICS.md):

- ``"voxel"`` (default, as MetricsReloaded and MONAI): the border voxels of a mask are its voxels
  with a face neighbour (6-connectivity in 3D, 4 in 2D) outside it; outside the image counts as
  outside. Points are voxel centres; every border voxel weighs 1.
- ``"surfel"`` (google-deepmind/surface-distance, Nikolov et al. 2021): points are the corners of
  the voxel grid whose 2x2x2 neighbourhood is mixed, each weighted by its surfel area (2D: contour
  length), see :mod:`medarena.evaluators.surfels`.

D_AB holds, for every surface point of A, the Euclidean distance in mm to the nearest surface
point of B; D_BA the other way. Only the surface points are ever touched: the masks are cropped
to the bounding box of their union, the points extracted, and nearest neighbours found with a
k-d tree, so the cost grows with the surface, not with the image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from medarena.evaluators.surfels import surfel_table

SURFACES = ("voxel", "surfel")


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


def bounding_box(*masks: np.ndarray) -> tuple[slice, ...] | None:
    """The smallest box (slices) holding every non-zero voxel of all masks, or None if all are empty."""
    box = []
    ndim = masks[0].ndim
    for axis in range(ndim):
        others = tuple(a for a in range(ndim) if a != axis)
        profile = np.zeros(masks[0].shape[axis], bool)
        for mask in masks:
            profile |= np.any(mask, axis=others)
        hits = np.flatnonzero(profile)
        if hits.size == 0:
            return None
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def border_voxels(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with at least one face neighbour outside it (outside the image counts)."""
    mask = np.asarray(mask, bool)
    padded = np.pad(mask, 1)
    interior = padded[(slice(1, -1),) * mask.ndim].copy()
    for axis in range(mask.ndim):
        for shift in (slice(0, -2), slice(2, None)):
            index = [slice(1, -1)] * mask.ndim
            index[axis] = shift
            interior &= padded[tuple(index)]
    return mask & ~interior


def neighbour_codes(mask: np.ndarray) -> np.ndarray:
    """The neighbour code of every voxel corner: shape + 1 per axis (bit order in :mod:`surfels`).

    Corner ``i`` lies between voxels ``i - 1`` and ``i`` on each axis.
    """
    m = np.pad(np.asarray(mask, bool), 1).view(np.uint8)
    if m.ndim == 2:
        return (m[:-1, :-1] << 3) | (m[:-1, 1:] << 2) | (m[1:, :-1] << 1) | m[1:, 1:]
    plane = (m[:, :-1, :-1] << 3) | (m[:, :-1, 1:] << 2) | (m[:, 1:, :-1] << 1) | m[:, 1:, 1:]
    return (plane[:-1] << 4) | plane[1:]


def surface_points(
    mask: np.ndarray, spacing: Sequence[float], surface: str = "voxel", offset: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Physical positions (mm, array order, relative to voxel 0 minus ``offset``) of the surface
    points of ``mask``, and their weights (None for voxel borders, surfel measures otherwise)."""
    spacing_arr = np.asarray(spacing, float)
    start = np.zeros(mask.ndim) if offset is None else np.asarray(offset, float)
    if surface == "voxel":
        index = np.nonzero(border_voxels(mask))
        points = (np.stack(index, 1) + start) * spacing_arr
        return points, None
    if surface == "surfel":
        codes = neighbour_codes(mask)
        full = (1 << (2 ** mask.ndim)) - 1
        on_surface = (codes != 0) & (codes != full)
        index = np.nonzero(on_surface)
        points = (np.stack(index, 1) + start - 0.5) * spacing_arr
        weights = surfel_table(spacing)[codes[index]]
        return points, weights
    raise ValueError(f"unknown surface {surface!r}; known: {', '.join(SURFACES)}")


def nearest_distances(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Euclidean distance from every point to its nearest target (inf when there is no target)."""
    if len(points) == 0:
        return np.zeros(0)
    if len(targets) == 0:
        return np.full(len(points), np.inf)
    tree = cKDTree(targets, leafsize=32, balanced_tree=False, compact_nodes=False)
    distances, _ = tree.query(points, k=1, workers=1)
    return np.asarray(distances, float)


def surface_distances(
    reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float], surface: str = "voxel"
) -> SurfaceDistances:
    """D_AB and D_BA between the surfaces of two binary masks (see the module docstring)."""
    a, b = np.asarray(reference, bool), np.asarray(prediction, bool)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: reference {a.shape}, prediction {b.shape}")
    if len(spacing) != a.ndim:
        raise ValueError(f"spacing {tuple(spacing)} does not match a {a.ndim}D mask")
    box = bounding_box(a, b)
    if box is None:
        empty = np.zeros(0)
        return SurfaceDistances(empty, empty, *((empty, empty) if surface == "surfel" else (None, None)))
    offset = [s.start for s in box]
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
    order = np.lexsort((weights, distances))
    cumulative = np.cumsum(weights[order]) / np.sum(weights[order])
    index = int(np.searchsorted(cumulative, percentile / 100.0))
    return float(distances[order][min(index, len(distances) - 1)])


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


def _default_empty(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float],
                   both: float) -> float | None:
    """MetricsReloaded's empty-mask rule for distances: 0 if both empty, the diagonal if one is."""
    has_a, has_b = bool(np.any(reference)), bool(np.any(prediction))
    if has_a and has_b:
        return None
    return both if not (has_a or has_b) else image_diagonal(np.shape(reference), spacing)


def hausdorff_distance(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float],
                       percentile: float = 100.0) -> float:
    """HD_p = max(P_p(D_AB), P_p(D_BA)) in mm over border voxels (p = 95 gives HD95).

    Percentiles interpolate linearly (numpy's default), as MONAI's ``compute_hausdorff_distance``.
    Empty masks (MetricsReloaded): both empty 0, exactly one empty the image diagonal.
    """
    empty = _default_empty(reference, prediction, spacing, 0.0)
    if empty is not None:
        return empty
    return hausdorff_from_distances(surface_distances(reference, prediction, spacing), percentile)


def assd(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float]) -> float:
    """Average symmetric surface distance (ΣD_AB + ΣD_BA)/(|D_AB| + |D_BA|) in mm, as MONAI's
    ``compute_average_surface_distance(symmetric=True)``. Empty masks as :func:`hausdorff_distance`."""
    empty = _default_empty(reference, prediction, spacing, 0.0)
    if empty is not None:
        return empty
    return assd_from_distances(surface_distances(reference, prediction, spacing))


def masd(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float]) -> float:
    """Mean average surface distance (mean D_AB + mean D_BA)/2 in mm (MetricsReloaded's MASD).
    Empty masks as :func:`hausdorff_distance`."""
    empty = _default_empty(reference, prediction, spacing, 0.0)
    if empty is not None:
        return empty
    return masd_from_distances(surface_distances(reference, prediction, spacing))


def nsd(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float], tolerance: float) -> float:
    """Normalized surface distance (surface Dice) at ``tolerance`` mm over border voxels, as MONAI's
    ``compute_surface_dice(use_subvoxels=False)``. Both empty: 1; exactly one empty: 0."""
    has_a, has_b = bool(np.any(reference)), bool(np.any(prediction))
    if not (has_a and has_b):
        return 1.0 if not (has_a or has_b) else 0.0
    return nsd_from_distances(surface_distances(reference, prediction, spacing), tolerance)
