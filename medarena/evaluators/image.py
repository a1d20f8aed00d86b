"""An image in memory: a numpy array with its physical geometry."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Image:
    """A 2D or 3D image (optionally with vector components in a trailing axis).

    Conventions (the same as the case store's zarr attributes):

    - ``array`` is indexed (z, y, x) in 3D and (y, x) in 2D; a vector image (for example a
      displacement field) has its components last: (z, y, x, 3), component order (x, y, z).
    - ``spacing`` is in millimetres in **array order** (z, y, x), as every metric takes it.
    - ``origin`` is the physical position (mm, LPS) of the first voxel in **ITK order** (x, y, z).
    - ``direction`` is the ITK direction matrix, row-major, in ITK order (x, y, z).
    """

    array: np.ndarray
    spacing: tuple[float, ...]
    origin: tuple[float, ...] = ()
    direction: tuple[float, ...] = ()
    modality: str = ""
    metadata: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        ndim = len(self.spacing)
        if ndim not in (2, 3):
            raise ValueError(f"spacing must have 2 or 3 values, got {self.spacing!r}")
        if not self.origin:
            object.__setattr__(self, "origin", (0.0,) * ndim)
        if not self.direction:
            object.__setattr__(self, "direction", tuple(np.eye(ndim).ravel().tolist()))

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions (2 or 3)."""
        return len(self.spacing)

    @property
    def shape(self) -> tuple[int, ...]:
        """Spatial shape in array order."""
        return tuple(self.array.shape[: self.ndim])

    def direction_matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=float).reshape(self.ndim, self.ndim)

    def index_to_physical(self, index: np.ndarray) -> np.ndarray:
        """Array indices (..., ndim) in array order -> physical points (..., ndim) in ITK order."""
        idx_itk = np.asarray(index, dtype=float)[..., ::-1]
        spacing_itk = np.asarray(self.spacing, dtype=float)[::-1]
        return np.asarray(self.origin) + (idx_itk * spacing_itk) @ self.direction_matrix().T

    def physical_to_index(self, points: np.ndarray) -> np.ndarray:
        """Physical points (..., ndim) in ITK order -> continuous array indices in array order."""
        spacing_itk = np.asarray(self.spacing, dtype=float)[::-1]
        rel = np.asarray(points, dtype=float) - np.asarray(self.origin)
        idx_itk = (rel @ self.direction_matrix()) / spacing_itk
        return idx_itk[..., ::-1]

    def same_geometry(self, other: Image, tol: float = 1e-4) -> bool:
        """True when both images sample the same physical grid."""
        return (
            self.shape == other.shape
            and np.allclose(self.spacing, other.spacing, atol=tol)
            and np.allclose(self.origin, other.origin, atol=tol)
            and np.allclose(self.direction, other.direction, atol=tol)
        )
