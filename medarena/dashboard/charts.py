"""Altair charts of the dashboard: per-case value distributions and data-set curves."""

from __future__ import annotations

import altair as alt
import pandas as pd

# Axis titles for the curve columns the evaluators write.
CURVE_AXES = {
    "fpr": "false positive rate", "tpr": "true positive rate", "recall": "recall",
    "precision": "precision", "fp_per_case": "false positives per case", "sensitivity": "sensitivity",
}


def per_case_distribution(values: pd.DataFrame) -> alt.Chart:
    """Box plot with the cases as points, one panel per metric column (label/metric).

    ``values``: the long table (case, label, metric, value).
    """
    frame = values.dropna(subset=["value"]).copy()
    frame["column"] = [m if not lb else f"{lb}/{m}" for lb, m in zip(frame["label"], frame["metric"],
                                                                      strict=True)]
    base = alt.Chart(frame).encode(y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)))
    box = base.mark_boxplot(extent="min-max", opacity=0.35, size=36)
    # the box has no x encoding and sits in the middle, where the jitter scale has its zero
    points = base.mark_circle(size=46, opacity=0.85).encode(
        x=alt.X("jitter:Q", axis=None, scale=alt.Scale(domain=[-1, 1])), color=alt.value("#1f77b4"),
        tooltip=["case", "column", alt.Tooltip("value:Q", format=".4g")],
    ).transform_calculate(jitter="(random() - 0.5) * 0.5")
    return (alt.layer(box, points, data=frame)
            .properties(width=140, height=220)
            .facet(column=alt.Column("column:N", title=None))
            .resolve_scale(y="independent"))


def curve(name: str, points: pd.DataFrame) -> alt.Chart:
    """A line through the first two columns (x, y) of a curve, e.g. ROC (fpr, tpr) or FROC."""
    x, y = points.columns[:2]
    chart = alt.Chart(points).mark_line(point=True).encode(
        x=alt.X(f"{x}:Q", title=CURVE_AXES.get(x, x)),
        y=alt.Y(f"{y}:Q", title=CURVE_AXES.get(y, y), scale=alt.Scale(domain=[0, 1])),
        tooltip=[alt.Tooltip(f"{c}:Q", format=".4g") for c in points.columns],
    )
    return chart.properties(title=name, width=320, height=260)


def leaderboard_distribution(values: pd.DataFrame, metric: str) -> alt.Chart:
    """Per-case values of one metric column for each participant of a phase (strip over box).

    ``values``: columns participant, case, column, value.
    """
    frame = values[values["column"] == metric].dropna(subset=["value"])
    base = alt.Chart(frame).encode(x=alt.X("participant:N", title=None, sort=None),
                                   y=alt.Y("value:Q", title=metric, scale=alt.Scale(zero=False)))
    return alt.layer(base.mark_boxplot(extent="min-max", opacity=0.35),
                     base.mark_circle(size=40, opacity=0.8).encode(tooltip=["participant", "case", "value"])
                     ).properties(height=260)


def rank_blobs(stability: pd.DataFrame) -> alt.Chart:
    """Ranking stability as a blob plot (challengeR's, Wiesenfarth et al., Sci Rep 2021): the
    submissions in leaderboard order across, their rank over the bootstrap resamples down, each
    dot's area proportional to how often the submission took that rank.

    ``stability``: columns rank, participant, submission, bootstrap rank, frequency.
    """
    frame = stability.assign(who=[f"#{sid} {who}" for sid, who in
                                  zip(stability["submission"], stability["participant"], strict=True)])
    order = list(dict.fromkeys(frame["who"]))
    count = max(len(order), 1)
    return alt.Chart(frame).mark_circle(color="#1f6f8b", opacity=0.6).encode(
        x=alt.X("who:N", title="submission (leaderboard order)", sort=order, axis=alt.Axis(labelAngle=-30)),
        y=alt.Y("bootstrap rank:Q", title="bootstrap rank",
                scale=alt.Scale(domain=[count + 0.5, 0.5], nice=False, zero=False),
                axis=alt.Axis(values=list(range(1, count + 1)), format="d")),
        size=alt.Size("frequency:Q", title="share of resamples",
                      scale=alt.Scale(domain=[0, 1], range=[0, min(1200, 24_000 / count ** 2)])),
        tooltip=[alt.Tooltip("who:N", title="submission"), alt.Tooltip("rank:Q", title="leaderboard rank"),
                 "bootstrap rank:Q", alt.Tooltip("frequency:Q", format=".1%")],
    ).properties(height=max(240, 70 * count))
