"""Exact nearest-neighbour distances between two point sets in 2D or 3D, on a uniform cell grid.

For every query point q the result is d(q) = min_t ‖q − t‖ over the targets t, in the points'
units (mm), computed as sqrt((q0 − t0)² + (q1 − t1)² + (q2 − t2)²) in that order, the same
arithmetic as a k-d tree, so the values are the same floats.

The targets are bucketed by cell (cell edges h0, h1, h2; cells stored in raster order, CSR layout:
one offset per cell into the target coordinates sorted by cell), and so are the queries. The
queries of one cell form a group: with a radius R guessed from the previous group, every target of
every cell within R of the group's bounding box is compared with every query of the group, in a
loop over the queries that the compiler vectorizes. A query whose best squared distance is at
most R² is done; any other one is searched alone: it visits the slabs (axis 0) and columns (axes
0, 1) of cells in order of distance from its own cell, and in each column only the run of cells
along axis 2 that can hold a point within the current bound; the targets of that run are
contiguous in memory.

Why the search is exact: every skipped slab, column or cell lies entirely farther than the
current bound r from q (or, for a group, from the group's box, hence from each of its queries). A
cell c along axis k spans [c h_k, (c + 1) h_k) (relative to the lowest target), so any of its
points is at least g_k = max(0, c h_k − q_k, q_k − (c + 1) h_k) away along that axis, and at least
sqrt(Σ g_k²) away in all; a cell is skipped only when that lower bound exceeds r. For a group,
r = R, and a query is accepted only when its best distance is at most R: every skipped target is
farther. For a single query, r is always ≥ the true nearest distance: it is the best distance
found so far (in its group or by the search), or the distance to a point found by scanning rings
of cells around q. Every comparison is widened by a margin ``eps`` far above the rounding error of
the coordinates, so rounding can only make the search visit more cells, never fewer. The result
is the minimum of squared distances each computed as above, whichever targets were compared.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_CELL_MARGIN = 1e-9  # relative: the margin ``eps`` is this times the largest coordinate magnitude
_FAR_CELLS = 3.0  # a group radius above this many cell edges: its queries are searched one by one
_RADIUS_PAD = 0.02  # next group radius: the largest distance in the last group plus this many cell edges


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
    (q_lo, q_hi), (lo, hi) = _corners(q), _corners(t)
    extent = hi - lo
    cell = cell_sizes(extent, len(t))
    dims = (np.floor(extent / cell) + 1).astype(np.int64)
    largest = max(np.abs(q_lo).max(), np.abs(q_hi).max(), np.abs(lo).max(), np.abs(hi).max())
    eps = _CELL_MARGIN * (1.0 + float(largest))
    offsets, tz, ty, tx, _ = _bucket(t, lo, 1.0 / cell, dims)
    return _query(q, offsets, tz, ty, tx, lo, cell, dims, eps)


def _as_3d(points: np.ndarray) -> np.ndarray:
    """N x 3 contiguous coordinates; 2D points get a leading zero coordinate (0 + x = x exactly)."""
    if points.ndim != 2 or points.shape[1] not in (2, 3):
        raise ValueError(f"points must be N x 2 or N x 3, got shape {points.shape}")
    if points.shape[1] == 2:
        points = np.concatenate([np.zeros((len(points), 1)), points], axis=1)
    return np.ascontiguousarray(points)


@numba.njit(cache=True)
def _corners(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The per-axis minimum and maximum of N x 3 points, in one pass over them."""
    low, high = p[0].copy(), p[0].copy()
    for i in range(1, p.shape[0]):
        for k in range(3):
            low[k] = min(low[k], p[i, k])
            high[k] = max(high[k], p[i, k])
    return low, high


def cell_sizes(extent: np.ndarray, count: int) -> np.ndarray:
    """Cell edges (3 values) for ``count`` targets spanning ``extent``.

    Axes 0 and 1 get h = 1.5 (V / count)^(1/D) with V the volume spanned along the D axes of
    non-zero extent (about three cells per target: a surface fills few of them), axis 2 a third
    of that, so the runs scanned along axis 2 are tight. Axes of zero extent get one cell; h doubles
    until there are at most 8 count + 1024 cells (very flat point sets).
    """
    spanned = extent[extent > 0]
    if spanned.size == 0:
        return np.ones(3)
    h = 1.5 * float(np.exp((np.sum(np.log(spanned)) - math.log(count)) / spanned.size))
    while True:
        cell = np.where(extent > 0, np.array([h, h, h / 3.0]), 1.0)
        if np.prod(np.floor(extent / cell) + 1) <= 8 * count + 1024:
            return cell
        h *= 2.0


@numba.njit(cache=True)
def _bucket(
    p: np.ndarray, lo: np.ndarray, inv: np.ndarray, dims: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CSR bucketing of points: offsets (one per cell + 1, raster order of cells), the three
    coordinate arrays sorted by cell (stable: raster order kept within a cell) and the original
    index of each sorted point. Points outside the grid go to its nearest border cell."""
    n = p.shape[0]
    n0, n1, n2 = dims[0], dims[1], dims[2]
    offsets = np.zeros(n0 * n1 * n2 + 1, np.int64)
    cell_of = np.empty(n, np.int64)
    for i in range(n):
        c0 = min(max(int(math.floor((p[i, 0] - lo[0]) * inv[0])), 0), n0 - 1)
        c1 = min(max(int(math.floor((p[i, 1] - lo[1]) * inv[1])), 0), n1 - 1)
        c2 = min(max(int(math.floor((p[i, 2] - lo[2]) * inv[2])), 0), n2 - 1)
        cell_of[i] = (c0 * n1 + c1) * n2 + c2
        offsets[cell_of[i] + 1] += 1
    for c in range(n0 * n1 * n2):
        offsets[c + 1] += offsets[c]
    fill = offsets[:-1].copy()
    z, y, x = np.empty(n), np.empty(n), np.empty(n)
    index = np.empty(n, np.int64)
    for i in range(n):
        j = fill[cell_of[i]]
        fill[cell_of[i]] += 1
        z[j], y[j], x[j] = p[i, 0], p[i, 1], p[i, 2]
        index[j] = i
    return offsets, z, y, x, index


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
    """d(q) for every query, group by group (the queries of one cell). Each group's radius is
    the largest distance of the previous group plus a little, since distances vary slowly along a
    surface; a group whose radius exceeds a few cells is searched query by query."""
    group_of, qz, qy, qx, index = _bucket(points, lo, 1.0 / cell, dims)
    out = np.empty(points.shape[0])
    best = np.empty(points.shape[0])
    f, q = np.empty(3), np.empty(3)
    far, pad = _FAR_CELLS * cell.max(), _RADIUS_PAD * cell.max()
    radius = cell.max()
    for g in range(group_of.shape[0] - 1):
        s, e = group_of[g], group_of[g + 1]
        if s == e:
            continue
        best[s:e] = np.inf
        if radius <= far:
            _group(qz[s:e], qy[s:e], qx[s:e], best[s:e], radius, offsets, tz, ty, tx, lo, cell, dims, eps)
        worst = 0.0
        for k in range(s, e):
            if not best[k] <= radius * radius:
                q[0], q[1], q[2] = qz[k], qy[k], qx[k]
                best[k] = _search(q, best[k], f, offsets, tz, ty, tx, lo, cell, dims, eps)
            worst = max(worst, best[k])
            out[index[k]] = math.sqrt(best[k])
        radius = math.sqrt(worst) + pad
    return out


@numba.njit(cache=True, inline="always")
def _axis_cells(low: float, high: float, lo: float, h: float, n: int, eps: float) -> tuple[int, int]:
    """The cells along one axis (first, last; first > last if none) that meet [low, high]
    widened by eps."""
    return max(int(math.floor((low - lo - eps) / h)), 0), min(int(math.floor((high - lo + eps) / h)), n - 1)


@numba.njit(cache=True, inline="always")
def _box_gap(c: int, h: float, lo: float, low: float, high: float, eps: float) -> float:
    """Squared lower bound on the distance along one axis between [low, high] and any point of
    cell c (edge h, first cell at lo), lowered by eps."""
    start = lo + c * h
    g = max(start - high, low - (start + h), 0.0) - eps
    return g * g if g > 0.0 else 0.0


@numba.njit(cache=True)
def _group(qz: np.ndarray, qy: np.ndarray, qx: np.ndarray, best: np.ndarray, radius: float,
           offsets: np.ndarray, tz: np.ndarray, ty: np.ndarray, tx: np.ndarray, lo: np.ndarray,
           cell: np.ndarray, dims: np.ndarray, eps: float) -> None:
    """best[k] = min(best[k], |q_k − t|²) over the targets t of every cell that can hold a point
    within ``radius`` of the queries' bounding box: so every target farther than ``radius`` from
    q_k that is left out is farther than any best[k] ≤ radius². Nothing is compared when the box
    is wider than two cells (queries outside the grid, gathered in its border cells)."""
    low = np.array([qz.min(), qy.min(), qx.min()])
    high = np.array([qz.max(), qy.max(), qx.max()])
    if np.any(high - low > 2.0 * cell):
        return
    bound = _widen(radius * radius, eps)
    reach = math.sqrt(bound) + eps
    n1, n2 = dims[1], dims[2]
    a0, b0 = _axis_cells(low[0] - reach, high[0] + reach, lo[0], cell[0], dims[0], eps)
    a1, b1 = _axis_cells(low[1] - reach, high[1] + reach, lo[1], cell[1], n1, eps)
    for c0 in range(a0, b0 + 1):
        gap0 = _box_gap(c0, cell[0], lo[0], low[0], high[0], eps)
        for c1 in range(a1, b1 + 1):
            gap = gap0 + _box_gap(c1, cell[1], lo[1], low[1], high[1], eps)
            if gap > bound:
                continue
            run = math.sqrt(bound - gap) + eps
            a2, b2 = _axis_cells(low[2] - run, high[2] + run, lo[2], cell[2], n2, eps)
            if a2 <= b2:
                row = (c0 * n1 + c1) * n2
                _compare_all(qz, qy, qx, best, tz, ty, tx, offsets[row + a2], offsets[row + b2 + 1])


@numba.njit(cache=True, inline="always")
def _compare_all(qz: np.ndarray, qy: np.ndarray, qx: np.ndarray, best: np.ndarray, tz: np.ndarray,
                 ty: np.ndarray, tx: np.ndarray, start: int, stop: int) -> None:
    """best[k] = min(best[k], |q_k − t_j|²) for the targets start..stop; the loop over the
    queries has no dependence between iterations, so it runs on SIMD lanes."""
    for j in range(start, stop):
        t0, t1, t2 = tz[j], ty[j], tx[j]
        for k in range(qz.shape[0]):
            d0, d1, d2 = qz[k] - t0, qy[k] - t1, qx[k] - t2
            d = d0 * d0 + d1 * d1 + d2 * d2
            best[k] = d if d < best[k] else best[k]


@numba.njit(cache=True)
def _search(q: np.ndarray, best: float, f: np.ndarray, offsets: np.ndarray, tz: np.ndarray,
            ty: np.ndarray, tx: np.ndarray, lo: np.ndarray, cell: np.ndarray, dims: np.ndarray,
            eps: float) -> float:
    """d(q)² for one query, given ``best``: the squared distance to some target (its group's
    best), or inf, in which case :func:`_ring_bound` gives the first bound. ``f`` is scratch."""
    for k in range(3):
        f[k] = (q[k] - lo[k]) / cell[k]
    if best == np.inf:
        best = _ring_bound(q, f, offsets, tz, ty, tx, dims)
    bound = _widen(best, eps)
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
    return best
