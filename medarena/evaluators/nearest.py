"""Exact nearest-neighbour distances between two point sets in 2D or 3D, on a uniform cell grid.

For every query point q the result is d(q) = min_t ‖q − t‖ over the targets t, in the points'
units (mm), computed as sqrt((q0 − t0)² + (q1 − t1)² + (q2 − t2)²) in that order, the same
arithmetic as a k-d tree, so the values are the same floats.

The targets are bucketed by cell (cell edges h0, h1, h2; cells stored in raster order, CSR layout:
one offset per cell into the target coordinates sorted by cell). A query then visits the slabs
(axis 0) and columns (axes 0, 1) of cells in order of distance from its own cell, and in each
column only the run of cells along axis 2 that can hold a point within the current bound; the
targets of that run are contiguous in memory.

Why the search is exact: every skipped slab, column or cell lies entirely farther than the
current bound r from q. A cell c along axis k spans [c h_k, (c + 1) h_k) (relative to the lowest
target), so any of its points is at least g_k = max(0, c h_k − q_k, q_k − (c + 1) h_k) away along
that axis, and at least sqrt(Σ g_k²) away in all; a cell is skipped only when that lower bound
exceeds r. The bound r is always ≥ the true nearest distance: it is either the best distance found
so far, or d(p) + ‖q − p‖ for an earlier query p (triangle inequality), or the distance to a point
found by scanning rings of cells around q. Every comparison is widened by a margin ``eps`` far
above the rounding error of the coordinates, so rounding can only make the search visit more
cells, never fewer.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_CELL_MARGIN = 1e-9  # relative: the margin ``eps`` is this times the largest coordinate magnitude


def nearest_distances(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Euclidean distance from every point (N x D, D = 2 or 3) to its nearest target (M x D),
    inf for every point when there is no target."""
    points = np.asarray(points, float)
    targets = np.asarray(targets, float)
    if len(points) == 0:
        return np.zeros(0)
    if len(targets) == 0:
        return np.full(len(points), np.inf)
    q, t = _as_3d(points), _as_3d(targets)
    lo = t.min(axis=0)
    extent = t.max(axis=0) - lo
    cell = cell_sizes(extent, len(t))
    dims = (np.floor(extent / cell) + 1).astype(np.int64)
    eps = _CELL_MARGIN * (1.0 + max(float(np.abs(q).max()), float(np.abs(t).max())))
    offsets, tz, ty, tx = _bucket(t, lo, 1.0 / cell, dims)
    return _query(q, offsets, tz, ty, tx, lo, cell, dims, eps)


def _as_3d(points: np.ndarray) -> np.ndarray:
    """N x 3 contiguous coordinates; 2D points get a leading zero coordinate (0 + x = x exactly)."""
    if points.ndim != 2 or points.shape[1] not in (2, 3):
        raise ValueError(f"points must be N x 2 or N x 3, got shape {points.shape}")
    if points.shape[1] == 2:
        points = np.concatenate([np.zeros((len(points), 1)), points], axis=1)
    return np.ascontiguousarray(points)


def cell_sizes(extent: np.ndarray, count: int) -> np.ndarray:
    """Cell edges (3 values) for ``count`` targets spanning ``extent``.

    Axes 0 and 1 get h = 1.2 (V / count)^(1/D) with V the volume spanned along the D axes of
    non-zero extent (about two cells per target: a surface fills few of them), axis 2 a third of
    that, so the runs scanned along axis 2 are tight. Axes of zero extent get one cell; h doubles
    until there are at most 8 count + 1024 cells (very flat point sets).
    """
    spanned = extent[extent > 0]
    if spanned.size == 0:
        return np.ones(3)
    h = 1.2 * float(np.exp((np.sum(np.log(spanned)) - math.log(count)) / spanned.size))
    while True:
        cell = np.where(extent > 0, np.array([h, h, h / 3.0]), 1.0)
        if np.prod(np.floor(extent / cell) + 1) <= 8 * count + 1024:
            return cell
        h *= 2.0


@numba.njit(cache=True)
def _bucket(
    t: np.ndarray, lo: np.ndarray, inv: np.ndarray, dims: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CSR bucketing of the targets: offsets (one per cell + 1, raster order of cells) and the
    three coordinate arrays sorted by cell (stable: raster order kept within a cell)."""
    n = t.shape[0]
    n0, n1, n2 = dims[0], dims[1], dims[2]
    offsets = np.zeros(n0 * n1 * n2 + 1, np.int64)
    cell_of = np.empty(n, np.int64)
    for i in range(n):
        c0 = min(int((t[i, 0] - lo[0]) * inv[0]), n0 - 1)
        c1 = min(int((t[i, 1] - lo[1]) * inv[1]), n1 - 1)
        c2 = min(int((t[i, 2] - lo[2]) * inv[2]), n2 - 1)
        cell_of[i] = (c0 * n1 + c1) * n2 + c2
        offsets[cell_of[i] + 1] += 1
    for c in range(n0 * n1 * n2):
        offsets[c + 1] += offsets[c]
    fill = offsets[:-1].copy()
    tz, ty, tx = np.empty(n), np.empty(n), np.empty(n)
    for i in range(n):
        j = fill[cell_of[i]]
        fill[cell_of[i]] += 1
        tz[j], ty[j], tx[j] = t[i, 0], t[i, 1], t[i, 2]
    return offsets, tz, ty, tx


@numba.njit(cache=True, inline="always")
def _scan(q: np.ndarray, tz: np.ndarray, ty: np.ndarray, tx: np.ndarray, start: int, stop: int,
          best: float) -> float:
    """min(best, min_j |q − t_j|²) over the targets start..stop."""
    for j in range(start, stop):
        d0, d1, d2 = q[0] - tz[j], q[1] - ty[j], q[2] - tx[j]
        d = d0 * d0 + d1 * d1 + d2 * d2
        if d < best:
            best = d
    return best


@numba.njit(cache=True, inline="always")
def _widen(square: float, eps: float) -> float:
    """A squared distance raised by more than its rounding error (relative 1e-9 and eps)."""
    return square * (1.0 + _CELL_MARGIN) + eps


@numba.njit(cache=True, inline="always")
def _gap(c: int, f: float, h: float, eps: float) -> float:
    """Squared lower bound on the distance along one axis from a query at cell coordinate f to
    any point of cell c (edge h): g = max(0, c − f, f − (c + 1)) h, lowered by eps."""
    g = max(c - f, f - (c + 1), 0.0) * h - eps
    return g * g if g > 0.0 else 0.0


@numba.njit(cache=True)
def _ring_bound(q: np.ndarray, f: np.ndarray, offsets: np.ndarray, tz: np.ndarray, ty: np.ndarray,
                tx: np.ndarray, dims: np.ndarray) -> float:
    """The squared distance to the nearest target in the first non-empty ring of cells around q
    (rings of Chebyshev radius 0, 1, 2, ... in cells): a finite upper bound on d(q)²."""
    n0, n1, n2 = dims[0], dims[1], dims[2]
    i0 = min(max(int(f[0]), 0), n0 - 1)
    i1 = min(max(int(f[1]), 0), n1 - 1)
    i2 = min(max(int(f[2]), 0), n2 - 1)
    best = np.inf
    for r in range(max(n0, n1, n2)):
        for c0 in range(max(i0 - r, 0), min(i0 + r, n0 - 1) + 1):
            for c1 in range(max(i1 - r, 0), min(i1 + r, n1 - 1) + 1):
                step = 1 if r == 0 or abs(c0 - i0) == r or abs(c1 - i1) == r else 2 * r
                for c2 in range(i2 - r, i2 + r + 1, step):
                    if 0 <= c2 < n2:
                        cell = (c0 * n1 + c1) * n2 + c2
                        best = _scan(q, tz, ty, tx, offsets[cell], offsets[cell + 1], best)
        if best < np.inf:
            return best
    return best


@numba.njit(cache=True)
def _scan_slab(q: np.ndarray, f: np.ndarray, c0: int, gap0: float, bound: float, best: float,
               offsets: np.ndarray, tz: np.ndarray, ty: np.ndarray, tx: np.ndarray, cell: np.ndarray,
               dims: np.ndarray, eps: float) -> float:
    """Scan the columns of slab c0 from q's column outwards; ``bound`` is the squared search
    radius (≥ d(q)²) and ``gap0`` the squared gap to the slab. Returns the new best."""
    n1, n2 = dims[1], dims[2]
    i1 = min(max(int(f[1]), 0), n1 - 1)
    for step in (-1, 1):
        c1 = i1 if step == -1 else i1 + 1
        while 0 <= c1 < n1:
            gap = gap0 + _gap(c1, f[1], cell[1], eps)
            if gap > bound:
                break
            reach = (math.sqrt(bound - gap) + eps) / cell[2]
            first = max(int(math.floor(f[2] - reach)), 0)
            last = min(int(math.floor(f[2] + reach)), n2 - 1)
            if first <= last:
                row = (c0 * n1 + c1) * n2
                best = _scan(q, tz, ty, tx, offsets[row + first], offsets[row + last + 1], best)
                bound = min(bound, _widen(best, eps))
            c1 += step
    return best


@numba.njit(cache=True)
def _query(points: np.ndarray, offsets: np.ndarray, tz: np.ndarray, ty: np.ndarray, tx: np.ndarray,
           lo: np.ndarray, cell: np.ndarray, dims: np.ndarray, eps: float) -> np.ndarray:
    """d(q) for every query, in order. The first bound comes from earlier queries near q (the
    previous one, and the last ones seen in the 3 x 3 neighbouring (axis 1, axis 2) buckets of
    edge about h2), else from :func:`_ring_bound`."""
    n = points.shape[0]
    out = np.empty(n)
    low = np.array([points[:, 1].min(), points[:, 2].min()])
    span = np.array([points[:, 1].max(), points[:, 2].max()]) - low
    edge = cell[2] * max(1.0, math.sqrt((span[0] / cell[2] + 3) * (span[1] / cell[2] + 3) / (4 * n + 1024)))
    recent = np.full((int(span[0] / edge) + 3, int(span[1] / edge) + 3), -1, np.int64)
    far = 2.0 * cell.max()
    f = np.empty(3)
    for i in range(n):
        q = points[i]
        k1 = int((q[1] - low[0]) / edge) + 1
        k2 = int((q[2] - low[1]) / edge) + 1
        u = np.inf
        for a in range(k1 - 1, k1 + 2):
            for b in range(k2 - 1, k2 + 2):
                u = min(u, _bound_via(points, out, recent[a, b], q))
        u = min(u, _bound_via(points, out, i - 1, q))
        recent[k1, k2] = i
        for k in range(3):
            f[k] = (q[k] - lo[k]) / cell[k]
        best = _ring_bound(q, f, offsets, tz, ty, tx, dims) if u > far else np.inf
        bound = _widen(min(u * u, best), eps)
        i0 = min(max(int(f[0]), 0), dims[0] - 1)
        for step in (-1, 1):
            c0 = i0 if step == -1 else i0 + 1
            while 0 <= c0 < dims[0]:
                gap = _gap(c0, f[0], cell[0], eps)
                if gap > bound:
                    break
                best = _scan_slab(q, f, c0, gap, bound, best, offsets, tz, ty, tx, cell, dims, eps)
                bound = min(bound, _widen(best, eps))
                c0 += step
        out[i] = math.sqrt(best)
    return out


@numba.njit(cache=True, inline="always")
def _bound_via(points: np.ndarray, out: np.ndarray, j: int, q: np.ndarray) -> float:
    """d(p_j) + ‖q − p_j‖ ≥ d(q) for an earlier query j (inf when j < 0)."""
    if j < 0:
        return np.inf
    d0, d1, d2 = q[0] - points[j, 0], q[1] - points[j, 1], q[2] - points[j, 2]
    return out[j] + math.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
