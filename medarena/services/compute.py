"""The compute that submissions used: per case and per submission to their owners and the
organizers, per phase (in all and per participant, with the phase's budget) to organizers."""

from __future__ import annotations

from typing import Any

from medarena.accounts.tokens import Identity
from medarena.platform import compute
from medarena.platform.database import Submission, session_scope
from medarena.platform.settings import Settings
from medarena.platform.submissions import find_phase
from medarena.services import access

CASE_FIELDS = ("cpu_seconds", "peak_memory_bytes", "gpu_seconds")


def case_figures(job) -> dict[str, Any]:
    return {name: getattr(job, name) for name in CASE_FIELDS}


def submission_totals(session, submission: Submission) -> dict[str, Any]:
    return compute.submission_totals(session, [submission.id])[submission.id].as_dict()


def phase_compute(settings: Settings, caller: Identity | None, challenge: str, phase: str) -> dict[str, Any]:
    """Organizers: what the phase's submissions used, in all and per participant, beside its budget."""
    with session_scope(settings.database_url) as session:
        row, _ = find_phase(session, challenge, phase)
        access.phase_compute_visible(session, caller, row)
        return phase_compute_in(session, row)


def local_phase_compute(settings: Settings, challenge: str, phase: str) -> dict[str, Any]:
    """The one-laptop command line: the machine's operator sees every phase."""
    with session_scope(settings.database_url) as session:
        row, _ = find_phase(session, challenge, phase)
        return phase_compute_in(session, row)


def phase_compute_in(session, phase) -> dict[str, Any]:
    """:func:`phase_compute` for a phase whose caller has been checked (or the one-laptop CLI)."""
    everyone, per = compute.phase_totals(session, phase.id)
    budget = access.phase_rules(phase).compute_budget.model_dump()
    return {"challenge": phase.challenge.slug, "phase": phase.slug, "totals": everyone.as_dict(),
            "participants": [{"participant": who, **totals.as_dict()} for who, totals in per.items()],
            "budget": budget}
