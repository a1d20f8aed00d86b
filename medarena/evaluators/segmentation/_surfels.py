"""Surface elements on the voxel-corner grid, as google-deepmind/surface-distance defines them.

A corner of the voxel grid is surrounded by 2x2x2 voxels (2x2 in 2D); its *neighbour code* has one
bit per surrounding voxel that lies in the mask. Corners whose code is neither 0 nor all ones lie on
the object's surface. Each carries a surface element ("surfel") whose area (3D) or contour length
(2D) depends on the code and on the spacing.

Bit order (array order, ``d`` = 0 for the voxel before the corner and 1 for the one after):
3D bit = 2**(7 - (4 dz + 2 dy + dx)), 2D bit = 2**(3 - (2 dy + dx)), so the voxel before the
corner on every axis is the highest bit.

Areas in 3D are sums of marching-cubes triangle areas. The triangle normals per code are those
tabulated by google-deepmind/surface-distance (Apache-2.0; Nikolov et al. 2021,
arXiv:1809.04430), so that the ``deepmind`` convention reproduces that library exactly (its table
differs from a textbook marching-cubes triangulation for 44 of the 256 codes).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

# For codes 0..127: the absolute normal vectors of the code's triangles, times 8, as digit
# triples (a code and its complement 255 - code have the same triangles). "-" = no triangle.
# A triangle with normal (a, b, c)/8 in unit spacing has area |(a s1 s2, b s0 s2, c s0 s1)|/8.
_NORMALS_X8 = (
    "- 111 111 220220 111 202202 111111 400222111 111 111111 202202 400222111 220220 400222111 "
    "400222111 400400 111 022022 111111 040222111 111111 004222111 111111111 111222222111 111111 "
    "022022111 202202111 111333022202 111220220 333022111220 400111222111 400111222 111 111111 022022 "
    "040111222 111111 111202202 022022111 333022111202 111111 111111111 004222111 222222111111 "
    "111220220 400222111111 022333111220 400222111 220220 040222111 040111222 040040 220220111 "
    "333202111220 111040222111 040222111 111220220 040222111111 333220111202 040222111 220220220220 "
    "220220111 111220220 220220 111 111111 111111 111220220 022022 004222111 022022111 333022111220 "
    "111111 111111111 111202202 400222111111 040222111 222222111111 202333022111 400222111 202202 "
    "004222111 111202202 202333220111 004222111 004004 111111222004 111222004 202202111 004222111111 "
    "202202202202 111202202 202333220111 004222111 111202202 202202 111111 111111111 111022022 "
    "040111222111 022022111 004222111111 022022022022 022022111 111111111 111111111111 004222111111 "
    "111111111 040222111111 111111111 022022111 111111 400222111 222111222111 333022111202 040222111 "
    "333220022111 111222004 111022022 022022 400222111111 111111111 202202111 111111 220220111 111111 "
    "111111 111 ")


@lru_cache(maxsize=64)
def surfel_areas_3d(spacing: tuple[float, float, float]) -> np.ndarray:
    """Area in mm² of the surfel of every 3D neighbour code (256 values; codes 0 and 255 have 0)."""
    s0, s1, s2 = (float(s) for s in spacing)
    half = np.zeros(128)
    for code, entry in enumerate(_NORMALS_X8.split()):
        if entry == "-":
            continue
        normals = np.array([int(d) for d in entry], dtype=float).reshape(-1, 3) / 8.0
        scaled = np.stack([normals[:, 0] * s1 * s2, normals[:, 1] * s0 * s2, normals[:, 2] * s0 * s1], 1)
        half[code] = sum(float(np.linalg.norm(n)) for n in scaled)
    return np.concatenate([half, half[::-1]])


@lru_cache(maxsize=64)
def contour_lengths_2d(spacing: tuple[float, float]) -> np.ndarray:
    """Length in mm of the contour element of every 2D neighbour code (16 values).

    One or three corners inside: a diagonal cut, half the pixel diagonal. Two side-by-side
    pixels (codes 0b0011, 0b1100): a cut along axis 1, of length ``spacing[1]``. Two stacked
    pixels (0b0101, 0b1010): a cut along axis 0, of length ``spacing[0]``. Two diagonal pixels
    (0b0110, 0b1001): two diagonal cuts.
    """
    s0, s1 = (float(s) for s in spacing)
    half_diagonal = 0.5 * np.hypot(s0, s1)
    lengths = np.zeros(16)
    for code in (1, 2, 4, 8, 7, 11, 13, 14):
        lengths[code] = half_diagonal
    lengths[0b0011] = lengths[0b1100] = s1
    lengths[0b0101] = lengths[0b1010] = s0
    lengths[0b0110] = lengths[0b1001] = 2 * half_diagonal
    return lengths


def surfel_table(spacing: Sequence[float]) -> np.ndarray:
    """The code -> surfel measure table for a 2D or 3D spacing."""
    spacing = tuple(float(s) for s in spacing)
    return contour_lengths_2d(spacing) if len(spacing) == 2 else surfel_areas_3d(spacing)
