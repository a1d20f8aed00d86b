"""Geometry of axis-aligned boxes and points in physical coordinates (mm).

A box is ``[x0, y0, x1, y1]`` (2D) or ``[x0, y0, z0, x1, y1, z1]`` (3D), continuous, with
``x0 <= x1`` on every axis: its extent along an axis is ``x1 - x0`` (no ``+1`` as in pixel
conventions; the same as pycocotools' ``[x, y, w, h]`` boxes with ``w = x1 - x0``).
Arrays hold one box or point per row.
"""

from __future__ import annotations

import numpy as np


def box_volumes(boxes: np.ndarray) -> np.ndarray:
    """Area (2D) or volume (3D) of each box: the product of ``x1 - x0`` over the axes."""
    boxes = np.asarray(boxes, dtype=float)
    ndim = boxes.shape[1] // 2
    return np.prod(boxes[:, ndim:] - boxes[:, :ndim], axis=1)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of ``a`` with every box of ``b``.

    IoU = vol(A ∩ B) / (vol(A) + vol(B) − vol(A ∩ B)), volumes as products of extents (continuous
    boxes, no +1). Boxes that touch at an edge or a face have an intersection of 0 and IoU 0; two
    boxes of zero volume (a union of 0) have IoU 0.

    Parameters
    ----------
    a, b : numpy.ndarray
        (n, 2d) and (m, 2d) boxes ``[x0, y0, x1, y1]`` or ``[x0, y0, z0, x1, y1, z1]`` in mm.

    Returns
    -------
    numpy.ndarray
        (n, m) IoUs; empty when either side is.

    References
    ----------
    Lin et al., Microsoft COCO, ECCV 2014 (pycocotools 2.0.11's bounding-box IoU, without its +1);
    docs/metrics.md, section Detection.

    Examples
    --------
    >>> import numpy as np
    >>> box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 0, 3, 2], [5, 5, 6, 6]])).round(4).tolist()
    [[0.3333, 0.0]]
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.size == 0 or b.size == 0:
        return np.zeros((len(a), len(b)))
    ndim = a.shape[1] // 2
    low = np.maximum(a[:, None, :ndim], b[None, :, :ndim])
    high = np.minimum(a[:, None, ndim:], b[None, :, ndim:])
    inter = np.prod(np.clip(high - low, 0.0, None), axis=2)
    union = box_volumes(a)[:, None] + box_volumes(b)[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return iou


def box_centres(boxes: np.ndarray) -> np.ndarray:
    """Centre ``(x0 + x1) / 2`` of each box, per axis: (n, 2d) -> (n, d)."""
    boxes = np.asarray(boxes, dtype=float)
    ndim = boxes.shape[1] // 2
    return (boxes[:, :ndim] + boxes[:, ndim:]) / 2.0


def points_in_spheres(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """(n, m) hit matrix: point i lies strictly inside sphere j, ‖p_i − c_j‖ < r_j.

    This is the hit criterion of LUNA16 (Setio et al., Medical Image Analysis 42, 2017: a
    candidate is a true positive when it lies within the radius of a nodule; the official script
    tests the squared distance with ``<``). A point on the sphere itself is a miss.
    """
    points = np.asarray(points, dtype=float)
    centres = np.asarray(centres, dtype=float)
    if len(points) == 0 or len(centres) == 0:
        return np.zeros((len(points), len(centres)), dtype=bool)
    d2 = np.sum((points[:, None, :] - centres[None, :, :]) ** 2, axis=2)
    return d2 < np.asarray(radii, dtype=float)[None, :] ** 2


def points_in_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(n, m) hit matrix: point i lies in box j, ``x0 <= p <= x1`` on every axis (closed box)."""
    points = np.asarray(points, dtype=float)
    boxes = np.asarray(boxes, dtype=float)
    if len(points) == 0 or len(boxes) == 0:
        return np.zeros((len(points), len(boxes)), dtype=bool)
    ndim = boxes.shape[1] // 2
    inside = (points[:, None, :] >= boxes[None, :, :ndim]) & (points[:, None, :] <= boxes[None, :, ndim:])
    return inside.all(axis=2)
