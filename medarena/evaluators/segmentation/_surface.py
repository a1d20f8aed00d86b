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
grid (:mod:`medarena.evaluators.segmentation._nearest`), so the cost grows with the surface, not with the image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np

from medarena.evaluators._checks import check_same_shape, check_spacing
from medarena.evaluators.segmentation._nearest import nearest_distances
from medarena.evaluators.segmentation._surfels import surfel_table

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
    """The smallest box (slices) holding every non-zero voxel of all masks, or None if all are empty.

    The range of axis 0 comes first; the other axes are then found in the union of the masks'
    slices in that range, collapsed along axis 0. Masks already cut to their box (a non-zero voxel
    on every face) are recognised from their faces.
    """
    masks = tuple(np.asarray(mask) for mask in masks)
    if _touches_every_face(masks):
        return tuple(slice(0, n) for n in masks[0].shape)
    profile = np.zeros(masks[0].shape[0], bool)
    for mask in masks:
        profile |= _any_per_slice(mask)
    hits = np.flatnonzero(profile)
    if hits.size == 0:
        return None
    first = slice(int(hits[0]), int(hits[-1]) + 1)
    if masks[0].ndim == 1:
        return (first,)
    plane = np.zeros(masks[0].shape[1:], bool)
    for mask in masks:
        plane |= _any_along_axis0(mask[first])
    return (first, *bounding_box(plane))


def _bytes_tell_nonzero(mask: np.ndarray) -> bool:
    """Whether an element is non-zero exactly when one of its bytes is (bool and integers)."""
    return mask.dtype.kind in "biu"


def _any_per_slice(mask: np.ndarray) -> np.ndarray:
    """Whether each slice along axis 0 holds a non-zero voxel; contiguous bool or integer masks are
    read 8 bytes at a time."""
    row = mask[0].nbytes if len(mask) else 0
    if _bytes_tell_nonzero(mask) and mask.flags.c_contiguous and row and row % 8 == 0:
        return mask.reshape(len(mask), -1).view(np.uint8).view(np.uint64).max(axis=1) > 0
    return np.any(mask, axis=tuple(range(1, mask.ndim)))


def _any_along_axis0(mask: np.ndarray) -> np.ndarray:
    """Whether each line along axis 0 holds a non-zero voxel (the maximum over the slices)."""
    if mask.dtype == bool:
        return mask.view(np.uint8).max(axis=0) > 0
    return np.any(mask, axis=0)


def _touches_every_face(masks: Sequence[np.ndarray]) -> bool:
    """Whether the first and the last slice along every axis hold a non-zero voxel of some mask:
    then no smaller box holds them all."""
    if 0 in masks[0].shape:
        return False
    for axis in range(masks[0].ndim):
        for index in (0, -1):
            face = (slice(None),) * axis + (index,)
            if not any(np.any(mask[face]) for mask in masks):
                return False
    return True


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
    points of ``mask``, and their weights (None for voxel borders, surfel measures otherwise).

    Voxel p = (i, j, k) sits at (p + offset) · s; corner c at (c + offset − ½) · s. Points come in
    array (raster) order.
    """
    if surface not in SURFACES:
        raise ValueError(f"unknown surface {surface!r}; known: {', '.join(SURFACES)}")
    spacing_arr = np.asarray(spacing, float)
    start = np.zeros(mask.ndim) if offset is None else np.asarray(offset, float)
    mask = np.asarray(mask, bool)
    if surface == "voxel":
        index = _border_index_3d(mask) if mask.ndim == 3 else np.stack(np.nonzero(border_voxels(mask)), 1)
        return (index + start) * spacing_arr, None
    if mask.ndim == 3:
        index, codes = _surfel_index_3d(mask)
    else:
        all_codes = neighbour_codes(mask)
        on_surface = np.nonzero((all_codes != 0) & (all_codes != 15))
        index, codes = np.stack(on_surface, 1), all_codes[on_surface]
    return (index + start - 0.5) * spacing_arr, surfel_table(spacing)[codes]


_WORD = np.dtype("<u8")


def _packed_rows(mask: np.ndarray) -> np.ndarray:
    """A 3D mask with its rows (axis 2) packed into 64-bit words, voxel x at bit x % 64 of word
    x // 64, framed by one empty row on each side of axes 0 and 1 and at least one empty bit at
    the end of each row: shape (n0 + 2, n1 + 2, n2 // 64 + 1)."""
    n0, n1, n2 = mask.shape
    words = n2 // 64 + 1
    packed = np.zeros((n0 + 2, n1 + 2, 8 * words), np.uint8)
    packed[1:-1, 1:-1, : (n2 + 7) // 8] = np.packbits(mask, axis=-1, bitorder="little")
    return packed.view(_WORD)


def _from_lower(rows: np.ndarray) -> np.ndarray:
    """Bit x of the result is bit x − 1 of ``rows`` (0 at x = 0): the voxel before, along axis 2.

    The rows are shifted as one flat bit string: every row ends with an empty bit, so nothing
    carries from one row into the next.
    """
    flat = rows.reshape(-1)
    shifted = flat << np.uint64(1)
    shifted[1:] |= flat[:-1] >> np.uint64(63)
    return shifted.reshape(rows.shape)


def _from_upper(rows: np.ndarray) -> np.ndarray:
    """Bit x of the result is bit x + 1 of ``rows``: the voxel after, along axis 2. The last bit
    of a row receives the next row's first bit; callers only read bits of voxels."""
    flat = rows.reshape(-1)
    shifted = flat >> np.uint64(1)
    shifted[:-1] |= flat[1:] << np.uint64(63)
    return shifted.reshape(rows.shape)


@numba.njit(cache=True, inline="always")
def _popcount(word: np.uint64) -> int:
    """Number of set bits of a 64-bit word (SWAR)."""
    word = word - ((word >> np.uint64(1)) & np.uint64(0x5555555555555555))
    word = (word & np.uint64(0x3333333333333333)) + ((word >> np.uint64(2)) & np.uint64(0x3333333333333333))
    word = (word + (word >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return int((word * np.uint64(0x0101010101010101)) >> np.uint64(56))


@numba.njit(cache=True)
def _set_bit_index(rows: np.ndarray) -> np.ndarray:
    """(N x 3) indices (row on axis 0, row on axis 1, bit along the row) of the set bits of packed
    rows (n0 x n1 x words), in raster order; bit x is bit x % 64 of word x // 64."""
    n0, n1, words = rows.shape
    count = 0
    for i in range(n0):
        for j in range(n1):
            for w in range(words):
                count += _popcount(rows[i, j, w])
    index = np.empty((count, 3), np.int64)
    k = 0
    for i in range(n0):
        for j in range(n1):
            for w in range(words):
                word = rows[i, j, w]
                while word:
                    low = word & (~word + np.uint64(1))
                    index[k, 0], index[k, 1], index[k, 2] = i, j, 64 * w + _popcount(low - np.uint64(1))
                    word ^= low
                    k += 1
    return index


@numba.njit(cache=True)
def _corner_codes(q: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Neighbour codes (as :func:`neighbour_codes`) of corners (c0, c1, x) from the framed packed
    rows ``q`` of :func:`_packed_rows`: the voxel before the corner along axis 2 is bit x − 1 of
    the row, the one after bit x; bit −1 is the empty last bit of the row before (or 0)."""
    n1, words = q.shape[1], q.shape[2]
    flat = q.reshape(-1)
    codes = np.empty(corners.shape[0], np.uint8)
    for k in range(corners.shape[0]):
        c0, c1, x = corners[k, 0], corners[k, 1], corners[k, 2]
        code = 0
        for dz in range(2):
            for dy in range(2):
                first = ((c0 + dz) * n1 + c1 + dy) * words * 64 + x - 1
                for dx in range(2):
                    bit = first + dx
                    if bit >= 0 and (flat[bit >> 6] >> np.uint64(bit & 63)) & np.uint64(1):
                        code |= 1 << (7 - (4 * dz + 2 * dy + dx))
        codes[k] = code
    return codes


def _border_index_3d(mask: np.ndarray) -> np.ndarray:
    """Indices (N x 3, raster order) of the border voxels of a 3D mask (as :func:`border_voxels`),
    computed on rows packed 64 voxels to a word."""
    q = _packed_rows(mask)
    centre = q[1:-1, 1:-1]
    interior = centre & q[:-2, 1:-1] & q[2:, 1:-1] & q[1:-1, :-2] & q[1:-1, 2:]
    interior &= _from_lower(centre) & _from_upper(centre)
    return _set_bit_index(np.ascontiguousarray(centre & ~interior))


def _surfel_index_3d(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices (N x 3, raster order) and neighbour codes of the corners of a 3D mask whose code is
    neither 0 nor 255 (as :func:`neighbour_codes`).

    A corner's 2x2x2 voxels are mixed when their OR differs from their AND; both are taken on
    packed rows, first over the four rows around the corner, then over the voxels x − 1 and x.
    """
    q = _packed_rows(mask)
    any4 = q[:-1, :-1] | q[:-1, 1:] | q[1:, :-1] | q[1:, 1:]  # corner row (c0, c1): voxel rows c - 1, c
    all4 = q[:-1, :-1] & q[:-1, 1:] & q[1:, :-1] & q[1:, 1:]
    mixed = (any4 | _from_lower(any4)) & ~(all4 & _from_lower(all4))
    corners = _set_bit_index(np.ascontiguousarray(mixed))
    return corners, _corner_codes(q, corners)


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
