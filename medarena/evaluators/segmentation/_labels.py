"""Which labels are scored: the values present in the maps, or the named regions of the settings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

LabelSpec = int | list[int]


def present_labels(*arrays: np.ndarray) -> list[int]:
    """The non-zero values found in any of the label maps, ascending."""
    found: set[int] = set()
    for arr in arrays:
        if arr.dtype.itemsize <= 2:
            flat = arr.reshape(-1)
            counts = np.zeros(1, np.int64)
            for start in range(0, flat.size, 1 << 22):
                block = np.bincount(flat[start:start + (1 << 22)])
                if len(block) > len(counts):
                    block[: len(counts)] += counts
                    counts = block
                else:
                    counts[: len(block)] += block
            found.update(int(v) for v in np.flatnonzero(counts))
        else:
            found.update(int(v) for v in np.unique(arr))
    found.discard(0)
    return sorted(found)


def resolve_labels(labels: Mapping[str, LabelSpec] | Sequence[int] | None,
                   reference: np.ndarray, prediction: np.ndarray) -> dict[str, tuple[int, ...]]:
    """Label name -> label values. None: every non-zero value in either map, named by its value."""
    if labels is None:
        return {str(v): (v,) for v in present_labels(reference, prediction)}
    if not isinstance(labels, Mapping):
        labels = {str(int(v)): int(v) for v in labels}
    resolved = {}
    for name, spec in labels.items():
        values = tuple(int(v) for v in (spec if isinstance(spec, (list, tuple)) else [spec]))
        if not values or any(v <= 0 for v in values):
            raise ValueError(f"label {name!r}: label values must be positive integers, got {spec!r}")
        resolved[str(name)] = values
    return resolved


def region_mask(array: np.ndarray, values: tuple[int, ...]) -> np.ndarray:
    return array == values[0] if len(values) == 1 else np.isin(array, values)


