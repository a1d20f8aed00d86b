"""The states of jobs, submissions, evaluation-container runs, uploads and challenge roles, and
the one table of moves between them.

Every write of a state goes through :func:`transition` (or a machine's :meth:`Machine.move`),
which refuses a move the table does not list. The states are :class:`~enum.StrEnum` members: the
database stores their values, so rows written before them read back as the same states.
``None`` in a table stands for "no state yet" (a row being created, an evaluation not yet run).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from medarena.errors import Conflict


class JobState(StrEnum):
    """One case of one submission."""

    QUEUED = "queued"
    RUNNING = "running"  # its container runs
    EVALUATING = "evaluating"  # its outputs are stored and being scored
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class SubmissionState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class EvaluationState(StrEnum):
    """The phase's evaluation container over one submission (``None``: it has not run)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"


class UploadState(StrEnum):
    OPEN = "open"  # parts arrive
    COMPLETE = "complete"  # verified and loaded as an image; not yet submitted
    USED = "used"  # submitted
    EXPIRED = "expired"
    FAILED = "failed"  # its checksum or its image was wrong


class RoleState(StrEnum):
    """A user's role in a challenge."""

    PENDING = "pending"  # registered, waiting for an organizer's approval
    APPROVED = "approved"


# the states in which a job or a submission has not ended (the scheduler picks these up)
UNFINISHED: tuple[str, ...] = (JobState.QUEUED, JobState.RUNNING, JobState.EVALUATING)
ENDED_SUBMISSION: tuple[str, ...] = (SubmissionState.SUCCEEDED, SubmissionState.FAILED)  # ranked, re-evaluable
FINAL_SUBMISSION: tuple[str, ...] = (*ENDED_SUBMISSION, SubmissionState.CANCELLED)
HELD_UPLOAD: tuple[str, ...] = (UploadState.OPEN, UploadState.COMPLETE)  # hold a user's upload quota


class IllegalTransition(Conflict):
    """A move the state table does not allow (a race lost, or a bug): nothing is written."""


@dataclass(frozen=True)
class Machine:
    """The legal moves of one kind of state: ``moves[current]`` is what may follow ``current``."""

    kind: str  # what the state belongs to, for messages: "job", "submission"...
    states: type[StrEnum]
    moves: dict[StrEnum | None, frozenset[StrEnum | None]]

    def move(self, current: str | None, new: StrEnum | str | None) -> StrEnum | None:
        """Return ``new`` (as a member) if a ``kind`` may go from ``current`` to it; else raise."""
        now, then = self._member(current), self._member(new)
        if then not in self.moves.get(now, frozenset()):
            raise IllegalTransition(f"a {self.kind} cannot go from {_name(now)} to {_name(then)}")
        return then

    def _member(self, value: str | None) -> StrEnum | None:
        if value is None:
            return None
        try:
            return self.states(value)
        except ValueError:
            raise IllegalTransition(f"{value!r} is not a {self.kind} state (one of "
                                    f"{', '.join(self.states)})") from None

    def legal(self) -> list[tuple[StrEnum | None, StrEnum | None]]:
        return [(now, then) for now, nexts in self.moves.items() for then in sorted(nexts, key=_order)]


def _name(state: StrEnum | None) -> str:
    return "(none)" if state is None else str(state)


def _order(state: StrEnum | None) -> int:
    return -1 if state is None else list(type(state)).index(state)


J, S, E, U, R = JobState, SubmissionState, EvaluationState, UploadState, RoleState

JOBS = Machine("job", JobState, {
    None: frozenset({J.QUEUED}),
    # a platform fault sends a running or evaluating job back to queued; a resumed driver starts
    # again a job that a stopped one left running or evaluating
    J.QUEUED: frozenset({J.RUNNING, J.EVALUATING, J.CANCELLED}),
    J.RUNNING: frozenset({J.RUNNING, J.EVALUATING, J.FAILED, J.QUEUED, J.CANCELLED}),
    J.EVALUATING: frozenset({J.EVALUATING, J.SUCCEEDED, J.FAILED, J.QUEUED, J.CANCELLED}),
    # re-evaluation scores stored predictions again (a failed job: only an output the evaluator rejected)
    J.SUCCEEDED: frozenset({J.EVALUATING}),
    J.FAILED: frozenset({J.EVALUATING}),
    J.CANCELLED: frozenset(),
})

SUBMISSIONS = Machine("submission", SubmissionState, {
    None: frozenset({S.QUEUED}),
    S.QUEUED: frozenset({S.RUNNING, S.CANCELLED}),
    S.RUNNING: frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLED}),
    S.SUCCEEDED: frozenset({S.RUNNING}),  # re-evaluation
    S.FAILED: frozenset({S.RUNNING}),
    S.CANCELLED: frozenset(),
})

EVALUATIONS = Machine("evaluation", EvaluationState, {
    None: frozenset({None, E.SUCCEEDED, E.FAILED}),  # resetting one that never ran changes nothing
    E.SUCCEEDED: frozenset({None}),  # re-evaluation runs the container again
    E.FAILED: frozenset({None}),
})

UPLOADS = Machine("upload", UploadState, {
    None: frozenset({U.OPEN}),
    U.OPEN: frozenset({U.COMPLETE, U.FAILED, U.EXPIRED}),
    U.COMPLETE: frozenset({U.USED, U.EXPIRED}),
    U.USED: frozenset(),
    U.EXPIRED: frozenset(),
    U.FAILED: frozenset(),
})

ROLES = Machine("role", RoleState, {
    None: frozenset({R.PENDING, R.APPROVED}),
    R.PENDING: frozenset({R.APPROVED}),
    R.APPROVED: frozenset({R.APPROVED}),  # granting a role again keeps it
})

MACHINES = {m.states: m for m in (JOBS, SUBMISSIONS, EVALUATIONS, UPLOADS, ROLES)}
del J, S, E, U, R


T = TypeVar("T", bound=StrEnum)


def transition(current: str | None, new: T) -> T:
    """``new`` if its kind of state may move there from ``current`` (as stored); else
    :class:`IllegalTransition`. The kind is ``new``'s enum; a reset to ``None`` uses the machine's
    own :meth:`Machine.move`."""
    machine = MACHINES.get(type(new))
    if machine is None:
        raise TypeError(f"transition() takes a member of one of the state enums, not {new!r}")
    return machine.move(current, new)


def markdown_table(machine: Machine) -> str:
    """The legal moves as a Markdown table, as the design page shows them."""
    rows = [f"| {_name(now)} | {', '.join(_name(t) for t in sorted(nexts, key=_order)) or '(ends here)'} |"
            for now, nexts in machine.moves.items()]
    return "\n".join(["| from | to |", "|---|---|", *rows])
