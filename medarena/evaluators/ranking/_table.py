"""From the long metric table to the dense :class:`CaseValues`: cases, criteria, missing values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from medarena.evaluators import registry
from medarena.evaluators.ranking._recipe import COLUMNS, CaseValues, Criterion, RankingError, RankingRecipe


def case_values(
    table: pd.DataFrame,
    recipe: RankingRecipe,
    cases: Sequence[Any] | None = None,
    submissions: Sequence[Any] | None = None,
) -> CaseValues:
    """Validate the long table against the recipe and make it dense, missing values filled.

    The cases are ``cases`` when given (the phase's cases, so a submission without a value for a
    case gets the worst value there), else the union over submissions; likewise ``submissions``
    (so a submission that failed every case still ranks, last). The worst value of a metric is its
    lowest (higher-is-better) or highest value over the whole table (challengeR's ``na.treat`` with
    the worst value). Raises :class:`RankingError` on unknown metrics or labels, duplicate rows,
    non-numeric values, or rows outside the given cases/submissions.
    """
    frame = _normalized(table)
    criteria = _criteria(frame, recipe)
    subs = _universe(frame["submission"], submissions, "submission")
    case_list = _universe(frame["case"], cases, "case")
    if not subs:
        raise RankingError("nothing to rank: no submissions")
    if not case_list:
        raise RankingError("nothing to rank: no cases")
    sub_index = pd.Index(subs)
    case_index = pd.Index(case_list)
    values = np.empty((len(criteria), len(subs), len(case_list)))
    missing = np.ones(values.shape, dtype=bool)
    for c, crit in enumerate(criteria):
        of_metric = frame[frame["metric"] == crit.metric]
        finite_or_inf = of_metric["value"].dropna()
        if finite_or_inf.empty:
            raise RankingError(f"metric {crit.metric!r} has no values in the table")
        worst = finite_or_inf.max() if not crit.higher_is_better else finite_or_inf.min()
        values[c] = worst
        rows = of_metric[(of_metric["label"] == crit.label) & of_metric["value"].notna()]
        s_idx = sub_index.get_indexer(rows["submission"])
        k_idx = case_index.get_indexer(rows["case"])
        values[c, s_idx, k_idx] = rows["value"].to_numpy(dtype=float)
        missing[c, s_idx, k_idx] = False
    return CaseValues(subs, case_list, criteria, values, missing)


def _normalized(table: pd.DataFrame) -> pd.DataFrame:
    absent = [c for c in ("submission", "case", "metric", "value") if c not in table.columns]
    if absent:
        raise RankingError(f"the table lacks the column(s) {', '.join(absent)}; needs {', '.join(COLUMNS)}")
    frame = table.loc[:, [c for c in COLUMNS if c in table.columns]].copy()
    label = frame["label"] if "label" in frame.columns else pd.Series("", index=frame.index)
    frame["label"] = label.astype(object).where(label.notna(), "").astype(str)
    frame["metric"] = frame["metric"].astype(str)
    numeric = pd.to_numeric(frame["value"], errors="coerce")
    bad = numeric.isna() & frame["value"].notna()
    if bad.any():
        row = frame[bad].iloc[0]
        raise RankingError(
            f"non-numeric value {row['value']!r} for submission {row['submission']!r}, case "
            f"{row['case']!r}, metric {row['metric']!r} ({int(bad.sum())} such rows)"
        )
    frame["value"] = numeric.astype(float)
    dupes = frame[frame.duplicated(["submission", "case", "label", "metric"], keep=False)]
    if not dupes.empty:
        keys = dupes[["submission", "case", "label", "metric"]].drop_duplicates()
        shown = "; ".join(
            f"({r.submission}, {r.case}, {r.label or '-'}, {r.metric})" for r in keys.head(3).itertuples()
        )
        raise RankingError(
            f"duplicate rows for (submission, case, label, metric): {shown}"
            f"{' ...' if len(keys) > 3 else ''} ({len(keys)} keys repeated)"
        )
    return frame


def _criteria(frame: pd.DataFrame, recipe: RankingRecipe) -> list[Criterion]:
    known = sorted(frame["metric"].unique())
    criteria: list[Criterion] = []
    for spec in recipe.metrics:
        if spec.metric not in known:
            raise RankingError(
                f"the recipe names metric {spec.metric!r}, which the table does not have "
                f"(its metrics: {', '.join(known) or 'none'})"
            )
        labels = sorted(frame.loc[frame["metric"] == spec.metric, "label"].unique())
        if spec.label is not None and spec.label not in labels:
            raise RankingError(
                f"the recipe names label {spec.label!r} of metric {spec.metric!r}, which the table "
                f"does not have (its labels: {', '.join(repr(lab) for lab in labels)})"
            )
        direction = spec.higher_is_better if spec.higher_is_better is not None else _declared_direction(spec.metric)
        for label in [spec.label] if spec.label is not None else labels:
            criteria.append(Criterion(spec.metric, label, spec.weight, direction))
    keys = [c.key for c in criteria]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise RankingError(f"the recipe selects {', '.join(repeated)} more than once")
    return criteria


def _universe(column: pd.Series, given: Sequence[Any] | None, what: str) -> list[Any]:
    present = list(pd.unique(column))
    if given is None:
        try:
            return sorted(present)
        except TypeError:
            return present
    given = list(dict.fromkeys(given))
    allowed = set(given)
    extra = [x for x in present if x not in allowed]
    if extra:
        shown = ", ".join(repr(x) for x in extra[:5])
        more = " ..." if len(extra) > 5 else ""
        raise RankingError(f"the table has {what}s that were not given: {shown}{more}")
    return given


def _declared_direction(metric: str) -> bool:
    """The registry's direction of a metric; one it does not declare (an organizer's own metric)
    ranks higher-is-better unless the recipe sets ``higher_is_better``."""
    declared = registry.higher_is_better(metric)
    return True if declared is None else declared
