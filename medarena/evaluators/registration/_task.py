"""The registration task: target registration error, warped-label overlap, field regularity.

The prediction is a displacement field u on the fixed image's grid, in mm, mapping fixed to
moving points: x_m = x_f + u(x_f) (docs/metrics.md, section Registration); field geometry as in
:mod:`medarena.evaluators.registration._fields`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import field_validator

from medarena.evaluators import segmentation
from medarena.evaluators.image import Image
from medarena.evaluators.registration import _learn2reg as learn2reg
from medarena.evaluators.registration._fields import (
    field_to_mm,
    field_to_voxels,
    points_outside,
    target_registration_error,
    tre_summary,
    warp_labels,
)
from medarena.evaluators.registration._jacobian import folding, jacobian_determinant, sdlogj
from medarena.evaluators.registration._landmarks import (
    Landmarks,
    pair_landmarks,
    parse_landmarks_csv,
    parse_landmarks_json,
)
from medarena.evaluators.tasks import CaseError, CaseResult, Task, TaskSettings

METRIC_GROUPS = ("tre", "tre_initial", "dice", "hd95", "sdlogj", "folding")
_TRE_KEYS = ("mean", "median", "p95", "max", "std")


class RegistrationSettings(TaskSettings):
    """How a registration case is scored.

    - ``convention``: ``default`` (docs/metrics.md, section Registration) or ``l2r`` (the Learn2Reg script, see
      :mod:`medarena.evaluators.registration._learn2reg`).
    - ``metrics``: groups (``tre``, ``tre_initial``, ``dice``, ``hd95``, ``sdlogj``, ``folding``) or
      single columns (``tre_mean``, ``tre_initial_p95``, ...); None = every metric the case's
      inputs allow.
    - ``labels``: label name -> value; None = every non-zero value of the fixed and moving labels
      (``default``), of the fixed labels (``l2r``).
    - ``field_units``: units of the field's components; None = ``mm`` (default) / ``voxel`` (l2r).
      ``voxel`` means displacements along the ITK index axes (x, y, z), as Learn2Reg fields.
    - ``landmark_units``: ``mm`` (physical points, ITK order) or ``voxel`` (continuous indices in
      ITK order on the fixed / moving grid, as Learn2Reg's landmark files).
    - ``use_mask``: restrict SDlogJ and folding to the reference's ``mask`` when it has one.
    - ``per_landmark_rows``: add one row per landmark (label ``landmark <id>``: ``tre``,
      ``tre_initial``); the per-landmark errors are always in the case's pooled payload.
    - ``l2r_jacobian_offset``: the offset the Learn2Reg script adds to J before the log (3).
    """

    convention: Literal["default", "l2r"] = "default"
    metrics: list[str] | None = None
    labels: dict[str, int] | None = None
    field_units: Literal["mm", "voxel"] | None = None
    landmark_units: Literal["mm", "voxel"] = "mm"
    use_mask: bool = True
    per_landmark_rows: bool = False
    l2r_jacobian_offset: float = 3.0

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        known = set(METRIC_GROUPS) | {f"{p}_{k}" for p in ("tre", "tre_initial") for k in _TRE_KEYS}
        unknown = [m for m in value if m not in known]
        if unknown:
            raise ValueError(f"unknown registration metrics {unknown}; known: {sorted(known)}")
        return value


class RegistrationTask(Task):
    """Scores a displacement field against landmarks and label maps.

    Reference roles (every one optional, but a case needs landmarks or labels or a grid):

    - ``fixed_landmarks``, ``moving_landmarks``: paired (N, d) arrays (row k with row k), in mm,
      ITK order (or voxel indices with ``landmark_units="voxel"``), with ``landmark_ids`` (N names)
      optional; or landmark documents as the platform's JSON sockets hold them (grand-challenge
      "Multiple points", decoded) or CSV text, paired by name when both name every point, else by
      row.
    - ``fixed_labels``, ``moving_labels``: label-map :class:`Image` s on their own grids.
    - ``mask``: an :class:`Image` on the fixed grid restricting SDlogJ and folding.
    - ``fixed_image``, ``moving_image``: the images (only their grids are used).

    Prediction role ``field``: an :class:`Image` (z, y, x, 3) on the fixed grid, components in ITK
    order (x, y, z), in mm (or voxels, see ``field_units``); or a bare array of that shape, which
    then takes the fixed grid's geometry (from ``fixed_image``, ``fixed_labels`` or ``mask``).

    Rows: one whole-case row (label None: ``tre_*``, ``tre_initial_*``, ``sdlogj``, ``folding``),
    one row per label (``dice``, ``hd95``) and, on request, one per landmark. The pooled payload
    holds ``{"landmarks": [{"id", "tre", "tre_initial"}, ...]}`` and the case values the ``l2r``
    data-set summary needs.
    """

    name = "registration"
    Settings = RegistrationSettings
    reference_roles = ("fixed_landmarks", "moving_landmarks", "fixed_labels", "moving_labels", "mask",
                       "fixed_image", "moving_image", "landmark_ids")
    prediction_roles = ("field",)

    def score_case(self, reference: Mapping[str, Any], prediction: Mapping[str, Any],
                   settings: RegistrationSettings) -> CaseResult:
        field = _checked_field(reference, prediction.get("field"))
        l2r = settings.convention == "l2r"
        units = settings.field_units or ("voxel" if l2r else "mm")
        if l2r and field.ndim != 3:
            raise CaseError("the l2r convention needs a 3D field")
        if l2r:
            field_vox = field_to_voxels(field) if units == "mm" else np.asarray(field.array, dtype=np.float64)
            field_mm = None
        else:
            field_mm = field if units == "mm" else Image(field_to_mm(field.array, field), field.spacing,
                                                         field.origin, field.direction)
        wanted = _wanted_groups(reference, settings)
        whole: dict[str, Any] = {"label": None}
        rows: list[dict[str, Any]] = []
        pooled: dict[str, Any] = {}

        if "tre" in wanted or "tre_initial" in wanted:
            ids, tre, tre0 = _landmark_errors(reference, field, field_vox if l2r else field_mm, settings)
            whole.update(tre_summary(tre, "tre"))
            whole.update(tre_summary(tre0, "tre_initial"))
            pooled["landmarks"] = [{"id": i, "tre": float(a), "tre_initial": float(b)}
                                   for i, a, b in zip(ids, tre, tre0, strict=True)]
            if settings.per_landmark_rows:
                rows += [{"label": f"landmark {i}", "tre": float(a), "tre_initial": float(b)}
                         for i, a, b in zip(ids, tre, tre0, strict=True)]

        if "sdlogj" in wanted or "folding" in wanted:
            mask = _mask(reference, field) if settings.use_mask else None
            if l2r:
                jac = learn2reg.jacobian_determinant_l2r(field_vox)
                mask = None if mask is None else learn2reg.crop_l2r(mask)
                whole["sdlogj"] = learn2reg.sdlogj_l2r(jac, mask, settings.l2r_jacobian_offset)
            else:
                jac = jacobian_determinant(field_mm.array, field.spacing, field.direction)
                whole["sdlogj"] = sdlogj(jac, mask)
            whole["folding"] = folding(jac, mask)

        if "dice" in wanted or "hd95" in wanted:
            label_rows = _label_rows(reference, field, field_vox if l2r else field_mm, settings)
            rows += label_rows
            if l2r:
                pooled["l2r_dice"] = _nanmean([r.get("dice") for r in label_rows])
                pooled["l2r_hd95"] = _nanmean([r.get("hd95") for r in label_rows])

        if l2r:
            for metric, key in (("tre", "tre_mean"), ("sdlogj", "sdlogj")):
                if key in whole:
                    pooled[f"l2r_{metric}"] = whole[key]
        return CaseResult(rows=_select_columns([whole] + rows, settings), pooled=pooled)

    def score_dataset(self, results: Sequence[CaseResult], settings: RegistrationSettings) -> dict[str, Any]:
        """With ``l2r``: Learn2Reg's summary (:func:`~medarena.evaluators.registration._learn2reg.aggregate_l2r`)
        of the per-case TRE mean, label-mean Dice and HD95, and SDlogJ; otherwise nothing.

        A case value the script would keep as NaN or infinity (an HD95 of an emptied label) reaches
        this step from the platform as JSON null, which counts as NaN: the summary is then NaN
        where the script's would be NaN or infinite."""
        if settings.convention != "l2r":
            return {}
        values: dict[str, list[float]] = {}
        for result in results:
            pooled = result.pooled or {}
            for metric in ("tre", "dice", "hd95", "sdlogj"):
                if f"l2r_{metric}" in pooled:  # a NaN case value is stored as None (JSON null)
                    value = pooled[f"l2r_{metric}"]
                    values.setdefault(metric, []).append(math.nan if value is None else float(value))
        return learn2reg.aggregate_l2r(values)


def _checked_field(reference: Mapping[str, Any], field: Any) -> Image:
    grid = _first(reference, ("fixed_image", "fixed_labels", "mask"))
    if field is None:
        raise CaseError("no displacement field in the prediction")
    if not isinstance(field, Image):
        if grid is None:
            raise CaseError("a bare field array needs the fixed image's grid in the reference")
        field = Image(np.asarray(field), grid.spacing, grid.origin, grid.direction)
    ndim = field.ndim
    if field.array.ndim != ndim + 1 or field.array.shape[-1] != ndim:
        raise CaseError(f"the field must have {ndim} components per voxel (array shape (*grid, {ndim})), "
                        f"got array shape {field.array.shape}")
    if not np.issubdtype(field.array.dtype, np.number):
        raise CaseError(f"the field has non-numeric values ({field.array.dtype})")
    bad = 0 if np.isfinite(field.array.sum(dtype=np.float64)) else np.count_nonzero(~np.isfinite(field.array))
    if bad:
        raise CaseError(f"the field has {bad} NaN or infinite values")
    if grid is not None:
        if grid.shape != field.shape:
            raise CaseError(f"the field's grid {field.shape} differs from the fixed image's {grid.shape}")
        if not grid.same_geometry(field):
            raise CaseError("the field's spacing, origin or direction differs from the fixed image's "
                            f"(field {field.spacing}, {field.origin}; fixed {grid.spacing}, {grid.origin})")
    return field


def _wanted_groups(reference: Mapping[str, Any], settings: RegistrationSettings) -> set[str]:
    has_landmarks = all(reference.get(r) is not None for r in ("fixed_landmarks", "moving_landmarks"))
    has_labels = all(reference.get(r) is not None for r in ("fixed_labels", "moving_labels"))
    available = {"sdlogj", "folding"} | ({"tre", "tre_initial"} if has_landmarks else set()) \
        | ({"dice", "hd95"} if has_labels else set())
    if settings.metrics is None:
        return available
    wanted = {_group(m) for m in settings.metrics}
    missing = wanted - available
    if missing:
        need = ["fixed and moving landmarks" if m.startswith("tre") else
                "fixed and moving labels" for m in sorted(missing)]
        raise CaseError(f"metrics {sorted(missing)} need {' and '.join(sorted(set(need)))} in the reference")
    return wanted


def _select_columns(rows: list[dict[str, Any]], settings: RegistrationSettings) -> list[dict[str, Any]]:
    if settings.metrics is None:
        return rows
    chosen = set(settings.metrics)

    groups = {_group(m) for m in chosen}

    def keep(key: str) -> bool:
        # per-landmark columns ("tre", "tre_initial") follow any chosen column of their group
        return key == "label" or key in chosen or _group(key) in chosen or key in ("tre", "tre_initial") \
            and key in groups

    return [{k: v for k, v in row.items() if keep(k)} for row in rows]


def _group(metric: str) -> str:
    if metric.startswith("tre_initial"):
        return "tre_initial"
    return "tre" if metric.startswith("tre") else metric


def _moving_grid(reference: Mapping[str, Any], field: Image) -> Image:
    return _first(reference, ("moving_image", "moving_labels")) or field


def _first(reference: Mapping[str, Any], roles: Sequence[str]) -> Any:
    return next((reference[r] for r in roles if reference.get(r) is not None), None)


def _landmark_errors(reference: Mapping[str, Any], field: Image, values: Any,
                     settings: RegistrationSettings) -> tuple[list[str], np.ndarray, np.ndarray]:
    fixed, moving, given_ids = _paired_landmarks(reference)
    if fixed.ndim != 2 or moving.ndim != 2 or fixed.shape[1] != field.ndim or moving.shape[1] != field.ndim:
        raise CaseError(f"landmarks must be (N, {field.ndim}) arrays, got fixed {fixed.shape} and "
                        f"moving {moving.shape}")
    if fixed.shape[0] != moving.shape[0]:
        raise CaseError(f"{fixed.shape[0]} fixed and {moving.shape[0]} moving landmarks")
    if not (np.isfinite(fixed).all() and np.isfinite(moving).all()):
        raise CaseError("landmarks with non-finite coordinates")
    ids = [str(i) for i in (range(1, fixed.shape[0] + 1) if given_ids is None else given_ids)]
    if len(ids) != fixed.shape[0]:
        raise CaseError(f"{len(ids)} landmark ids for {fixed.shape[0]} landmarks")
    moving_grid = _moving_grid(reference, field)
    if settings.landmark_units == "voxel":
        fixed = field.index_to_physical(fixed[:, ::-1])
        moving = moving_grid.index_to_physical(moving[:, ::-1])
    outside = np.flatnonzero(points_outside(field, fixed))
    if outside.size:
        names = ", ".join(ids[k] for k in outside[:10])
        raise CaseError(f"{outside.size} fixed landmarks outside the fixed image ({names})")
    if settings.convention == "l2r":
        fixed_index = field.physical_to_index(fixed)[:, ::-1]
        moving_index = moving_grid.physical_to_index(moving)[:, ::-1]
        tre = learn2reg.tre_voxel(fixed_index, moving_index, values, moving_grid.spacing)
        spacing_itk = np.asarray(moving_grid.spacing, dtype=float)[::-1]
        tre0 = np.linalg.norm((fixed_index - moving_index) * spacing_itk, axis=1)  # u = 0 in the same formula
        return ids, tre, tre0
    return ids, target_registration_error(fixed, moving, values), np.linalg.norm(fixed - moving, axis=1)


def _paired_landmarks(reference: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, Any]:
    """Fixed and moving points as paired arrays, from arrays or from landmark documents
    (grand-challenge "Multiple points" JSON, decoded, or CSV text), paired by name or by row."""
    fixed, moving = reference["fixed_landmarks"], reference["moving_landmarks"]
    if not (_is_document(fixed) or _is_document(moving)):
        return np.asarray(fixed, dtype=float), np.asarray(moving, dtype=float), reference.get("landmark_ids")
    try:
        fixed_lm, moving_lm = _as_landmarks(fixed, "fixed landmarks"), _as_landmarks(moving, "moving landmarks")
        fixed_points, moving_points, ids = pair_landmarks(fixed_lm, moving_lm)
    except ValueError as exc:
        raise CaseError(str(exc)) from None
    return fixed_points, moving_points, ids


def _is_document(value: Any) -> bool:
    if isinstance(value, (str, Mapping)):
        return True
    return isinstance(value, Sequence) and bool(value) and isinstance(value[0], Mapping)


def _as_landmarks(value: Any, what: str) -> Landmarks:
    if isinstance(value, Landmarks):
        return value
    if isinstance(value, str):
        return parse_landmarks_csv(value, what)
    if _is_document(value):
        return parse_landmarks_json(value, what)
    return Landmarks(np.asarray(value, dtype=float))


def _mask(reference: Mapping[str, Any], field: Image) -> np.ndarray | None:
    mask = reference.get("mask")
    if mask is None:
        return None
    if mask.shape != field.shape:
        raise CaseError(f"the mask's grid {mask.shape} differs from the field's {field.shape}")
    return np.asarray(mask.array) != 0


def _label_rows(reference: Mapping[str, Any], field: Image, values: Any,
                settings: RegistrationSettings) -> list[dict[str, Any]]:
    fixed, moving = reference["fixed_labels"], reference["moving_labels"]
    if fixed.shape != field.shape:
        raise CaseError(f"the fixed labels' grid {fixed.shape} differs from the field's {field.shape}")
    if settings.labels is not None:
        labels = dict(settings.labels)
    else:
        present = np.unique(fixed.array) if settings.convention == "l2r" else \
            np.union1d(np.unique(fixed.array), np.unique(moving.array))
        labels = {str(int(v)): int(v) for v in present if v != 0}
    rows = []
    if settings.convention == "l2r":
        if moving.shape != field.shape:
            raise CaseError(f"the l2r convention needs moving labels on the fixed grid {field.shape}, "
                            f"got {moving.shape}")
        warped = learn2reg.warp_labels_l2r(moving.array, values)
        scores = learn2reg.label_scores_l2r(np.asarray(fixed.array), np.asarray(moving.array), warped,
                                            list(labels.values()))
        for name, value in labels.items():
            rows.append({"label": name, "dice": scores[value][0], "hd95": scores[value][1]})
        return rows
    warped = warp_labels(moving, values)
    scores = segmentation.evaluate(np.asarray(fixed.array), warped, spacing=fixed.spacing,
                                   metrics=["dice", "hd95"], labels=labels)
    return [{"label": name, **scores[name]} for name in labels]


def _nanmean(values: list[Any]) -> float:
    """The mean over labels leaving NaN out, NaN when none is left (numpy's ``nanmean``, as the
    Learn2Reg script's case value of Dice and HD95)."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else math.nan


TASK = RegistrationTask()
