"""The ``l2r`` convention: the choices of the Learn2Reg evaluation script (Hering et al., IEEE TMI 2022).

Checked against MDL-UzL/L2R at commit 88475095e35442087a24439ff34ec09f54bc7dac (2025-02-10),
``evaluation/evaluation.py`` and ``evaluation/utils.py`` (evaluation version "2.0"). The script works
in voxel space of NIfTI arrays, never in world coordinates:

- Fields are in **voxel units**, one component per array axis of the fixed image. In medarena's
  layout (array (z, y, x, 3), components in ITK order x, y, z) component c displaces along ITK index
  axis c, which is NIfTI/nibabel array axis c, so a Learn2Reg field maps onto ours unchanged.
  Direction cosines and origins play no part (the script ignores them).
- TRE (``compute_tre``): the field is sampled at the fixed landmarks (voxel indices) with
  ``scipy.ndimage.map_coordinates`` at its defaults: **cubic B-spline** (order 3, with prefilter)
  and ``mode="constant"`` (zero outside the image, so a landmark near the border sees a damped
  displacement); TRE = ‖(x_f + u(x_f) − x_m) ∘ s_moving‖ with s_moving the **moving** image's
  spacing; the case value is the mean over landmarks. *Departure from the stated definition*: a
  fixed-image point plus a displacement is compared with a moving-image index and scaled by the
  moving spacing, which is only the physical TRE when both images share one grid (true of the
  Learn2Reg data sets); see :func:`tre_voxel`.
- Labels (``compute_dice``, ``compute_hd95``): the moving labels are warped with
  ``map_coordinates(order=0)`` (nearest neighbour, zero outside) at identity + u. Per label of the
  configuration: Dice, and HD95 **in voxels** (``np.ones(3)`` as spacing) with DeepMind
  surface-distance's ``compute_robust_hausdorff`` (surfels weighted by area, as the copy of
  surface-distance in the repository; the segmentation evaluator's ``deepmind`` convention), so an
  empty warped label gives ``inf``. A label absent from the fixed or the moving labels gives NaN
  for both, and the case value is ``np.nanmean`` over labels (NaN when every label is absent).
- SDlogJ (``jacobian_determinant``): J from central differences ``[-0.5, 0, 0.5]`` in voxel units
  (``scipy.ndimage.correlate`` with zero padding), **cropped by 2 voxels** on every side, then
  ``std(log(clip(J + 3, 1e-9, 1e9)))`` (numpy's population std; with a mask, of the masked
  values). *Departure from the stated definition* (std of log J): the script adds 3 to J before
  the clip, which compresses the spread (for J ≈ 1, std(log(J + 3)) ≈ std(J)/4 instead of
  ≈ std(J)) and lets folds with −3 < J ≤ 0 count as finite values. This is reproduced by default
  (``offset=3``) and documented in :func:`sdlogj_l2r`. The script's ``num_foldings`` counts
  ``clip(J + 3) <= 0``, which the clip makes always 0; medarena reports ``folding`` (the fraction
  of J ≤ 0) from the same cropped J without the offset instead.
- Data-set summary over cases (:func:`aggregate_l2r`): numpy's ``mean()``, ``std()`` (the
  **population** standard deviation, ddof = 0, since commit 3a37e9a of 2023-05-22, which replaced
  pandas) and, under the key ``30``, ``np.quantile`` (linear interpolation) at **0.7 for TRE and
  SDlogJ** and at **0.3 for Dice and HD95** (since commit 28985b7 of 2024-08-01). For TRE and
  SDlogJ (lower is better) the 70th percentile is the "30 % worst cases" value; for HD95, also
  lower-is-better, the script's 30th percentile lies in the better tail. This is reproduced. NaN
  case values are not left out (numpy, not pandas): one NaN makes the metric's summary NaN.
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


#: the quantile of each metric under the script's key ``30`` (MDL-UzL/L2R ``evaluation.py``)
L2R_QUANTILE = {"tre": 0.7, "sdlogj": 0.7, "dice": 0.3, "hd95": 0.3}


def aggregate_l2r(case_values: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Learn2Reg's summary over cases of each metric, as its evaluation script computes it.

    Parameters
    ----------
    case_values
        ``tre``, ``dice``, ``hd95``, ``sdlogj`` (any subset) -> one value per case (the case's
        mean TRE, label-mean Dice and HD95, SDlogJ).

    Returns
    -------
    dict
        ``{metric}_mean`` (numpy mean), ``{metric}_std`` (numpy std: population, ddof = 0) and
        ``{metric}_30`` (``np.quantile`` with linear interpolation at :data:`L2R_QUANTILE`: 0.7 for
        TRE and SDlogJ, 0.3 for Dice and HD95; the name is the script's key). NaN values are kept,
        so one NaN case makes all three NaN; a metric without cases gives NaN.

    References
    ----------
    MDL-UzL/L2R ``evaluation/evaluation.py`` at commit 88475095e35442087a24439ff34ec09f54bc7dac.

    Examples
    --------
    >>> out = aggregate_l2r({"tre": [1.0, 2.0, 3.0, 4.0], "dice": [0.5, 0.7, 0.9, 0.6]})
    >>> round(out["tre_30"], 6), round(out["dice_30"], 6), round(out["tre_std"], 6)
    (3.1, 0.59, 1.118034)
    """
    out: dict[str, float] = {}
    for metric, values in case_values.items():
        arr = np.asarray([np.nan if v is None else v for v in values], dtype=float)
        if arr.size == 0:
            out.update({f"{metric}_mean": float("nan"), f"{metric}_std": float("nan"),
                        f"{metric}_30": float("nan")})
            continue
        out[f"{metric}_mean"] = float(arr.mean())
        out[f"{metric}_std"] = float(arr.std())
        out[f"{metric}_30"] = float(np.quantile(arr, L2R_QUANTILE.get(metric, 0.3)))
    return out
