"""Xydeas–Petrović edge preservation Q^AB/F with Sobel gradients.

Definition and departures from VIFB: :mod:`medarena.evaluators.fusion`.
"""

from __future__ import annotations

import numpy as np


def _sobel(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sobel responses, correlation with [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]] (s_x) and its
    transpose (s_y), zero padding (MATLAB's ``filter2(h, F, 'same')``)."""
    p = np.pad(image, 1)
    across = p[:, 2:] - p[:, :-2]  # (H + 2, W)
    sx = across[:-2] + across[2:]
    sx += 2 * across[1:-1]
    down = p[2:] - p[:-2]  # (H, W + 2)
    sy = down[:, :-2] + down[:, 2:]
    sy += 2 * down[:, 1:-1]
    return sx, sy


def _strength_orientation(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sx, sy = _sobel(np.asarray(image, dtype=np.float64))
    g = np.sqrt(sx * sx + sy * sy)
    sx[sx == 0] = 1e-5  # α = atan(s_y / s_x) with s_x = 0 read as its limit, ±π/2 (0 when s_y = 0)
    return g, np.arctan(sy / sx)


def _edge_preservation(g_x: np.ndarray, a_x: np.ndarray, g_f: np.ndarray, a_f: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(g_x > g_f, g_f / g_x, g_x / g_f)
    g[(g_x == 0) | (g_f == 0)] = 0
    a = np.abs(np.abs(a_x - a_f) - np.pi / 2) * (2 / np.pi)
    q_g = 0.9994 / (1 + np.exp(-15 * (g - 0.5)))
    q_a = 0.9879 / (1 + np.exp(-22 * (a - 0.8)))
    return q_g * q_a


def qabf(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Xydeas–Petrović edge preservation Q^AB/F.

    Sobel responses (zero padding) give edge strength g = sqrt(s_x² + s_y²) and orientation
    α = atan(s_y / s_x) (where s_x = 0: ±π/2 by the sign of s_y, 0 on a flat pixel). For a source X:
    relative strength G^XF = g_F/g_X if g_X > g_F else g_X/g_F (0 where either is 0), relative
    orientation A^XF = | |α_X − α_F| − π/2 | · 2/π (orientations equal modulo π count as equal; the
    paper's 1 − |α_X − α_F|/(π/2) for |Δα| ≤ π/2), and
    Q^XF = Γ_g / (1 + e^{κ_g (G^XF − σ_g)}) · Γ_α / (1 + e^{κ_α (A^XF − σ_α)}) with Γ_g = 0.9994,
    κ_g = −15, σ_g = 0.5, Γ_α = 0.9879, κ_α = −22, σ_α = 0.8. Finally
    Q^AB/F = Σ(Q^AF g_A + Q^BF g_B) / Σ(g_A + g_B) (weights w = g^L, L = 1).

    Parameters
    ----------
    a, b, f : numpy.ndarray
        Sources A and B and the fused image F, 2D, one shape.

    Returns
    -------
    float
        In [0, 1) (at most 0.9994 · 0.9879 for every edge kept exactly); NaN when neither source has
        an edge.

    References
    ----------
    Xydeas & Petrović, Electronics Letters 36:308 (2000); VIFB (Zhang et al., CVPR Workshops 2020;
    code at 22b2ea9) ``metricsQabf``, departed from in the orientation of flat pixels, the
    comparison modulo π and equal strengths (:mod:`medarena.evaluators.fusion`); docs/metrics.md, section Fusion.

    Examples
    --------
    >>> import numpy as np
    >>> ramp = np.tile(np.arange(5.0), (3, 1))
    >>> round(qabf(ramp, ramp, ramp), 4)  # every edge kept: Q_g(1) Q_a(1) = 0.99885 * 0.97592
    0.9748
    """
    g_a, a_a = _strength_orientation(a)
    g_b, a_b = _strength_orientation(b)
    g_f, a_f = _strength_orientation(f)
    den = float(g_a.sum() + g_b.sum())
    if den == 0:
        return float("nan")
    num = float((_edge_preservation(g_a, a_a, g_f, a_f) * g_a).sum()
                + (_edge_preservation(g_b, a_b, g_f, a_f) * g_b).sum())
    return num / den
