"""The ``l2r`` convention: the choices of the Learn2Reg evaluation scripts (Hering et al., IEEE TMI 2022).

Learn2Reg's ``evaluation.py`` / ``utils.py`` work in voxel space of NIfTI arrays, never in world
coordinates. What is reproduced here, and where it is an assumption (the official scripts were not
at hand when this was written; each point below is stated from their published behaviour):

- Fields are in **voxel units**, one component per array axis of the fixed image. In medarena's
  layout (array (z, y, x, 3), components in ITK order x, y, z) component c displaces along ITK index
  axis c, which is NIfTI/nibabel array axis c, so a Learn2Reg field maps onto ours unchanged.
  Direction cosines and origins play no part (the scripts ignore them).
- TRE: the field is sampled at the fixed landmarks (voxel indices) with
  ``scipy.ndimage.map_coordinates`` at its defaults: **cubic B-spline** (order 3, with prefilter)
  and ``mode="constant"`` (zero outside the image, so a landmark near the border sees a damped
  displacement); TRE = ‖(x_f + u(x_f) − x_m) ∘ s_moving‖ with s_moving the **moving** image's
  spacing. *Departure from the stated definition*: a fixed-image point plus a displacement is
  compared with a moving-image index and scaled by the moving spacing, which is only the
  physical TRE when both images share one grid (true of the Learn2Reg data sets); see
  :func:`tre_voxel`.
- Labels: the moving labels are warped with ``map_coordinates(order=0)`` (nearest neighbour,
  zero outside) at identity + u. Per label of the fixed labels: Dice, and HD95 **in voxels**
  (unit spacing) with DeepMind surface-distance's definition (surfels weighted by area, as the
  script; the segmentation evaluator's ``deepmind`` convention), so an empty warped label gives
  ``inf``. A label absent from the fixed or the moving labels gives NaN for both, and the case
  value is the NaN-ignoring mean over labels.
- SDlogJ: J from central differences ``[-0.5, 0, 0.5]`` in voxel units (``scipy.ndimage.correlate``
  with zero padding), **cropped by 2 voxels** on every side, then
  ``std(log(clip(J + 3, 1e-9, 1e9)))``. *Departure from the stated definition* (std of log J):
  the script adds 3 to J before the clip, which compresses the spread (for J ≈ 1,
  std(log(J + 3)) ≈ std(J)/4 instead of ≈ std(J)) and lets folds with −3 < J ≤ 0 count as finite
  values. This is reproduced by default (``offset=3``) and documented in :func:`sdlogj_l2r`.
  Folding is reported from the same cropped J without the offset.
- Aggregation over cases, as the evaluation script (MDL-UzL/L2R, ``evaluation/evaluation.py``):
  pandas ``mean()``, ``std()`` (the sample standard deviation, ddof = 1) and ``quantile(.3)``
  (linear interpolation) of every metric. *Departure from the stated definition* (the "30 %
  worst cases" robustness value): the script takes the 30th percentile of every column, so for
  TRE, HD95 and SDlogJ, where lower is better, ``*_30`` lies in the better tail, not the worst.
  This is reproduced; see :func:`aggregate_l2r`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage

from medarena.evaluators import segmentation
from medarena.evaluators.registration._jacobian import jacobian_determinant, sdlogj

#: voxels removed on every side of the Jacobian by the Learn2Reg script
L2R_CROP = 2


def sample_field_spline(field_vox: np.ndarray, index_itk: np.ndarray) -> np.ndarray:
    """u at continuous indices (N, 3) in ITK order, each component by cubic B-spline
    (``map_coordinates`` order 3, ``mode="constant"``, as the Learn2Reg script)."""
    coords = np.asarray(index_itk, dtype=float)[:, ::-1].T  # array order (z, y, x)
    return np.stack([ndimage.map_coordinates(np.asarray(field_vox[..., c], dtype=np.float64), coords)
                     for c in range(field_vox.shape[-1])], axis=1)


def tre_voxel(
    fixed_index: np.ndarray, moving_index: np.ndarray, field_vox: np.ndarray, moving_spacing: Sequence[float]
) -> np.ndarray:
    """Learn2Reg TRE per landmark: ‖(i_f + u(i_f) − i_m) ∘ s_moving‖ in mm.

    ``fixed_index`` and ``moving_index`` are (N, 3) continuous voxel indices in ITK order (x, y, z),
    ``field_vox`` is (z, y, x, 3) in voxels (components x, y, z), ``moving_spacing`` is in array
    order (z, y, x). u is sampled with :func:`sample_field_spline`.

    Departure from the stated definition (the distance between the warped fixed point and the
    moving point in mm): the difference of a fixed-grid and a moving-grid index is scaled by the
    moving spacing, which equals the physical distance only when both images share one grid.
    """
    spacing_itk = np.asarray(moving_spacing, dtype=float)[::-1]
    warped = np.asarray(fixed_index, float) + sample_field_spline(field_vox, fixed_index)
    return np.linalg.norm((warped - np.asarray(moving_index, float)) * spacing_itk, axis=1)


def warp_labels_l2r(moving_labels: np.ndarray, field_vox: np.ndarray) -> np.ndarray:
    """The moving labels at identity + u (voxels), ``map_coordinates(order=0)``, zero outside.

    The output has the field's grid; the moving labels are indexed as if on that grid.
    """
    shape = field_vox.shape[:-1]
    grid = np.indices(shape, dtype=np.float64)
    for axis in range(len(shape)):
        grid[axis] += field_vox[..., len(shape) - 1 - axis]
    return ndimage.map_coordinates(np.asarray(moving_labels), grid, order=0)


def label_scores_l2r(
    fixed_labels: np.ndarray, moving_labels: np.ndarray, warped_labels: np.ndarray, labels: Sequence[int]
) -> dict[int, tuple[float, float]]:
    """Per label: (Dice, HD95 in voxels) as Learn2Reg: NaN for both when the label is absent from
    the fixed or the moving labels; otherwise Dice and DeepMind's HD95 with unit spacing
    (``inf`` when the warped label is empty)."""
    scores: dict[int, tuple[float, float]] = {}
    present = [v for v in labels if (fixed_labels == v).any() and (moving_labels == v).any()]
    rows = segmentation.evaluate(fixed_labels, warped_labels, spacing=(1.0,) * fixed_labels.ndim,
                                 metrics=["dice", "hd95"], labels={str(v): int(v) for v in present},
                                 convention="deepmind") if present else {}
    for value in labels:
        row = rows.get(str(value))
        scores[value] = (float(row["dice"]), float(row["hd95"])) if row else (float("nan"), float("nan"))
    return scores


def jacobian_determinant_l2r(field_vox: np.ndarray) -> np.ndarray:
    """J = det(I + ∇u) with ∇ by ``[-0.5, 0, 0.5]`` in voxel units, cropped by 2 voxels per side.

    Central differences in the interior equal the script's zero-padded correlation there; the
    crop removes every voxel where the padding would matter.
    """
    u = np.asarray(field_vox, dtype=np.float64)
    ndim = u.ndim - 1
    if any(n <= 2 * L2R_CROP for n in u.shape[:-1]):
        raise ValueError(f"field of shape {u.shape[:-1]} is too small for the Learn2Reg crop of {L2R_CROP}")
    # unit spacing and identity direction: det(I + ∂u/∂i), central differences inside the crop
    return crop_l2r(jacobian_determinant(u, (1.0,) * ndim))


def crop_l2r(mask: np.ndarray) -> np.ndarray:
    """A fixed-grid mask cropped as :func:`jacobian_determinant_l2r` crops J."""
    return np.asarray(mask)[tuple(slice(L2R_CROP, -L2R_CROP) for _ in range(np.ndim(mask)))]


def sdlogj_l2r(jacobian_cropped: np.ndarray, mask_cropped: np.ndarray | None = None,
               offset: float = 3.0) -> float:
    """Learn2Reg's SDlogJ: std(log(clip(J + offset, 1e-9, 1e9))) with the script's offset of 3.

    Departure from the stated definition std(log J): the script adds 3 to J. ``offset=0`` gives
    the definition on the cropped J.
    """
    return sdlogj(jacobian_cropped, mask_cropped, offset=offset)


def aggregate_l2r(case_values: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Learn2Reg's summary over cases of each metric, as its evaluation script computes it.

    ``case_values`` maps ``tre``, ``dice``, ``hd95``, ``sdlogj`` (any subset) to one value per case
    (NaN values are left out, as pandas does): ``{metric}_mean``, ``{metric}_std`` (sample standard
    deviation, ddof = 1; NaN for one case) and ``{metric}_30``, the 30th percentile with linear
    interpolation for every metric, lower-is-better ones included (the script's
    ``quantile(.3)``; for them it is not the worst 30 % that the challenge's text describes).
    """
    out: dict[str, float] = {}
    for metric, values in case_values.items():
        arr = np.asarray([v for v in values if v is not None and not np.isnan(v)], dtype=float)
        if arr.size == 0:
            out.update({f"{metric}_mean": float("nan"), f"{metric}_std": float("nan"),
                        f"{metric}_30": float("nan")})
            continue
        out[f"{metric}_mean"] = float(arr.mean())
        out[f"{metric}_std"] = float(arr.std(ddof=1)) if arr.size > 1 else float("nan")
        out[f"{metric}_30"] = float(np.quantile(arr, 0.3))
    return out
