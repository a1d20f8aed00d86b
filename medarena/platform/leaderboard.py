"""Closing a submission (aggregates, pooled metrics) and ranking a phase into the leaderboard."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from medarena.evaluators.tasks import CaseResult, aggregate, get_task, jsonable
from medarena.platform.challenges import ChallengeDefinition
from medarena.platform.database import Job, LeaderboardEntry, MetricValue, Phase, Submission
from medarena.platform.states import ENDED_SUBMISSION, JobState

COLUMN_RANKING = "ranked on the evaluation container's score column"  # stands for a recipe


def job_rows(job: Job) -> list[dict[str, Any]]:
    """The wide metric rows of a job (one per label), from its long metric values."""
    rows: dict[str, dict[str, Any]] = {}
    for value in job.metrics:
        row = rows.setdefault(value.label, {"case": job.case.name, "label": value.label or None})
        row[value.metric] = math.nan if value.value is None else value.value
    return list(rows.values())


def summarize_submission(session: Session, submission: Submission) -> None:
    """Store the per-label aggregates and the data-set metrics (AP, AUROC, curves)."""
    from medarena.platform.container_scoring import columns_of

    definition = ChallengeDefinition.model_validate(submission.phase.challenge.definition)
    task = get_task(definition.evaluation.task) if definition.evaluation.task else None
    settings = definition.evaluation.task_settings() if task else None
    rows, results = [], []
    for job in submission.jobs:
        if job.state != JobState.SUCCEEDED:
            continue
        job_result_rows = job_rows(job)
        rows.extend(job_result_rows)
        payload = job.pooled or {}
        results.append(CaseResult(rows=job_result_rows, pooled=payload.get("pooled"),
                                  notes=payload.get("notes", [])))
    submission.aggregates = jsonable(aggregate(rows))
    try:
        dataset = task.score_dataset(results, settings) if results and task else {}
    except (ValueError, TypeError) as exc:
        dataset = {"error": f"pooled metrics could not be computed: {exc}"}
    dataset.update(columns_of(submission, definition))  # the evaluation container's leaderboard columns
    submission.dataset_metrics = jsonable(dataset)


def metric_table(session: Session, phase: Phase) -> pd.DataFrame:
    """Long table (submission, case, label, metric, value) of a phase's finished submissions."""
    query = (
        select(Submission.id, Job.case_id, MetricValue.label, MetricValue.metric, MetricValue.value)
        .join(Job, Job.submission_id == Submission.id).join(MetricValue, MetricValue.job_id == Job.id)
        .where(Submission.phase_id == phase.id, Submission.state.in_(ENDED_SUBMISSION),
               Job.state == JobState.SUCCEEDED))
    table = pd.DataFrame(session.execute(query).all(), columns=["submission", "case", "label", "metric", "value"])
    names = {c.id: c.name for c in phase.cases}
    table["case"] = table["case"].map(names)
    return table


def default_recipe(definition: ChallengeDefinition, table: pd.DataFrame) -> dict[str, Any]:
    """Without a declared recipe: aggregate-then-rank on the means of the evaluation's metrics."""
    wanted = definition.evaluation.settings.get("metrics")
    present = table[["label", "metric"]].drop_duplicates()
    if wanted:
        present = present[present["metric"].isin(wanted)]
    return {"method": "aggregate-then-rank",
            "metrics": [{"metric": m, "label": lab or None} for lab, m in present.itertuples(index=False)]}


def compute_ranking(session: Session, phase: Phase, overrides: dict[str, Any] | None = None):
    """The ranking of a phase's finished submissions with its declared recipe (fields of which
    ``overrides`` may replace, e.g. ``method``), from stored metrics only:
    (ranking table, stability note, parsed recipe, long metric table)."""
    from medarena.evaluators.ranking import RankingError, RankingRecipe, leaderboard
    from medarena.platform.container_scoring import column_ranking, ranks_on_columns

    definition = ChallengeDefinition.model_validate(phase.challenge.definition)
    table = metric_table(session, phase)
    submissions = [s.id for s in phase.submissions if s.state in ENDED_SUBMISSION]
    if ranks_on_columns(definition, table) and not overrides:
        ranking, note = column_ranking(session, phase, definition)
        return ranking, note, (COLUMN_RANKING if not ranking.empty else None), table
    if not submissions or table.empty:
        return pd.DataFrame(), None, None, table
    try:
        recipe = {**(definition.ranking or default_recipe(definition, table)), **(overrides or {})}
        parsed = RankingRecipe.model_validate(recipe)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise RankingError(f"ranking recipe: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    table["label"] = table["label"].replace("", None)
    ranking, note = leaderboard(table, parsed, cases=[c.name for c in phase.cases], submissions=submissions)
    return ranking, note, parsed, table


def rank_phase(session: Session, phase: Phase) -> pd.DataFrame:
    """Rank a phase with its declared recipe and replace its leaderboard rows."""
    ranking, _note, parsed, _table = compute_ranking(session, phase)
    store_ranking(session, phase, ranking, parsed)
    return ranking


def store_ranking(session: Session, phase: Phase, ranking: pd.DataFrame, parsed) -> None:
    """Replace a phase's leaderboard rows with a ranking computed by :func:`compute_ranking`."""
    session.execute(delete(LeaderboardEntry).where(LeaderboardEntry.phase_id == phase.id))
    by_id = {s.id: s for s in phase.submissions}
    for row in ranking.to_dict("records"):
        submission = by_id[int(row["submission"])]
        session.add(LeaderboardEntry(
            phase_id=phase.id, submission_id=submission.id, rank=int(row["rank"]),
            score=_finite(row.get("score")), rank_low=_finite(row.get("rank_lo")),
            rank_high=_finite(row.get("rank_hi")), columns=leaderboard_columns(submission, parsed, row)))
    session.flush()


def leaderboard_columns(submission: Submission, recipe, ranked: dict[str, Any]) -> dict[str, Any]:
    """What a leaderboard row shows: each ranked metric's aggregate as the ranking used it (a
    missing case counted with the worst value), the pooled numbers, and the cases that succeeded."""
    stat = "" if recipe is COLUMN_RANKING else recipe.aggregate if recipe.aggregate != "quantile" \
        else f"q{recipe.quantile:g}"
    columns: dict[str, Any] = {}
    for key, value in ranked.items():
        if key.endswith("_aggregate"):
            metric, _, label = key.removesuffix("_aggregate").partition("[")
            name = f"{metric} ({label.rstrip(']')})" if label else metric
            columns[f"{name} {stat}"] = value
    for key, value in (submission.dataset_metrics or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            columns[key] = value
    done = sum(j.state == JobState.SUCCEEDED for j in submission.jobs)
    columns["cases succeeded"] = f"{done}/{len(submission.jobs)}"
    return jsonable(columns)


def _finite(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
