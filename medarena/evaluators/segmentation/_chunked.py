"""The chunked path: the same segmentation metrics over arrays too large for memory.

The label maps (zarr arrays, dask arrays, or anything sliceable) are read through dask in slabs
along axis 0, one slab (plus a one-slice halo) at a time. Each slab adds to the joint label
histogram and contributes its surface points (voxel borders or surfels, whose definitions only
look one voxel away, hence the halo); the surface points of the whole volume, a small fraction of
it, then go through the same nearest-neighbour search as in memory. Values equal those of
:func:`medarena.evaluators.segmentation.evaluate`. Instance metrics and the ``brats2023``
convention need whole connected components and are not available here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from medarena.evaluators._checks import check_label_map, check_same_shape, check_spacing
from medarena.evaluators.segmentation import _overlap as overlap
from medarena.evaluators.segmentation import _surface as surface
from medarena.evaluators.segmentation._labels import region_mask, resolve_labels
from medarena.evaluators.segmentation._names import check_convention, parse_metric
from medarena.evaluators.segmentation._surfels import surfel_table
from medarena.evaluators.segmentation._values import (
    count_value,
    empty_side,
    empty_surface_value,
    surface_metric_values,
    tolerance_for,
)

if TYPE_CHECKING:
    import dask.array as da

SLAB_BYTES = 1 << 26  # voxels per slab ≈ 64 M


def _slab(array: da.Array, start: int, stop: int) -> np.ndarray:
    """Slices [start, stop) of axis 0 as a numpy array, zero where outside the image."""
    n = array.shape[0]
    inside = np.asarray(array[max(start, 0):min(stop, n)])
    before, after = max(0, -start), max(0, stop - n)
    if before or after:
        inside = np.pad(inside, [(before, after)] + [(0, 0)] * (inside.ndim - 1))
    return inside


def _slab_points(mask: np.ndarray, z0: int, z1: int, n: int, spacing, kind: str):
    """Surface points whose axis-0 index (voxel, or corner) lies in [z0, z1); ``mask`` holds the
    voxels [z0 - 1, z1 + 1)."""
    spacing_arr = np.asarray(spacing, float)
    if kind == "voxel":
        index = np.nonzero(surface.border_voxels(mask)[1:-1])
        points = np.stack(index, 1).astype(float)
        points[:, 0] += z0
        return points * spacing_arr, None
    codes = surface.neighbour_codes(mask)  # corner k lies between mask[k-1] and mask[k]
    last = z1 + 1 if z1 == n else z1  # the corners after the last voxel
    codes = codes[1:1 + last - z0]
    full = (1 << (2 ** mask.ndim)) - 1
    index = np.nonzero((codes != 0) & (codes != full))
    points = np.stack(index, 1).astype(float) - 0.5
    points[:, 0] += z0
    return points * spacing_arr, surfel_table(spacing)[codes[index]]


def evaluate_chunked(
    reference: Any,
    prediction: Any,
    *,
    spacing: Sequence[float],
    metrics: Sequence[str],
    labels: Mapping[str, Any] | Sequence[int] | None = None,
    convention: str = "default",
    nsd_tolerance: float | Mapping[str, float] = 1.0,
    slab_voxels: int = SLAB_BYTES,
    **unused: Any,
) -> dict[str, dict[str, Any]]:
    """:func:`evaluate` for zarr or dask arrays too large for memory, read slab by slab.

    The maps are read along axis 0 in slabs (plus a one-slice halo); each slab adds to the voxel
    counts and contributes its surface points, and the surface points of the whole volume go through
    the same nearest-neighbour search as in memory, so the values equal :func:`evaluate`'s. Peak
    memory is about two slabs plus the surface points.

    Parameters
    ----------
    reference, prediction : array-like
        Label maps of one shape, 2D or 3D: zarr arrays, dask arrays, or anything dask can wrap.
    spacing : sequence of float
        Voxel size in mm, one positive, finite value per axis (checked as in memory).
    metrics : sequence of str
        Count and surface metric names (instance metrics need whole components: not here).
    labels, nsd_tolerance : optional
        As :func:`evaluate`.
    convention : str
        ``default``, ``deepmind`` or ``pooled`` (``brats2023`` needs the whole volume).
    slab_voxels : int
        About how many voxels one slab holds.

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
    import dask.array as da  # dask is only needed on this path

    check_convention(convention)
    specs = [parse_metric(m) for m in metrics]
    if convention == "brats2023" or any(s.family == "instance" for s in specs):
        raise ValueError("instance metrics and the brats2023 convention need the whole volume in memory; "
                         "they are not available on the chunked path")
    ref, pred = da.asarray(reference), da.asarray(prediction)
    check_same_shape(ref.shape, pred.shape)
    if ref.ndim not in (2, 3):
        raise ValueError(f"a label map must be 2D or 3D, got shape {ref.shape}")
    spacing = check_spacing(spacing, ref.ndim)
    n = ref.shape[0]
    step = max(1, slab_voxels // max(1, int(np.prod(ref.shape[1:]))))
    slabs = [(z0, min(z0 + step, n)) for z0 in range(0, n, step)]

    if labels is None:
        found: set[int] = set()
        for z0, z1 in slabs:
            for array, role in ((ref, "reference"), (pred, "prediction")):
                values = np.unique(check_label_map(_slab(array, z0, z1), role))
                found.update(int(v) for v in values if v)
        labels = sorted(found)
    regions = resolve_labels(labels, np.zeros((1, 1)), np.zeros((1, 1)))
    surface_specs = [s for s in specs if s.family == "surface"]
    kind = "voxel" if convention in ("default", "pooled") else "surfel"

    counts = {name: overlap.Counts(0, 0, 0, 0) for name in regions}
    points: dict[str, list[list]] = {name: [[], [], [], []] for name in regions}
    for z0, z1 in slabs:
        ref_slab = check_label_map(_slab(ref, z0 - 1, z1 + 1), "reference")
        pred_slab = check_label_map(_slab(pred, z0 - 1, z1 + 1), "prediction")
        for name, values in regions.items():
            a, b = region_mask(ref_slab, values), region_mask(pred_slab, values)
            counts[name] = counts[name] + overlap.confusion_counts(a[1:-1], b[1:-1])
            if surface_specs and (a.any() or b.any()):
                pa, wa = _slab_points(a, z0, z1, n, spacing, kind)
                pb, wb = _slab_points(b, z0, z1, n, spacing, kind)
                for store, item in zip(points[name], (pa, wa, pb, wb), strict=True):
                    store.append(item)

    rows = {}
    for name in regions:
        c = counts[name]
        empty = empty_side(c)
        row: dict[str, Any] = {}
        for spec in specs:
            if spec.family == "count":
                row[spec.name] = count_value(spec.base, c, spacing, convention, empty, None)
        if surface_specs:
            if empty is not None:
                for spec in surface_specs:
                    row[spec.name] = empty_surface_value(spec, convention, empty, ref.shape, spacing)
            else:
                pa, wa, pb, wb = points[name]
                pa, pb = np.concatenate(pa), np.concatenate(pb)
                wa = None if kind == "voxel" else np.concatenate(wa)
                wb = None if kind == "voxel" else np.concatenate(wb)
                sd = surface.SurfaceDistances(surface.nearest_distances(pa, pb),
                                              surface.nearest_distances(pb, pa), wa, wb)
                row.update(surface_metric_values(sd, surface_specs, convention,
                                                 tolerance_for(nsd_tolerance, name)))
        ordered = {spec.name: row[spec.name] for spec in specs}
        if empty:
            ordered["empty"] = empty
        rows[name] = ordered
    return rows
