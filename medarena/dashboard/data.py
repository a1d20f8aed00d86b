"""The dashboard's reads, all through :mod:`medarena.services.browse`, which decides with the
access rules what the viewer sees; and the small conversions the pages share.

A :class:`Viewer` is who is looking: the settings and the logged-in identity (None: anonymous).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from medarena.accounts.tokens import Identity
from medarena.services import browse
from medarena.services.browse import (  # noqa: F401  (the pages use these names from here)
    CASE_COLUMNS,
    COMPUTE_COLUMNS,
    JOB_STATES,
    LEADERBOARD_COLUMNS,
    STABILITY_COLUMNS,
    UNRANKED_COLUMNS,
    ChallengeInfo,
    FailedCase,
    PhaseInfo,
    SubmissionInfo,
    aggregate_means,
    first_line,
    metric_column,
    rank_interval,
)
from medarena.services.settings import Settings


@dataclass(frozen=True)
class Viewer:
    settings: Settings
    identity: Identity | None = None


def inputs_store_url(store: str, challenge: str, phase: str) -> str:
    return f"{store.rstrip('/')}/inputs/{challenge}/{phase}.zarr"


def references_store_url(store: str, challenge: str, phase: str) -> str:
    return f"{store.rstrip('/')}/references/{challenge}/{phase}.zarr"


def prediction_store_url(store: str, challenge: str, phase: str, submission_id: int) -> str:
    return f"{store.rstrip('/')}/predictions/{challenge}/{phase}/{submission_id}.zarr"


def list_challenges(viewer: Viewer, now=None) -> list[ChallengeInfo]:
    return browse.list_challenges(viewer.settings, viewer.identity, now)


def leaderboard(viewer: Viewer, challenge: str, phase: str) -> pd.DataFrame | None:
    return browse.leaderboard(viewer.settings, viewer.identity, challenge, phase)


def unranked_results(viewer: Viewer, challenge: str, phase: str) -> pd.DataFrame | None:
    return browse.unranked_results(viewer.settings, viewer.identity, challenge, phase)


def phase_case_values(viewer: Viewer, challenge: str, phase: str) -> pd.DataFrame | None:
    return browse.phase_case_values(viewer.settings, viewer.identity, challenge, phase)


def rank_stability(viewer: Viewer, challenge: str, phase: str) -> tuple[pd.DataFrame, str] | None:
    return browse.rank_stability(viewer.settings, viewer.identity, challenge, phase)


def phase_submissions(viewer: Viewer, challenge: str, phase: str) -> pd.DataFrame:
    return browse.phase_submissions(viewer.settings, viewer.identity, challenge, phase)


def unfinished_submissions(viewer: Viewer, challenge: str, phase: str) -> pd.DataFrame:
    return browse.phase_submissions(viewer.settings, viewer.identity, challenge, phase, unfinished=True)


def submission_info(viewer: Viewer, submission_id: int) -> SubmissionInfo | None:
    return browse.submission_info(viewer.settings, viewer.identity, submission_id)


def phase_compute(viewer: Viewer, challenge: str, phase: str) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    return browse.phase_compute(viewer.settings, viewer.identity, challenge, phase)


def case_results(viewer: Viewer, submission_id: int) -> pd.DataFrame:
    return browse.case_results(viewer.settings, viewer.identity, submission_id)


def metric_values(viewer: Viewer, submission_id: int) -> pd.DataFrame:
    return browse.metric_values(viewer.settings, viewer.identity, submission_id)


def failed_cases(viewer: Viewer, submission_id: int) -> list[FailedCase]:
    return browse.failed_cases(viewer.settings, viewer.identity, submission_id)


def case_image_submission(viewer: Viewer, submission_id: int) -> tuple[SubmissionInfo, list[str]] | None:
    return browse.case_image_submission(viewer.settings, viewer.identity, submission_id)


def split_dataset_metrics(metrics: dict[str, Any]) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
    """Numbers (``{"ap": 0.8}``) and curves (``{"roc": {"fpr": [...], "tpr": [...]}}``, any dict of
    two or more equally long numeric lists) of ``Submission.dataset_metrics``."""
    numbers: dict[str, float] = {}
    curves: dict[str, pd.DataFrame] = {}
    for name, value in metrics.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float) or value is None:
            numbers[name] = value
        elif isinstance(value, dict):
            lists = {k: v for k, v in value.items() if isinstance(v, list)}
            scalars = {k: v for k, v in value.items()
                       if isinstance(v, int | float) and not isinstance(v, bool)}
            lengths = {len(v) for v in lists.values()}
            if len(lists) >= 2 and len(lengths) == 1:
                curves[name] = pd.DataFrame(lists)
            for key, number in scalars.items():
                numbers[f"{name}.{key}"] = number
    return numbers, curves
