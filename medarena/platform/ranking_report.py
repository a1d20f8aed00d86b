"""The ranking report of a phase: CSV tables and the plots organizers use, as PNG and HTML.

Plots follow challengeR's report (Wiesenfarth et al., Sci Rep 2021): a dot-and-boxplot of the
per-case values of every criterion, a blob plot of the bootstrap rank distributions (x: the
submissions by full rank, y: rank, blob area proportional to how often that rank occurred, with
the median and the 95 % interval), a significance map per criterion (row significantly better
than column, one-sided Wilcoxon signed-rank), and the ranks under the three methods side by side.
PNG files come from matplotlib (no pyplot, so no global backend state), HTML files from Plotly,
which references a ``plotly.min.js`` written once next to them (the report works offline).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from medarena.evaluators.ranking import (
    METHODS,
    CaseValues,
    RankingRecipe,
    Stability,
    case_values,
    compare_values,
    rank_values,
    significance_values,
    stability_values,
)

_BETTER, _NOT_BETTER = "#1f6f8b", "#e8eef1"


def write_report(
    table: pd.DataFrame,
    recipe: RankingRecipe,
    output_dir: str | Path,
    cases: Sequence[Any] | None = None,
    submissions: Sequence[Any] | None = None,
) -> list[Path]:
    """Rank ``table`` (submission, case, label, metric, value) with ``recipe`` and write the report.

    Files: ``ranking.csv`` (ranks, scores, metric aggregates), ``bootstrap.csv`` (rank median and
    2.5/97.5 % interval per submission), ``bootstrap_ranks.csv`` (one row per resample),
    ``kendall_tau.csv``, ``methods.csv`` (rank per method), ``values.csv`` (the per-case values
    ranked on, missing ones filled and flagged), per criterion ``significance_<key>.csv`` (1 when
    the row is significantly better) and ``pvalues_<key>.csv``, ``notes.txt`` when stability is
    undefined, and the plots ``dotbox_<key>``, ``blob``, ``significance_<key>`` and ``methods``
    as ``.png`` and ``.html``. Returns the paths written. Raises
    :class:`~medarena.evaluators.ranking.RankingError` on bad input, before writing anything.
    """
    data = case_values(table, recipe, cases, submissions)
    ranking = rank_values(data, recipe)
    stability = stability_values(data, recipe)
    methods = compare_values(data, recipe)
    significance = significance_values(data, recipe.alpha, recipe.holm)
    order = [s for s in ranking["submission"]]
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def csv(frame: pd.DataFrame, name: str, index: bool = False) -> None:
        path = out / name
        frame.to_csv(path, index=index)
        written.append(path)

    csv(ranking, "ranking.csv")
    csv(stability.summary, "bootstrap.csv")
    csv(stability.ranks, "bootstrap_ranks.csv", index=True)
    csv(stability.tau.to_frame(), "kendall_tau.csv", index=True)
    csv(methods, "methods.csv")
    values = _long_values(data)
    csv(values, "values.csv")
    for crit in data.criteria:
        p_values, significant = significance[crit.key]
        csv(significant.loc[order, order].astype(int), f"significance_{_slug(crit.key)}.csv", index=True)
        csv(p_values.loc[order, order], f"pvalues_{_slug(crit.key)}.csv", index=True)
    if stability.note:
        (out / "notes.txt").write_text(stability.note + "\n")
        written.append(out / "notes.txt")

    figures: list[tuple[str, Figure, go.Figure]] = []
    for crit in data.criteria:
        crit_values = values[values["criterion"] == crit.key]
        title = f"{crit.key} per case ({'higher' if crit.higher_is_better else 'lower'} is better)"
        figures.append((f"dotbox_{_slug(crit.key)}", *_dotbox(crit_values, order, title)))
        title = f"{crit.key}: row significantly better than column (alpha {recipe.alpha}" + (
            ", Holm)" if recipe.holm else ")")
        figures.append((f"significance_{_slug(crit.key)}",
                        *_significance_map(significance[crit.key], order, title)))
    if stability.note is None or len(stability.ranks):
        figures.append(("blob", *_blob(stability, order, recipe)))
    figures.append(("methods", *_methods_plot(methods, order)))
    for name, static, interactive in figures:
        png, html = out / f"{name}.png", out / f"{name}.html"
        static.savefig(png, dpi=120, bbox_inches="tight")
        interactive.write_html(html, include_plotlyjs="directory", full_html=True)
        written += [png, html]
    script = out / "plotly.min.js"
    if script.exists():
        written.append(script)
    return written


def _slug(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9@.-]+", "_", key).strip("_")


def _long_values(data: CaseValues) -> pd.DataFrame:
    c, s, k = np.indices(data.values.shape)
    return pd.DataFrame({
        "criterion": np.array([crit.key for crit in data.criteria], dtype=object)[c.ravel()],
        "submission": np.array(data.submissions, dtype=object)[s.ravel()],
        "case": np.array(data.cases, dtype=object)[k.ravel()],
        "value": data.values.ravel(),
        "missing": data.missing.ravel(),
    })


def _size(n: int) -> tuple[float, float]:
    return (max(5.0, 0.45 * n + 2.0), 4.5)


def _dotbox(values: pd.DataFrame, order: list[Any], title: str) -> tuple[Figure, go.Figure]:
    """Per-case values of each submission: a boxplot with every case as a jittered dot."""
    groups = [values[values["submission"] == s] for s in order]
    fig = Figure(figsize=_size(len(order)))
    ax = fig.subplots()
    ax.boxplot([g["value"].to_numpy() for g in groups], positions=range(len(order)), widths=0.6,
               showfliers=False)
    rng = np.random.default_rng(0)
    legend = "missing (worst value)"
    for x, g in enumerate(groups):
        jitter = x + rng.uniform(-0.18, 0.18, len(g))
        present = ~g["missing"].to_numpy()
        ax.scatter(jitter[present], g["value"].to_numpy()[present], s=9, alpha=0.6, color="#1f6f8b")
        if (~present).any():
            ax.scatter(jitter[~present], g["value"].to_numpy()[~present], s=14, marker="x", color="#c0392b",
                       label=legend)
            legend = "_nolegend_"
    ax.set_xticks(range(len(order)), [str(s) for s in order], rotation=45, ha="right")
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    interactive = go.Figure([
        go.Box(y=g["value"], name=str(s), boxpoints="all", jitter=0.4, pointpos=0,
               text=[f"{c}{' (missing: worst value)' if m else ''}" for c, m in zip(g["case"], g["missing"],
                                                                                   strict=True)],
               hovertemplate="%{text}: %{y}<extra>%{x}</extra>")
        for s, g in zip(order, groups, strict=True)
    ])
    interactive.update_layout(title=title, showlegend=False, xaxis_title="submission (by rank)")
    return fig, interactive


def _blob(stability: Stability, order: list[Any], recipe: RankingRecipe) -> tuple[Figure, go.Figure]:
    """Bootstrap ranks: blob area proportional to the frequency of each rank, with the median
    (black dot) and the 2.5-97.5 % interval (black line)."""
    ranks = stability.ranks
    n = len(order)
    summary = stability.summary.set_index("submission")
    title = f"Ranks over {len(ranks)} bootstrap resamples ({recipe.method})"
    points = []
    for x, sub in enumerate(order):
        counts = ranks[sub].value_counts(normalize=True) if len(ranks) else pd.Series(dtype=float)
        points += [(x, sub, int(r), float(f)) for r, f in counts.items()]
    frame = pd.DataFrame(points, columns=["x", "submission", "rank", "frequency"])
    fig = Figure(figsize=_size(n))
    ax = fig.subplots()
    ax.plot([0, n - 1], [1, n], color="#cccccc", lw=1, zorder=0)
    ax.scatter(frame["x"], frame["rank"], s=frame["frequency"] * 400, alpha=0.55, color="#1f6f8b")
    lo, hi, med = (summary.loc[order, col].to_numpy(float) for col in ("rank_lo", "rank_hi", "rank_median"))
    ax.vlines(range(n), lo, hi, color="black", lw=1.2)
    ax.scatter(range(n), med, s=12, color="black", zorder=3)
    ax.set_xticks(range(n), [str(s) for s in order], rotation=45, ha="right")
    ax.set_ylim(n + 0.7, 0.3)
    ax.set_ylabel("rank")
    ax.set_title(title)
    interactive = go.Figure([
        go.Scatter(x=frame["submission"].astype(str), y=frame["rank"], mode="markers", name="frequency",
                   marker=dict(size=frame["frequency"], sizemode="area", sizeref=1 / 1600, color="#1f6f8b",
                               opacity=0.55),
                   customdata=frame["frequency"],
                   hovertemplate="rank %{y}: %{customdata:.1%}<extra></extra>"),
        go.Scatter(x=[str(s) for s in order], y=med, mode="markers", name="median",
                   marker=dict(color="black", size=7),
                   error_y=dict(type="data", symmetric=False, array=hi - med, arrayminus=med - lo),
                   hovertemplate="median %{y}<extra></extra>"),
    ])
    interactive.update_layout(title=title, yaxis=dict(autorange="reversed", title="rank"),
                              xaxis_title="submission (by full rank)")
    return fig, interactive


def _significance_map(
    matrices: tuple[pd.DataFrame, pd.DataFrame], order: list[Any], title: str
) -> tuple[Figure, go.Figure]:
    """Submission x submission, dark where the row is significantly better than the column."""
    p_values, significant = (m.loc[order, order] for m in matrices)
    labels = [str(s) for s in order]
    fig = Figure(figsize=(max(4.5, 0.35 * len(order) + 2.5),) * 2)
    ax = fig.subplots()
    ax.imshow(significant.to_numpy(int), cmap=ListedColormap([_NOT_BETTER, _BETTER]), vmin=0, vmax=1)
    ax.set_xticks(range(len(order)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(order)), labels)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.set_title(title, fontsize=9)
    hover = np.where(np.isnan(p_values.to_numpy()), "", np.vectorize(lambda p: f"p = {p:.3g}")(
        np.nan_to_num(p_values.to_numpy(), nan=1.0)))
    interactive = go.Figure(go.Heatmap(
        z=significant.to_numpy(int), x=labels, y=labels, zmin=0, zmax=1, showscale=False,
        colorscale=[[0, _NOT_BETTER], [1, _BETTER]], text=hover,
        hovertemplate="%{y} better than %{x}: %{text}<extra></extra>", xgap=1, ygap=1))
    interactive.update_layout(title=title, yaxis=dict(autorange="reversed"))
    return fig, interactive


def _methods_plot(methods: pd.DataFrame, order: list[Any]) -> tuple[Figure, go.Figure]:
    """The rank of each submission under each method, one line per submission."""
    by_sub = methods.set_index("submission").loc[order]
    title = "Rank under each ranking method"
    fig = Figure(figsize=(6.5, max(3.5, 0.25 * len(order) + 1.5)))
    ax = fig.subplots()
    for sub, row in by_sub.iterrows():
        ax.plot(range(len(METHODS)), row[list(METHODS)].to_numpy(float), marker="o", lw=1)
        ax.annotate(str(sub), (len(METHODS) - 1, row[METHODS[-1]]), xytext=(4, 0),
                    textcoords="offset points", fontsize=7, va="center")
    ax.set_xticks(range(len(METHODS)), list(METHODS))
    ax.invert_yaxis()
    ax.set_ylabel("rank")
    ax.set_title(title)
    interactive = go.Figure([
        go.Scatter(x=list(METHODS), y=row[list(METHODS)].to_numpy(float), mode="lines+markers", name=str(sub))
        for sub, row in by_sub.iterrows()
    ])
    interactive.update_layout(title=title, yaxis=dict(autorange="reversed", title="rank"))
    return fig, interactive
