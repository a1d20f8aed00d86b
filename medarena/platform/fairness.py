"""Fair sharing of the cluster's slots among participants and their submissions.

The scheduler keeps every waiting job in a :class:`FairQueue` and asks it for the next job each
time a slot frees. The next job goes to the participant with the fewest jobs in flight, ties
going to the one served longest ago (round robin); within that participant, to the submission
with the fewest jobs in flight, ties again by round robin; within the submission, to its first
waiting case. So a 10-case submission queued behind a 500-case one of another participant takes
the next free slot instead of waiting for the 500 cases, and two submissions of one participant
share that participant's slots. A participant at the phase's cap on jobs in flight is passed
over until one of their jobs ends.

Nothing here touches the database or Ray: the queue holds whatever items the scheduler gives it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from sqlalchemy import select

from medarena.platform.database import Submission, session_scope
from medarena.platform.states import SubmissionState


class Queued(Protocol):
    """What the queue needs to know of a job."""

    submission_id: int
    participant: str
    cap: int  # the phase's max_jobs_in_flight_per_participant; 0: no cap


class FairQueue:
    """Waiting jobs, handed out fairly (see the module's docstring)."""

    def __init__(self, items: Iterable[Queued] = ()) -> None:
        self._waiting: dict[int, list[Queued]] = {}  # submission -> its waiting jobs, in order
        self._turn = itertools.count()
        self._last_participant: dict[str, int] = {}  # participant -> turn they were last served
        self._last_submission: dict[int, int] = {}
        self.extend(items)

    def extend(self, items: Iterable[Queued]) -> None:
        for item in items:
            self._waiting.setdefault(item.submission_id, []).append(item)

    def __len__(self) -> int:
        return sum(len(items) for items in self._waiting.values())

    def __bool__(self) -> bool:
        return any(self._waiting.values())

    def next_up(self, in_flight: Iterable[Queued]) -> Queued | None:
        """The job to dispatch next given the jobs in flight (still waiting until :meth:`take`),
        or None when every waiting job belongs to a participant at their cap."""
        per_participant: dict[str, int] = {}
        per_submission: dict[int, int] = {}
        for item in in_flight:
            per_participant[item.participant] = per_participant.get(item.participant, 0) + 1
            per_submission[item.submission_id] = per_submission.get(item.submission_id, 0) + 1
        candidates = [items[0] for items in self._waiting.values()
                      if not items[0].cap or per_participant.get(items[0].participant, 0) < items[0].cap]
        if not candidates:
            return None
        return min(candidates, key=lambda c: (
            per_participant.get(c.participant, 0), self._last_participant.get(c.participant, -1),
            per_submission.get(c.submission_id, 0), self._last_submission.get(c.submission_id, -1),
            c.submission_id))

    def take(self, item: Queued) -> Queued:
        """Remove a job returned by :meth:`next_up` from the queue; it counts as served."""
        items = self._waiting[item.submission_id]
        items.remove(item)
        if not items:
            del self._waiting[item.submission_id]
        turn = next(self._turn)
        self._last_participant[item.participant] = turn
        self._last_submission[item.submission_id] = turn
        return item


    def take_more(self, item: Queued, count: int) -> list[Queued]:
        """Remove and return up to ``count`` further waiting jobs of ``item``'s submission, to be
        handed over with it (they count as served with it)."""
        items = self._waiting.get(item.submission_id, [])
        more, items[:] = items[:count], items[count:]
        if not items:
            self._waiting.pop(item.submission_id, None)
        return more


class NewWorkWatch:
    """Looks for newly queued submissions at most once every ``interval`` seconds.

    One indexed query of submission ids; the scheduler then collects the jobs of those it has
    not seen. ``clock`` is injectable for tests.
    """

    def __init__(self, database_url: str, interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.database_url, self.interval, self.clock = database_url, interval, clock
        self._last = clock()

    def due(self) -> bool:
        return self.clock() - self._last >= self.interval

    def new_submissions(self, known: set[int]) -> list[int]:
        """Ids of queued submissions not in ``known`` (empty when looked less than ``interval`` ago)."""
        if not self.due():
            return []
        self._last = self.clock()
        with session_scope(self.database_url) as session:
            ids = session.scalars(select(Submission.id).where(Submission.state == SubmissionState.QUEUED)
                                  .order_by(Submission.id))
            return [sid for sid in ids if sid not in known]
