"""Compute used by submissions: totals of the figures recorded per case, and the phase budgets.

A case's figures (wall time, CPU seconds, peak memory, GPU seconds) are written when its
container run ends. They count once the run has ended: a job back in ``queued`` (a fault of the
platform, run again without charge) or ``running`` again after one still holds the figures of
the attempt that the platform repeats, and those never count. Peak memory is the largest of the
cases' peaks, not a sum.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from medarena.errors import PermissionDenied
from medarena.platform.challenges import PhaseDefinition
from medarena.platform.database import Job, Phase, Submission

NOT_CHARGED = ("queued", "running")  # their figures, if any, are of an attempt the platform repeats


@dataclass(frozen=True)
class Totals:
    cases: int = 0  # cases whose run has ended
    measured_cases: int = 0  # of those, the ones whose CPU and memory could be measured
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    gpu_seconds: float = 0.0
    peak_memory_bytes: int | None = None  # the largest of the cases' peaks

    def as_dict(self) -> dict:
        return asdict(self)


def _columns():
    total = lambda column: func.coalesce(func.sum(column), 0.0)  # noqa: E731
    return (func.count(Job.runtime_seconds), func.count(Job.cpu_seconds), total(Job.runtime_seconds),
            total(Job.cpu_seconds), total(Job.gpu_seconds), func.max(Job.peak_memory_bytes))


def _totals(row) -> Totals:
    cases, measured, wall, cpu, gpu, peak = row
    return Totals(int(cases or 0), int(measured or 0), round(float(wall), 3), round(float(cpu), 3),
                  round(float(gpu), 3), None if peak is None else int(peak))


def _charged():
    return Job.state.not_in(NOT_CHARGED), Job.runtime_seconds.is_not(None)


def submission_totals(session: Session, submission_ids: Iterable[int]) -> dict[int, Totals]:
    """Totals per submission (every id given gets one, zero where nothing ran yet)."""
    ids = list(submission_ids)
    totals = dict.fromkeys(ids, Totals())
    if ids:
        query = (select(Job.submission_id, *_columns()).where(Job.submission_id.in_(ids), *_charged())
                 .group_by(Job.submission_id))
        for sid, *row in session.execute(query):
            totals[sid] = _totals(row)
    return totals


def phase_totals(session: Session, phase_id: int) -> tuple[Totals, dict[str, Totals]]:
    """A phase's totals, over all submissions and per participant."""
    base = select(*_columns()).join(Submission, Submission.id == Job.submission_id).where(
        Submission.phase_id == phase_id, *_charged())
    everyone = _totals(session.execute(base).one())
    per = session.execute(base.add_columns(Submission.participant).group_by(Submission.participant)
                          .order_by(Submission.participant))
    return everyone, {row[-1]: _totals(row[:-1]) for row in per}


def _used(session: Session, *where) -> tuple[float, float]:
    """(CPU seconds, GPU seconds) charged to the jobs of the submissions that match ``where``."""
    cpu, gpu = session.execute(
        select(func.coalesce(func.sum(Job.cpu_seconds), 0.0), func.coalesce(func.sum(Job.gpu_seconds), 0.0))
        .join(Submission, Submission.id == Job.submission_id).where(*where, *_charged())).one()
    return float(cpu), float(gpu)


class BudgetSpent(PermissionDenied):
    """A phase's compute budget is spent: no more submissions to it."""


def check_budget(session: Session, phase: Phase, rules: PhaseDefinition, participant: str,
                 submitter_id: int | None = None) -> None:
    """Refuse a submission to ``phase`` once one of its compute budgets is spent (one line naming
    the phase, the budget and what was used). A logged-in submitter's use is counted by their
    account, others' by the participant name, as for the submission limit."""
    budget = rules.compute_budget
    where = f"{phase.challenge.slug}/{phase.slug}"
    if budget.cpu_hours_per_participant or budget.gpu_hours_per_participant:
        who = (Submission.participant == participant if submitter_id is None
               else Submission.submitter_id == submitter_id)
        cpu, gpu = _used(session, Submission.phase_id == phase.id, who)
        for kind, used, allowed in (("CPU", cpu, budget.cpu_hours_per_participant),
                                    ("GPU", gpu, budget.gpu_hours_per_participant)):
            if allowed and used >= allowed * 3600:
                raise BudgetSpent(f"phase {where}: participant {participant!r} has used {_hours(used)} of the "
                                  f"{allowed:g} {kind} hours each participant may use "
                                  f"(compute_budget.{kind.lower()}_hours_per_participant)")
    if budget.cpu_hours_per_challenge or budget.gpu_hours_per_challenge:
        phases = select(Phase.id).where(Phase.challenge_id == phase.challenge_id)
        cpu, gpu = _used(session, Submission.phase_id.in_(phases))
        for kind, used, allowed in (("CPU", cpu, budget.cpu_hours_per_challenge),
                                    ("GPU", gpu, budget.gpu_hours_per_challenge)):
            if allowed and used >= allowed * 3600:
                raise BudgetSpent(f"phase {where}: challenge {phase.challenge.slug} has used {_hours(used)} of its "
                                  f"{allowed:g} {kind} hours (compute_budget.{kind.lower()}_hours_per_challenge)")


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.4g} hours"
