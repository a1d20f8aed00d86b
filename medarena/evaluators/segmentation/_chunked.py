"""The chunked path: the same segmentation metrics over arrays too large for memory.

The label maps (zarr arrays, dask arrays, memory maps: anything sliced along axis 0 into numpy)
are read once, in slabs along axis 0 aligned with the store's chunks where those fit the memory
budget. Each slab adds to the voxel counts (a joint label histogram for small ``uint8`` labels)
and, for surface metrics, yields its surface points: a point's definition looks one voxel away
(a border voxel's face neighbours, a corner's 2x2x2 voxels), so the last two slices of a slab are
carried over to the next one and each slab contributes the points of the slices whose neighbours
are all in memory. Points are extracted with the in-memory kernels (rows packed 64 voxels to a
word) on the slab cut to the box of its non-zero voxels, and come out in raster order, as in
memory; the surface points of the whole volume, a small fraction of it, then go through the
same nearest-neighbour search. The values are therefore the same floats as
:func:`medarena.evaluators.segmentation.evaluate`. Instance metrics and the ``brats2023``
convention need whole connected components and are not available here.

Peak memory is about three slabs of each map (the slab, the slab with its carried slices, the
masks of one label) plus the surface points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medarena.evaluators._checks import check_label_map, check_same_shape, check_spacing
from medarena.evaluators.segmentation import _overlap as overlap
from medarena.evaluators.segmentation import _surface as surface
from medarena.evaluators.segmentation import _surface_points as surface_points
from medarena.evaluators.segmentation._labels import present_labels, region_mask, resolve_labels
from medarena.evaluators.segmentation._names import check_convention, parse_metric
from medarena.evaluators.segmentation._surfels import surfel_table
from medarena.evaluators.segmentation._values import (
    count_value,
    empty_side,
    empty_surface_value,
    surface_metric_values,
    tolerance_for,
)

SLAB_VOXELS = 1 << 26  # ≈ 64 M voxels read at a time
_CARRY = 2  # slices kept from the previous slab: a point of slice s needs slices s - 1 and s + 1


def evaluate_chunked(
    reference: Any,
    prediction: Any,
    *,
    spacing: Sequence[float],
    metrics: Sequence[str],
    labels: Mapping[str, Any] | Sequence[int] | None = None,
    convention: str = "default",
    nsd_tolerance: float | Mapping[str, float] = 1.0,
    slab_voxels: int = SLAB_VOXELS,
    **unused: Any,
) -> dict[str, dict[str, Any]]:
    """:func:`evaluate` for zarr or dask arrays too large for memory, read slab by slab.

    The maps are read once along axis 0 (module docstring); each slab adds to the voxel counts
    and contributes its surface points, and the surface points of the whole volume go through the
    same nearest-neighbour search as in memory, so the values are :func:`evaluate`'s.

    Parameters
    ----------
    reference, prediction : array-like
        Label maps of one shape, 2D or 3D: zarr arrays, dask arrays, numpy arrays or memory maps
        (anything that slices along axis 0 into numpy).
    spacing : sequence of float
        Voxel size in mm, one positive, finite value per axis (checked as in memory).
    metrics : sequence of str
        Count and surface metric names (instance metrics need whole components: not here).
    labels, nsd_tolerance : optional
        As :func:`evaluate`.
    convention : str
        ``default``, ``deepmind`` or ``pooled`` (``brats2023`` needs the whole volume).
    slab_voxels : int
        At most how many voxels one slab holds (rounded down to whole chunks along axis 0 where
        one fits, so no chunk is decoded twice; at least one slice).

    Returns
    -------
    dict
        ``{label name: {metric: value, ...}}``, as :func:`evaluate`.

    References
    ----------
    docs/metrics.md, section Segmentation.

    Examples
    --------
    >>> import numpy as np
    >>> reference = np.array([[1, 1, 0, 2]], np.uint8)
    >>> prediction = np.array([[1, 0, 0, 2]], np.uint8)
    >>> rows = evaluate_chunked(reference, prediction, spacing=(1, 1), metrics=["dice", "hd"])
    >>> {label: {m: round(v, 4) for m, v in row.items()} for label, row in rows.items()}
    {'1': {'dice': 0.6667, 'hd': 1.0}, '2': {'dice': 1.0, 'hd': 0.0}}
    """
    check_convention(convention)
    specs = [parse_metric(m) for m in metrics]
    if convention == "brats2023" or any(s.family == "instance" for s in specs):
        raise ValueError("instance metrics and the brats2023 convention need the whole volume in memory; "
                         "they are not available on the chunked path")
    check_same_shape(reference.shape, prediction.shape)
    shape = tuple(int(n) for n in reference.shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"a label map must be 2D or 3D, got shape {shape}")
    spacing = check_spacing(spacing, len(shape))
    surface_specs = [s for s in specs if s.family == "surface"]
    kind = "voxel" if convention in ("default", "pooled") else "surfel"

    scan = _Scan(shape, spacing, kind, labels, want_points=bool(surface_specs))
    for z0, z1 in slabs(shape, slab_voxels, _chunk_rows(reference, prediction)):
        scan.add(z0, _read(reference, z0, z1, "reference"), _read(prediction, z0, z1, "prediction"))
    scan.finish()

    rows = {}
    for name, values in scan.regions().items():
        counts = scan.counts(values)
        empty = empty_side(counts)
        row: dict[str, Any] = {}
        for spec in specs:
            if spec.family == "count":
                row[spec.name] = count_value(spec.base, counts, spacing, convention, empty, None)
        if surface_specs:
            if empty is not None:
                for spec in surface_specs:
                    row[spec.name] = empty_surface_value(spec, convention, empty, shape, spacing)
            else:
                sd = scan.distances(name)
                row.update(surface_metric_values(sd, surface_specs, convention, tolerance_for(nsd_tolerance, name)))
        ordered = {spec.name: row[spec.name] for spec in specs}
        if empty:
            ordered["empty"] = empty
        rows[name] = ordered
    return rows


def slabs(shape: Sequence[int], slab_voxels: int, chunk_rows: int | None) -> list[tuple[int, int]]:
    """[z0, z1) ranges along axis 0 of at most ``slab_voxels`` voxels (at least one slice), whole
    multiples of ``chunk_rows`` when one chunk row fits, so no chunk is decoded twice."""
    plane = max(1, int(np.prod(shape[1:])))
    step = max(1, slab_voxels // plane)
    if chunk_rows and chunk_rows <= step:
        step -= step % chunk_rows
    return [(z0, min(z0 + step, shape[0])) for z0 in range(0, shape[0], step)]


def _chunk_rows(*arrays: Any) -> int | None:
    """The chunk length along axis 0 shared by the arrays (zarr ``chunks``, dask ``chunksize``)."""
    found = set()
    for array in arrays:
        chunks = getattr(array, "chunksize", None) or getattr(array, "chunks", None)
        if not chunks or not isinstance(chunks[0], (int, np.integer)):
            return None
        found.add(int(chunks[0]))
    return found.pop() if len(found) == 1 else None


def _read(array: Any, z0: int, z1: int, role: str) -> np.ndarray:
    return check_label_map(np.asarray(array[z0:z1]), role)


class _Scan:
    """What one pass over the slabs gathers: voxel counts and, per label region, surface points."""

    def __init__(self, shape, spacing, kind, labels, *, want_points: bool) -> None:
        self.shape, self.spacing, self.kind, self.want_points = shape, spacing, kind, want_points
        self.declared = None if labels is None else resolve_labels(labels, np.zeros((1, 1)), np.zeros((1, 1)))
        self.joint: np.ndarray | None = np.zeros((16, 16), np.int64)  # while every slab is uint8 < 16
        self.found: set[int] = set()
        self.region_counts: dict[tuple[int, ...], overlap.Counts] = {}
        self.points: dict[str, list[list[np.ndarray]]] = {}
        self.carry: tuple[np.ndarray, np.ndarray] | None = None
        self.next_z = 0
        self.table = surfel_table(spacing) if kind == "surfel" else None

    # -- counts ---------------------------------------------------------------------------------

    def _count(self, ref: np.ndarray, pred: np.ndarray) -> None:
        if self.joint is not None and ref.dtype == pred.dtype == np.uint8:
            joint = overlap.small_label_joint(ref, pred)
            if joint is not None:
                self.joint += joint
                return
        if self.joint is not None:  # from here on, counts per region (the labels seen so far included)
            self._regions_from_joint()
            self.joint = None
        self.found.update(present_labels(ref, pred))
        for values in self._region_values():
            c = overlap.confusion_counts(region_mask(ref, values), region_mask(pred, values))
            self.region_counts[values] = self.region_counts.get(values, overlap.Counts(0, 0, 0, 0)) + c

    def _regions_from_joint(self) -> None:
        present = np.flatnonzero(self.joint.sum(0) + self.joint.sum(1))
        self.found.update(int(v) for v in present if v)
        total = int(self.joint.sum())
        for values in self._region_values():
            if len(values) == 1:
                c = overlap.counts_from_joint(self.joint, list(values), total)[values[0]]
            else:
                c = _counts_of_values(self.joint, values, total)
            self.region_counts[values] = c

    def _region_values(self) -> list[tuple[int, ...]]:
        if self.declared is not None:
            return list(self.declared.values())
        return [(v,) for v in sorted(self.found)]

    def regions(self) -> dict[str, tuple[int, ...]]:
        if self.declared is not None:
            return self.declared
        return {str(v): (v,) for v in sorted(self.found)}

    def counts(self, values: tuple[int, ...]) -> overlap.Counts:
        """The region's counts; TN from the total, as a label first seen in a later slab has no
        counts from the slabs before it."""
        c = self.region_counts.get(values, overlap.Counts(0, 0, 0, 0))
        return overlap.Counts(c.tp, c.fp, c.fn, int(np.prod(self.shape)) - c.tp - c.fp - c.fn)

    # -- surface points -------------------------------------------------------------------------

    def add(self, z0: int, ref: np.ndarray, pred: np.ndarray) -> None:
        if z0 != self.next_z:
            raise ValueError(f"slabs out of order: expected slice {self.next_z}, got {z0}")
        self.next_z = z0 + len(ref)
        self._count(ref, pred)
        if self.joint is not None:
            self.found.update(int(v) for v in np.flatnonzero(self.joint.sum(0) + self.joint.sum(1)) if v)
        if self.want_points:
            self._points(z0, ref, pred)

    def finish(self) -> None:
        if self.joint is not None:
            self._regions_from_joint()
        if self.want_points and self.carry is not None:
            self._points(self.shape[0], *(_zeros_like_slices(c) for c in self.carry))

    def _points(self, z0: int, ref: np.ndarray, pred: np.ndarray) -> None:
        """Adds the points of slices (and corners) [z0 - 1, z0 + len - 1) of the slab ``ref``,
        ``pred`` (slices [z0, z0 + len)), in raster order: first the seam with the slab before
        (its last two slices, carried, and this slab's first two: slices z0 - 1 and z0), then
        this slab's inner slices, whose neighbours are all in the slab."""
        if self.carry is None:
            self.carry = (_zeros_like_slices(ref), _zeros_like_slices(pred))
        (carried_ref, carried_pred), first = self.carry, _CARRY
        seam_ref = np.concatenate([carried_ref.astype(ref.dtype, copy=False), ref[:first]])
        seam_pred = np.concatenate([carried_pred.astype(pred.dtype, copy=False), pred[:first]])
        self._add_points(seam_ref, seam_pred, z0 - _CARRY, (1, 1 + min(first, len(ref))))
        if len(ref) > _CARRY:
            self._add_points(ref, pred, z0, (1, len(ref) - 1))
        self.carry = (seam_ref[-_CARRY:].copy(), seam_pred[-_CARRY:].copy()) if len(ref) < _CARRY \
            else (ref[-_CARRY:].copy(), pred[-_CARRY:].copy())

    def _add_points(self, ref: np.ndarray, pred: np.ndarray, start: int, keep: tuple[int, int]) -> None:
        """Points on slices [keep) of ``ref``/``pred`` (slices [start, start + len) of the image)."""
        box = surface_points.bounding_box(ref[max(0, keep[0] - 1):keep[1] + 1], pred[max(0, keep[0] - 1):keep[1] + 1])
        if box is None:
            return
        cut = (slice(0, len(ref)),) + tuple(box[1:])
        cut_ref, cut_pred = ref[cut], pred[cut]
        offset = [start] + [s.start for s in box[1:]]
        binary = self.found <= {1}
        for name, values in self.regions_so_far().items():
            if binary and values == (1,):  # a map of 0 and 1 is already the mask
                a, b = _nonzero(cut_ref), _nonzero(cut_pred)
            else:
                a, b = region_mask(cut_ref, values), region_mask(cut_pred, values)
            store = self.points.setdefault(name, [[], [], [], []])
            for side, mask in enumerate((a, b)):
                points, weights = self._mask_points(mask, offset, keep)
                store[2 * side].append(points)
                if weights is not None:
                    store[2 * side + 1].append(weights)

    def regions_so_far(self) -> dict[str, tuple[int, ...]]:
        if self.declared is not None:
            return self.declared
        return {str(v): (v,) for v in sorted(self.found)}

    def _mask_points(self, mask: np.ndarray, offset: Sequence[int], keep: tuple[int, int]):
        """Points of ``mask`` (a buffer cut in axes 1..) on buffer slices [keep), in mm."""
        spacing = np.asarray(self.spacing, float)
        start = np.asarray(offset, float)
        if self.kind == "voxel":
            if mask.ndim == 3:
                index = surface_points._border_index_3d(mask)
            else:
                index = np.stack(np.nonzero(surface_points.border_voxels(mask)), 1)
            index = _rows_in(index, keep)
            return (index + start) * spacing, None
        if mask.ndim == 3:
            index, codes = surface_points._surfel_index_3d(mask)
        else:
            all_codes = surface_points.neighbour_codes(mask)
            on_surface = np.nonzero((all_codes != 0) & (all_codes != 15))
            index, codes = np.stack(on_surface, 1), all_codes[on_surface]
        lo, hi = np.searchsorted(index[:, 0], keep[0]), np.searchsorted(index[:, 0], keep[1])
        return (index[lo:hi] + start - 0.5) * spacing, self.table[codes[lo:hi]]

    def distances(self, name: str) -> surface.SurfaceDistances:
        pa, wa, pb, wb = self.points.get(name, [[], [], [], []])
        ndim = len(self.shape)
        pa = np.concatenate(pa) if pa else np.zeros((0, ndim))
        pb = np.concatenate(pb) if pb else np.zeros((0, ndim))
        if self.kind == "voxel":
            wa = wb = None
        else:
            wa = np.concatenate(wa) if wa else np.zeros(0)
            wb = np.concatenate(wb) if wb else np.zeros(0)
        return surface.SurfaceDistances(surface.nearest_distances(pa, pb), surface.nearest_distances(pb, pa), wa, wb)


def _zeros_like_slices(array: np.ndarray) -> np.ndarray:
    return np.zeros((_CARRY, *array.shape[1:]), array.dtype)


def _nonzero(array: np.ndarray) -> np.ndarray:
    return array.view(bool) if array.dtype == np.uint8 else array != 0


def _rows_in(index: np.ndarray, keep: tuple[int, int]) -> np.ndarray:
    """The rows of a raster-ordered index array whose axis-0 value lies in [keep)."""
    lo, hi = np.searchsorted(index[:, 0], keep[0]), np.searchsorted(index[:, 0], keep[1])
    return index[lo:hi]


def _counts_of_values(joint: np.ndarray, values: tuple[int, ...], total: int) -> overlap.Counts:
    """Counts of the region made of several label values, from the joint histogram."""
    inside = np.zeros(len(joint), bool)
    inside[[v for v in values if v < len(joint)]] = True
    tp = int(joint[np.ix_(inside, inside)].sum())
    size_ref, size_pred = int(joint[inside].sum()), int(joint[:, inside].sum())
    fp, fn = size_pred - tp, size_ref - tp
    return overlap.Counts(tp, fp, fn, total - tp - fp - fn)
