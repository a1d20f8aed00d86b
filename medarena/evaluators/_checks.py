"""Input checks shared by every evaluator path (in memory and chunked).

Each check returns the checked value in the form the metrics use, or raises ``ValueError`` with one
line that names the input (its *role*) and what is wrong with it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def check_spacing(spacing: Sequence[float], ndim: int) -> tuple[float, ...]:
    """The spacing as floats: one positive, finite value per axis of an ``ndim``-D image."""
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        raise ValueError(f"spacing {spacing!r} is not a sequence of numbers") from None
    if len(values) != ndim or not all(math.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"spacing {values} does not fit a {ndim}D image "
                         "(one positive, finite value per axis)")
    return values


def check_same_shape(reference: Sequence[int], prediction: Sequence[int]) -> None:
    """Reference and prediction cover the same grid."""
    if tuple(reference) != tuple(prediction):
        raise ValueError(f"shape mismatch: reference {tuple(reference)}, prediction {tuple(prediction)}")


def check_label_map(array: Any, role: str) -> np.ndarray:
    """The array as an integer label map, or ValueError naming the role and the problem.

    Boolean and unsigned arrays pass as they are; signed integers must not be negative; floating
    point arrays must hold whole, finite, non-negative numbers (a NaN is an error).
    """
    arr = np.asarray(array)
    if arr.ndim not in (2, 3):
        raise ValueError(f"{role}: a label map must be 2D or 3D, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.view(np.uint8)
    if np.issubdtype(arr.dtype, np.unsignedinteger):
        return arr
    if np.issubdtype(arr.dtype, np.signedinteger):
        if arr.size and arr.min() < 0:
            raise ValueError(f"{role}: negative label {int(arr.min())}")
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        if np.isnan(arr).any():
            raise ValueError(f"{role}: NaN in the mask")
        if not np.isfinite(arr).all():
            raise ValueError(f"{role}: infinite value in the mask")
        if arr.size and arr.min() < 0:
            raise ValueError(f"{role}: negative label {float(arr.min())}")
        if not np.array_equal(arr, np.floor(arr)):
            raise ValueError(f"{role}: non-integer label values (for example {_first_fraction(arr)})")
        top = float(arr.max()) if arr.size else 0.0
        return arr.astype(np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32)
    raise ValueError(f"{role}: unsupported pixel type {arr.dtype} (labels must be integers)")


def _first_fraction(arr: np.ndarray) -> float:
    return float(arr[arr != np.floor(arr)].ravel()[0])


