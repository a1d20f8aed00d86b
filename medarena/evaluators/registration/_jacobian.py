"""Regularity of a displacement field: the Jacobian determinant, SDlogJ and folding."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medarena.evaluators._checks import check_spacing

#: slices of the first array axis handled at once (bounds the memory of the nine derivatives)
_SLAB = 4


def jacobian_determinant(
    field: np.ndarray,
    spacing: Sequence[float],
    direction: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """Jacobian determinant J = det(I + ∇u) of the map x -> x + u(x), at every voxel.

    Derivatives are taken with respect to physical coordinates: with x = o + D S i (i the index in
    ITK order, S = diag(spacing)), ∇u = (∂u/∂i) S⁻¹ D⁻¹, hence
    J = det(I + (∂u/∂i) S⁻¹ D⁻¹) = det(D + (∂u/∂i) S⁻¹) / det(D). ∂u/∂i are central differences
    (u[i+1] − u[i−1]) / 2 inside the image and one-sided differences u[1] − u[0], u[n−1] − u[n−2]
    on its first and last voxels (as ``numpy.gradient``); an axis of a single voxel has zero
    derivative. The arithmetic is float64 for a float64 field and float32 otherwise (J then exact
    to about 1e-6).

    Parameters
    ----------
    field : numpy.ndarray
        (z, y, x, 3) in 3D or (y, x, 2) in 2D, components in ITK order (x, y, z), in mm.
    spacing : sequence of float
        Voxel size in mm, one positive value per axis (array order).
    direction : sequence of float, optional
        The ITK direction matrix (row-major, ITK order); identity when None.

    Returns
    -------
    numpy.ndarray
        J with the field's spatial shape: J > 0 where the map keeps orientation, J ≤ 0 where it
        folds.

    References
    ----------
    Hering et al., Learn2Reg, IEEE TMI 42:697 (2023) (regularity); docs/metrics.md, section
    Registration.

    Examples
    --------
    >>> import numpy as np
    >>> u = np.zeros((3, 4, 2)); u[..., 0] = 0.1 * np.arange(4)  # u_x = 0.1 x: a 10 % stretch
    >>> np.round(jacobian_determinant(u, spacing=(1.0, 1.0)), 6).tolist()[1]
    [1.1, 1.1, 1.1, 1.1]
    """
    u = np.asarray(field)
    ndim = u.ndim - 1
    if ndim not in (2, 3) or u.shape[-1] != ndim:
        raise ValueError(f"field must be (z, y, x, 3) or (y, x, 2), got shape {u.shape}")
    spacing = check_spacing(spacing, ndim)
    dtype = np.float64 if u.dtype == np.float64 else np.float32
    spacing_itk = np.asarray(spacing, dtype=float)[::-1]
    d = np.eye(ndim) if direction is None else np.asarray(direction, dtype=float).reshape(ndim, ndim)
    n0 = u.shape[0]
    out = np.empty(u.shape[:-1], dtype=dtype)
    for start in range(0, n0, _SLAB):
        stop = min(start + _SLAB, n0)
        lo, hi = max(start - 1, 0), min(stop + 1, n0)
        # m[c][k] = D[c, k] + (∂u_c / ∂i_k) / s_k, k in ITK index order (array axis ndim-1-k)
        m: list[list[np.ndarray]] = []
        for c in range(ndim):
            component = u[lo:hi, ..., c].astype(dtype)
            core = component[start - lo: stop - lo]
            row = [_within_slab_derivative(core, ndim - 1 - k, 1.0 / spacing_itk[k]) for k in range(ndim - 1)]
            row.append(_first_axis_derivative(component, start, stop, lo, n0, 1.0 / spacing_itk[ndim - 1]))
            for k in range(ndim):
                if d[c, k]:
                    row[k] += dtype(d[c, k])
            m.append(row)
        out[start:stop] = _determinant(m)
    det_d = float(np.linalg.det(d))
    if abs(det_d - 1.0) > 1e-12:
        out /= dtype(det_d)
    return out


def _within_slab_derivative(values: np.ndarray, axis: int, scale: float) -> np.ndarray:
    """Central differences along ``axis`` (one-sided at both ends) times ``scale``."""
    out = np.empty_like(values)
    n = values.shape[axis]
    if n < 2:
        out[...] = 0
        return out

    def part(a: int | None, b: int | None) -> tuple[slice, ...]:
        index = [slice(None)] * values.ndim
        index[axis] = slice(a, b)
        return tuple(index)

    np.subtract(values[part(2, None)], values[part(None, -2)], out=out[part(1, -1)])
    out[part(1, -1)] *= values.dtype.type(0.5 * scale)
    np.subtract(values[part(1, 2)], values[part(0, 1)], out=out[part(0, 1)])
    np.subtract(values[part(-1, None)], values[part(-2, -1)], out=out[part(-1, None)])
    out[part(0, 1)] *= values.dtype.type(scale)
    out[part(-1, None)] *= values.dtype.type(scale)
    return out


def _first_axis_derivative(values: np.ndarray, start: int, stop: int, lo: int, n0: int,
                           scale: float) -> np.ndarray:
    """Derivative along axis 0 for global rows start..stop-1 of ``values`` (rows lo.. of the whole)."""
    if n0 < 2:
        return np.zeros_like(values[start - lo: stop - lo])
    rows = np.arange(start, stop)
    after, before = np.minimum(rows + 1, n0 - 1), np.maximum(rows - 1, 0)
    out = values[after - lo] - values[before - lo]
    weight = (scale / (after - before)).astype(values.dtype)
    out *= weight.reshape((-1,) + (1,) * (values.ndim - 1))
    return out


def _determinant(m: list[list[np.ndarray]]) -> np.ndarray:
    if len(m) == 2:
        det = m[0][0] * m[1][1]
        det -= m[0][1] * m[1][0]
        return det
    det = m[1][1] * m[2][2]
    det -= m[1][2] * m[2][1]
    det *= m[0][0]
    term = m[1][0] * m[2][2]
    term -= m[1][2] * m[2][0]
    term *= m[0][1]
    det -= term
    np.multiply(m[1][0], m[2][1], out=term)
    term -= m[1][1] * m[2][0]
    term *= m[0][2]
    det += term
    return det


def sdlogj(jacobian: np.ndarray, mask: np.ndarray | None = None, *, offset: float = 0.0) -> float:
    """Standard deviation of the log Jacobian determinant: std(log(clip(J + offset, 1e-9, 1e9))).

    Folded voxels (J ≤ 0) are clipped to 1e-9, so each one contributes log(1e-9) ≈ −20.7.

    Parameters
    ----------
    jacobian : numpy.ndarray
        J, e.g. from :func:`jacobian_determinant`.
    mask : numpy.ndarray, optional
        Of J's shape; only its voxels count.
    offset : float
        0 in the definition; the Learn2Reg script adds 3 (the ``l2r`` convention).

    Returns
    -------
    float
        The population standard deviation (ddof = 0); NaN when no voxel counts.

    References
    ----------
    Hering et al., Learn2Reg, IEEE TMI 42:697 (2023); docs/metrics.md, section Registration.

    Examples
    --------
    >>> import numpy as np
    >>> sdlogj(np.array([1.0, np.e]))  # std of (0, 1)
    0.5
    """
    values = _select(jacobian, mask)
    if values.size == 0:
        return float("nan")
    values = values + values.dtype.type(offset) if offset else values.copy()
    np.clip(values, 1e-9, 1e9, out=values)
    np.log(values, out=values)
    return float(values.std(dtype=np.float64))


def folding(jacobian: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Fraction of voxels where the Jacobian determinant J ≤ 0 (the map folds).

    Parameters
    ----------
    jacobian : numpy.ndarray
        J, e.g. from :func:`jacobian_determinant`.
    mask : numpy.ndarray, optional
        Of J's shape; only its voxels count.

    Returns
    -------
    float
        In [0, 1]; NaN when no voxel counts.

    References
    ----------
    Hering et al., Learn2Reg, IEEE TMI 42:697 (2023); docs/metrics.md, section Registration.

    Examples
    --------
    >>> import numpy as np
    >>> folding(np.array([1.0, 0.5, 0.0, -0.2]))
    0.5
    """
    values = _select(jacobian, mask)
    if values.size == 0:
        return float("nan")
    return float(np.count_nonzero(values <= 0) / values.size)


def _select(jacobian: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    j = np.asarray(jacobian)
    if not np.issubdtype(j.dtype, np.floating):
        j = j.astype(np.float64)
    if mask is None:
        return j.ravel()
    m = np.asarray(mask, dtype=bool)
    if m.shape != j.shape:
        raise ValueError(f"mask shape {m.shape} differs from the Jacobian's {j.shape}")
    return j[m]
