"""The PI-CAI detection convention: lesion candidates of a detection map against lesion masks.

Saha et al., "Artificial intelligence and radiologists in prostate cancer detection on MRI
(PI-CAI)", Lancet Oncology 2024; the semantics below are those of picai-eval 1.4.13 (``evaluate_case``,
``Metrics``; checked equal in the tests):

- A detection map holds non-overlapping, non-connected lesion candidates, each one connected
  component (full connectivity: 26 in 3D, 8 in 2D) of non-zero voxels; a candidate's confidence
  is its maximum value. Negative values are an error, and so is a map with fewer components than
  distinct non-zero values (a softmax volume rather than a detection map).
- Reference lesions are the connected components (same connectivity) of the non-zero label.
- Overlap is the voxel IoU of a candidate with a lesion. Candidates and lesions are matched by
  :func:`~medarena.evaluators.detection._matching.match_hungarian` with a minimum IoU of 0.1.
- A matched candidate is a true positive; an unmatched lesion a false negative (score 0); a
  candidate that overlaps no lesion by at least the minimum is a false positive; a candidate that
  does overlap a lesion sufficiently but lost the assignment is left out (neither TP nor FP;
  picai_eval's ``allow_unmatched_candidates_with_minimal_overlap=True``).
- The case's score is the maximum of the detection map (0 when empty) and the case is positive
  when it has a lesion; AUROC is computed over cases, AP over lesions, and the ranking score is
  (AUROC + AP) / 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medarena.evaluators.detection._matching import match_hungarian
from medarena.evaluators.tasks import CaseError

PICAI_MIN_OVERLAP = 0.1


def _components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    structure = np.ones((3,) * mask.ndim, dtype=bool)
    labelled, count = ndimage.label(mask, structure=structure)
    return labelled, int(count)


def detection_candidates(detection_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lesion candidates of a detection map: (labelled map, confidence of candidate 1..n).

    Raises :class:`CaseError` for negative values or a map that looks like a softmax volume.
    """
    values = np.asarray(detection_map, dtype=np.float32)
    if not np.isfinite(values).all():
        raise CaseError("the detection map has non-finite values (NaN or infinite)")
    if values.size and values.min() < 0:
        raise CaseError(f"the detection map has negative values (minimum {values.min()}); "
                        "confidences must be ≥ 0")
    labelled, count = _components(values != 0)
    distinct = len(np.unique(values[values != 0]))
    if count < distinct:
        raise CaseError(f"the detection map has {distinct} distinct values in {count} connected "
                        "components: it looks like a softmax volume, not a detection map of "
                        "constant-valued candidates")
    confidences = ndimage.maximum(values, labelled, index=np.arange(1, count + 1)) if count else []
    return labelled, np.asarray(confidences, dtype=float)


def lesion_iou(lesions: np.ndarray, n_lesions: int, candidates: np.ndarray, n_candidates: int) -> np.ndarray:
    """(G, C) voxel IoU of each labelled lesion (1..G) with each labelled candidate (1..C)."""
    g = lesions.ravel().astype(np.int64)
    c = candidates.ravel().astype(np.int64)
    both = (g > 0) & (c > 0)
    shape = (n_lesions + 1, n_candidates + 1)
    inter = np.bincount(g[both] * shape[1] + c[both], minlength=shape[0] * shape[1]).reshape(shape)
    inter = inter[1:, 1:].astype(float)
    size_g = np.bincount(g, minlength=n_lesions + 1)[1:].astype(float)
    size_c = np.bincount(c, minlength=n_candidates + 1)[1:].astype(float)
    union = size_g[:, None] + size_c[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


@dataclass(frozen=True)
class PicaiCase:
    """One case under the PI-CAI convention.

    ``scores``/``is_tp``: the candidates that count (true and false positives) with their
    confidences; ``overlaps``: IoU of each true positive (0 for false positives); ``n_lesions``:
    reference lesions (missed ones are false negatives); ``case_score`` = max of the detection map;
    ``case_target`` = 1 when the case has a lesion.
    """

    scores: np.ndarray
    is_tp: np.ndarray
    overlaps: np.ndarray
    n_lesions: int
    case_score: float
    case_target: int


def evaluate_picai_case(detection_map: np.ndarray, label: np.ndarray,
                        min_overlap: float = PICAI_MIN_OVERLAP) -> PicaiCase:
    """Match the candidates of a detection map to the lesions of a label (see the module text)."""
    detection_map = np.asarray(detection_map)
    label = np.asarray(label)
    if detection_map.shape != label.shape:
        raise CaseError(f"the detection map's shape {detection_map.shape} differs from the "
                        f"label's {label.shape}")
    candidates, confidences = detection_candidates(detection_map)
    lesions, n_lesions = _components(label != 0)
    overlap = lesion_iou(lesions, n_lesions, candidates, len(confidences))
    lesion_idx, cand_idx = match_hungarian(overlap, min_overlap)
    sufficient = (overlap >= min_overlap).any(axis=0) if n_lesions else np.zeros(len(confidences), bool)
    false_pos = np.flatnonzero(~sufficient)
    scores = np.r_[confidences[cand_idx], confidences[false_pos]]
    is_tp = np.r_[np.ones(len(cand_idx), bool), np.zeros(len(false_pos), bool)]
    overlaps = np.r_[overlap[lesion_idx, cand_idx], np.zeros(len(false_pos))]
    case_score = float(detection_map.max()) if detection_map.size else 0.0
    return PicaiCase(scores.astype(float), is_tp, overlaps, n_lesions, case_score, int(n_lesions > 0))
