"""The surface points of a binary mask: border voxels, or surfels on the voxel-corner grid.

The two surface definitions are those of :mod:`medarena.evaluators.segmentation._surface`. Border
voxels and corner codes are found on bit-packed rows (numba), only inside the bounding box of the
masks, so the cost grows with the box, not with the image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

from medarena.evaluators.segmentation._surfels import surfel_table

SURFACES = ("voxel", "surfel")


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
