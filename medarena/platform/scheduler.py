"""The scheduler: submissions -> one job per case on Ray -> results in the database.

Only the driver writes the database; workers return :class:`CaseOutcome` values. Jobs are keyed
by (submission, case), so running the scheduler again never duplicates work: finished jobs are
kept, and jobs left ``running`` or ``evaluating`` by a stopped driver are picked up again (an
``evaluating`` job whose predictions are stored is only evaluated, not rerun).

The pieces live in :mod:`medarena.platform.scheduling`; this module names what callers use.
"""

from __future__ import annotations

from medarena.platform.casejob import CaseJob, CaseOutcome
from medarena.platform.layout import (
    image_archive_url,
    inputs_url,
    model_url,
    namespace,
    predictions_url,
    references_url,
)
from medarena.platform.scheduling.in_process import InProcessAdapter
from medarena.platform.scheduling.lock import SchedulerError, exclusive
from medarena.platform.scheduling.loop import Executor, reevaluate, run
from medarena.platform.scheduling.ray_adapter import MAX_PLATFORM_ATTEMPTS, RayAdapter, start_ray
from medarena.platform.scheduling.recorder import record as _record
from medarena.platform.scheduling.recorder import record_safely as _record_safely
from medarena.platform.scheduling.work import (
    SERVED_CASES_PER_TASK,
    UNFINISHED,
    Pending,
    cancel,
    collect_work,
    expand,
    finish_ready,
    prepare_reevaluation,
)

__all__ = ["MAX_PLATFORM_ATTEMPTS", "SERVED_CASES_PER_TASK", "UNFINISHED", "CaseJob", "CaseOutcome", "Executor",
           "InProcessAdapter", "Pending", "RayAdapter", "SchedulerError", "_record", "_record_safely", "cancel",
           "collect_work", "exclusive", "expand", "finish_ready", "image_archive_url", "inputs_url", "model_url",
           "namespace", "predictions_url", "prepare_reevaluation", "reevaluate", "references_url", "run",
           "start_ray"]
