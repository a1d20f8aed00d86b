"""Displacement fields on a grid: sampling at points, TRE, warping labels, unit conversions.

The prediction is a displacement field u on the fixed image's grid, in mm, mapping fixed to
moving points: x_m = x_f + u(x_f). Geometry follows :class:`~medarena.evaluators.image.Image`:
arrays (z, y, x, 3), components in ITK order (x, y, z), spacing in array order, origin and
direction in ITK order; every point is a physical point (mm, ITK/LPS order).
"""

from __future__ import annotations

import numpy as np

from medarena.evaluators.image import Image

_SLAB = 16  # fixed-grid slices warped at once


def sample_field(field: Image, points: np.ndarray) -> np.ndarray:
    """u at physical points (N, d), each component by (bi/tri)linear interpolation.

    Points between the outermost voxel centres and the image border (half a voxel) take the
    border value (clamped neighbours, as ITK's linear interpolator). Use :func:`points_outside`
    to reject points farther out.
    """
    return linear_sample(field.array, field.physical_to_index(np.asarray(points, dtype=float)))


def linear_sample(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Multilinear interpolation of ``values`` (spatial axes, then components) at continuous array
    indices (N, d), neighbours clamped to the array (so the border value extends outwards).

    Reads only the 2^d neighbours of each point, never the whole array.
    """
    index = np.asarray(index, dtype=np.float64)
    ndim = index.shape[1]
    shape = np.asarray(values.shape[:ndim])
    base = np.floor(index)
    frac = index - base
    base = base.astype(np.int64)
    out = np.zeros((index.shape[0],) + values.shape[ndim:], dtype=np.float64)
    for corner in np.ndindex(*(2,) * ndim):
        offset = np.asarray(corner)
        at = np.clip(base + offset, 0, shape - 1)
        weight = np.prod(np.where(offset == 1, frac, 1 - frac), axis=1)
        out += weight.reshape((-1,) + (1,) * (values.ndim - ndim)) * values[tuple(at.T)]
    return out


def points_outside(image: Image, points: np.ndarray, tolerance: float = 1e-6) -> np.ndarray:
    """True for points outside the image's extent (beyond half a voxel past the outer centres)."""
    index = image.physical_to_index(np.asarray(points, dtype=float))
    upper = np.asarray(image.shape, dtype=float) - 0.5
    return ((index < -0.5 - tolerance) | (index > upper + tolerance)).any(axis=-1)


def target_registration_error(
    fixed_points: np.ndarray, moving_points: np.ndarray, field: Image
) -> np.ndarray:
    """Target registration error per landmark: ‖x_f + u(x_f) − x_m‖ in mm.

    u is sampled at the fixed landmarks by (bi/tri)linear interpolation (:func:`sample_field`).

    Parameters
    ----------
    fixed_points, moving_points : numpy.ndarray
        Paired landmarks (N, d), row k with row k, physical points in mm, ITK order (x, y, z).
    field : Image
        The displacement field on the fixed grid, in mm, components in ITK order.

    Returns
    -------
    numpy.ndarray
        (N,) errors in mm.

    References
    ----------
    Fitzpatrick & West, IEEE TMI 17:694 (1998); docs/metrics.md, section Registration.

    Examples
    --------
    >>> import numpy as np
    >>> from medarena.evaluators.image import Image
    >>> shift = Image(np.full((4, 4, 4, 3), [1.0, 0.0, 0.0]), spacing=(1.0, 1.0, 1.0))  # 1 mm along x
    >>> target_registration_error(np.array([[1.0, 1.0, 1.0]] * 2), np.array([[2.0, 1.0, 1.0], [2.0, 1.0, 3.0]]),
    ...                           shift).tolist()
    [0.0, 2.0]
    """
    fixed_points = np.asarray(fixed_points, dtype=float)
    warped = fixed_points + sample_field(field, fixed_points)
    return np.linalg.norm(warped - np.asarray(moving_points, dtype=float), axis=1)


def tre_summary(tre: np.ndarray, prefix: str = "tre") -> dict[str, float]:
    """``{prefix}_mean``, ``_median``, ``_p95`` (numpy's linear percentile), ``_max`` and ``_std``
    (population) of per-landmark errors; NaN for no landmarks."""
    tre = np.asarray(tre, dtype=float)
    if tre.size == 0:
        return {f"{prefix}_{k}": float("nan") for k in ("mean", "median", "p95", "max", "std")}
    return {f"{prefix}_mean": float(tre.mean()), f"{prefix}_median": float(np.median(tre)),
            f"{prefix}_p95": float(np.percentile(tre, 95)), f"{prefix}_max": float(tre.max()),
            f"{prefix}_std": float(tre.std())}


def warp_labels(moving_labels: Image, field: Image, background: int = 0) -> np.ndarray:
    """The moving label map resampled on the field's (fixed) grid by nearest neighbour.

    Fixed voxel x_f takes the label of the moving voxel nearest to x_f + u(x_f) (index rounded
    half up, as ITK's nearest-neighbour interpolator); points outside the moving image get
    ``background``. Equivalent to SimpleITK's ``Resample`` with a ``DisplacementFieldTransform``
    and ``sitkNearestNeighbor``.
    """
    shape, ndim = field.shape, field.ndim
    labels = np.asarray(moving_labels.array)
    out = np.full(shape, background, dtype=labels.dtype)
    upper = np.asarray(moving_labels.shape)
    for start in range(0, shape[0], _SLAB):
        stop = min(start + _SLAB, shape[0])
        index = np.moveaxis(np.indices((stop - start, *shape[1:]), dtype=np.float64), 0, -1)
        index[..., 0] += start
        points = field.index_to_physical(index) + field.array[start:stop]
        moving_index = np.floor(moving_labels.physical_to_index(points) + 0.5).astype(np.int64)
        inside = ((moving_index >= 0) & (moving_index < upper)).all(axis=-1)
        picked = tuple(moving_index[..., a][inside] for a in range(ndim))
        out[start:stop][inside] = labels[picked]
    return out


def field_to_voxels(field: Image) -> np.ndarray:
    """Components in mm (ITK order) -> displacement in voxels along each ITK index axis:
    S⁻¹ D⁻¹ u."""
    d = field.direction_matrix()
    spacing_itk = np.asarray(field.spacing, dtype=float)[::-1]
    return (np.asarray(field.array, dtype=np.float64) @ np.linalg.inv(d).T) / spacing_itk


def field_to_mm(field_vox: np.ndarray, grid: Image) -> np.ndarray:
    """Displacement in voxels along each ITK index axis -> mm (ITK order): D S u_vox."""
    spacing_itk = np.asarray(grid.spacing, dtype=float)[::-1]
    return (np.asarray(field_vox, dtype=np.float64) * spacing_itk) @ grid.direction_matrix().T
