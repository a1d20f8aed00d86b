"""The commands of one machine without a server (`medarena challenge create`, `ingest`, `submit`,
`run`, `cancel`, `results`, `try`, `rank`...).

Their caller is the machine's operator, who works on the platform's own database and store and
may do everything a site admin may: no account is involved, so there is no access rule to apply
here (the server's commands go through :mod:`.challenges`, :mod:`.submissions` and the others,
which decide what each caller may do).
"""

from __future__ import annotations

from medarena.platform.database import session_scope
from medarena.platform.organizer import (
    create_challenge,
    ingest_phase,
    list_challenges,
    rank,
    show_challenge,
    submission_results,
    submission_status,
    submit,
    try_image,
)
from medarena.platform.scheduler import SchedulerError, cancel, reevaluate, run
from medarena.platform.settings import Settings
from medarena.platform.submissions import find_phase

__all__ = ["SchedulerError", "cancel", "create_challenge", "ingest_phase", "list_challenges", "phase_has_cases",
           "rank", "reevaluate", "run", "show_challenge", "submission_results", "submission_status", "submit",
           "try_image"]


def phase_has_cases(settings: Settings, challenge: str, phase: str) -> bool:
    """Whether the phase's test set has been ingested (any case)."""
    with session_scope(settings.database_url) as session:
        row, _ = find_phase(session, challenge, phase)
        return bool(row.cases)

