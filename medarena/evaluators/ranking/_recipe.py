"""What a ranking takes: the recipe, its criteria, the dense table of case values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

Method = Literal["aggregate-then-rank", "rank-then-aggregate", "test-based"]
METHODS: tuple[str, ...] = ("aggregate-then-rank", "rank-then-aggregate", "test-based")
COLUMNS = ("submission", "case", "label", "metric", "value")
MAX_CHUNK_ELEMENTS = 4_000_000  # bound on the working arrays of one bootstrap chunk
RUNNING_ROW_ELEMENTS = 65_536  # running rows of the resampled Wilcoxon pass (kept in cache)


class RankingError(ValueError):
    """A table or recipe that cannot be ranked; the message names the metric, rows or setting."""


class MetricWeight(BaseModel):
    """One metric of a recipe: ``label`` None selects every label the metric has in the table;
    ``higher_is_better`` None takes the direction that :mod:`medarena.evaluators.registry` declares."""

    model_config = ConfigDict(extra="forbid")

    metric: str
    label: str | None = None
    weight: float = Field(1.0, gt=0)
    higher_is_better: bool | None = None


class RankingRecipe(BaseModel):
    """How a phase ranks its submissions (see the module docstring for the rules)."""

    model_config = ConfigDict(extra="forbid")

    method: Method = "aggregate-then-rank"
    aggregate: Literal["mean", "median", "quantile"] = "mean"
    quantile: float = Field(0.5, ge=0, le=1)
    metrics: list[MetricWeight] = Field(min_length=1)
    alpha: float = Field(0.05, gt=0, lt=1)
    holm: bool = False
    bootstrap: int = Field(1000, ge=0)
    seed: int = 0

    @model_validator(mode="after")
    def _distinct_metrics(self) -> RankingRecipe:
        seen = [(m.metric, m.label) for m in self.metrics]
        dupes = sorted({f"{m}[{lab}]" if lab else m for m, lab in seen if seen.count((m, lab)) > 1})
        if dupes:
            raise ValueError(f"metrics listed more than once: {', '.join(dupes)}")
        return self


@dataclass(frozen=True)
class Criterion:
    """A (metric, label) pair that is ranked on, with its weight and direction."""

    metric: str
    label: str
    weight: float
    higher_is_better: bool

    @property
    def key(self) -> str:
        """``metric`` for a whole-case metric, else ``metric[label]``."""
        return f"{self.metric}[{self.label}]" if self.label else self.metric


@dataclass(frozen=True)
class CaseValues:
    """The table in dense form: ``values[c, s, k]`` of criterion c, submission s, case k.

    Missing values are already replaced by the worst value of the metric; ``missing`` marks them.
    """

    submissions: list[Any]
    cases: list[Any]
    criteria: list[Criterion]
    values: np.ndarray
    missing: np.ndarray

    @property
    def sign(self) -> np.ndarray:
        """+1 for higher-is-better criteria, -1 otherwise, shaped (C, 1, 1)."""
        return np.array([1.0 if c.higher_is_better else -1.0 for c in self.criteria])[:, None, None]

    @property
    def weights(self) -> np.ndarray:
        return np.array([c.weight for c in self.criteria])


class Stability(NamedTuple):
    """Bootstrap stability of a ranking.

    ``summary``: one row per submission (rank, rank_median, rank_mean, rank_lo = 2.5 %,
    rank_hi = 97.5 %, frac_first); ``tau``: Kendall's tau-b of each resample against the full
    ranking; ``ranks``: the bootstrap ranks, one row per resample and one column per submission;
    ``note``: why stability is undefined or degenerate, else None.
    """

    summary: pd.DataFrame
    tau: pd.Series
    ranks: pd.DataFrame
    note: str | None


