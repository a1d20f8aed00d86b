"""Classification: one prediction (a probability or a label) per case.

What a user imports: :func:`auroc`, :func:`roc_curve`, :func:`binary_metrics` and the task the
platform uses (:data:`TASK`, :class:`ClassificationSettings`). Conventions: docs/metrics.md,
section Classification.
"""

from medarena.evaluators.classification._roc import auroc, roc_curve
from medarena.evaluators.classification._task import (
    TASK,
    ClassificationSettings,
    ClassificationTask,
    binary_metrics,
)

__all__ = ["TASK", "ClassificationSettings", "ClassificationTask", "auroc", "binary_metrics", "roc_curve"]
