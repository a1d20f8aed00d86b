"""The scheduler's loop: unfinished jobs -> an executor (Ray, or in-process) -> the recorder.

Only as many jobs as the cluster can run at once are handed over, so that a job marked
``running`` in the database really runs; the rest wait as ``queued``, in the fair order of
:class:`~medarena.platform.fairness.FairQueue`. A job whose algorithm ran is evaluated next (in
the same task when it holds no GPU); the cases of a phase served by inference servers go to a
slot a few at a time (one task, one transaction); a platform fault is retried (never charged to the
participant); a submission whose jobs have all ended is closed and its phase ranked.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from medarena.platform import fairness, objectstore, outputfs
from medarena.platform.casejob import CaseJob, CaseOutcome
from medarena.platform.challenges import ChallengeDefinition
from medarena.platform.containers import servers as case_servers
from medarena.platform.database import Submission, session_scope
from medarena.platform.layout import namespace
from medarena.platform.scheduling import recorder
from medarena.platform.scheduling.lock import exclusive
from medarena.platform.scheduling.ray_adapter import MAX_PLATFORM_ATTEMPTS, RayAdapter
from medarena.platform.scheduling.work import UNFINISHED, Pending, collect_work, finish_ready, prepare_reevaluation
from medarena.platform.settings import Settings
from medarena.platform.states import JobState

log = logging.getLogger(__name__)


class Executor(Protocol):
    """Where case jobs run: :class:`~.ray_adapter.RayAdapter` or :class:`~.in_process.InProcessAdapter`."""

    def start(self, settings: Settings) -> None: ...
    def submit(self, stage: str, job: CaseJob, resources: dict): ...
    def submit_many(self, stage: str, jobs: list[CaseJob], resources: dict): ...  # result: a list
    def wait_one(self, handles: list): ...
    def result(self, handle) -> CaseOutcome | list[CaseOutcome]: ...
    def slots(self, resources: dict) -> int: ...
    def describe(self) -> str: ...


def run(settings: Settings, submission_ids: Iterable[int] | None = None,
        on_progress: Callable[[int, int, CaseOutcome | None], None] | None = None,
        on_notice: Callable[[str], None] | None = None, executor: Executor | None = None) -> list[int]:
    """Run every unfinished job of the chosen submissions to its end; return the submissions done.

    Only one scheduler runs on a database at a time (:func:`~.lock.exclusive`).
    ``on_progress(done, total, outcome)`` is called once at the start and after each finished job.
    ``executor``: where the jobs run (Ray by default).
    """
    with exclusive(settings):
        try:
            return _Loop(settings, submission_ids, on_progress, on_notice, executor or RayAdapter()).run()
        finally:
            # inference servers of this node live beside their folders in its scratch: a worker
            # polling an empty queue costs no podman call
            if settings.container_backend == "podman" and any(settings.scratch.glob("server-*")):
                case_servers.remove_leftovers(namespace(settings))
                case_servers.sweep_scratch(settings.scratch)
            outputfs.sweep(settings.scratch)  # the capped /output folders that workers keep between cases


def reevaluate(settings: Settings, submission_ids: Iterable[int], **kwargs) -> list[int]:
    """Score stored predictions again (after a change of the scoring recipe); never reruns an
    algorithm. Jobs whose algorithm failed keep their failure; the others go back to
    ``evaluating``. A phase's evaluation container runs again over the stored outputs.
    """
    ids = prepare_reevaluation(settings, submission_ids)
    return run(settings, ids, **kwargs)


class _Loop:
    def __init__(self, settings: Settings, submission_ids, on_progress, on_notice, executor: Executor) -> None:
        self.settings, self.chosen = settings, submission_ids
        self.on_progress, self.on_notice, self.executor = on_progress, on_notice, executor
        self.definitions: dict[int, ChallengeDefinition] = {}  # validated once per run
        self.in_flight: dict = {}
        self.unschedulable: list[Pending] = []
        self.stuck: list[Pending] = []  # platform faults beyond this run's retries: they stay queued
        self.done = 0

    def run(self) -> list[int]:
        settings = self.settings
        pending = collect_work(settings, self.chosen, self.definitions)
        self.submissions = sorted({p.submission_id for p in pending})
        if not pending:
            return finish_ready(settings, self.chosen, self.on_notice)
        objectstore.check_store(settings.store)  # jobs not dispatched stay as they are: a later run resumes them
        self.executor.start(settings)
        self.waiting = fairness.FairQueue(pending)
        self.watch = fairness.NewWorkWatch(settings.database_url) if self.chosen is None else None
        self.total = len(pending)
        self.fill()
        if self.on_progress:
            self.on_progress(self.done, self.total, None)
        while True:
            self.pick_up_new_work()
            self.fill()  # also after a job that ended with nothing else in flight, when others still wait
            if not self.in_flight:
                break
            self.take_one()
        self.report()
        with session_scope(settings.database_url) as session:
            return [sid for sid in self.submissions if session.get(Submission, sid).state not in UNFINISHED]

    def flying(self) -> list[Pending]:
        return [item for batch in self.in_flight.values() for item in batch]

    def dispatch(self, batch: list[Pending]) -> int:
        """Hand jobs of one stage over as one task; returns how many (not those cancelled since
        they were picked)."""
        stage = batch[0].stage
        state = JobState.RUNNING if stage == "run" else JobState.EVALUATING
        marked = recorder.set_jobs(self.settings, [item.job_id for item in batch], state, started=stage == "run")
        batch = [item for item in batch if item.job_id in marked]
        if len(batch) == 1:
            self.in_flight[self.executor.submit(stage, batch[0].case_job, batch[0].resources)] = batch
        elif batch:
            jobs = [item.case_job for item in batch]
            self.in_flight[self.executor.submit_many(stage, jobs, batch[0].resources)] = batch
        return len(batch)

    def pick_up_new_work(self) -> None:  # submissions queued while this run goes on join the queue
        new = self.watch.new_submissions(set(self.submissions)) if self.watch else []
        fresh = collect_work(self.settings, new, self.definitions) if new else []
        self.waiting.extend(fresh)
        self.total += len(fresh)
        self.submissions.extend(sorted({p.submission_id for p in fresh}))

    def fill(self) -> None:
        while item := self.waiting.next_up(self.flying()):  # None: every waiting one is at its cap
            slots = self.executor.slots(item.resources)
            if slots == 0:  # the cluster lacks what the phase asks for: leave the job queued
                self.unschedulable.append(self.waiting.take(item))
                continue
            if sum(batch[0].stage == "run" for batch in self.in_flight.values()) >= slots:
                break
            batch = [self.waiting.take(item), *self.waiting.take_more(item, self.room_beside(item))]
            self.done += len(batch) - self.dispatch(batch)

    def room_beside(self, item: Pending) -> int:
        """How many more cases of ``item``'s submission may go with it in one task."""
        room = item.per_task - 1
        if item.cap:
            room = min(room, item.cap - 1 - sum(p.participant == item.participant for p in self.flying()))
        return max(room, 0)

    def take_one(self) -> None:
        handle = self.executor.wait_one(list(self.in_flight))
        batch = self.in_flight.pop(handle)
        try:
            outcomes = self.executor.result(handle)
            outcomes = outcomes if isinstance(outcomes, list) else [outcomes]
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{len(outcomes)} outcomes came back for {len(batch)} cases")
        except Exception as exc:  # noqa: BLE001 - a worker or node lost beyond the executor's own retries
            outcomes = [CaseOutcome(case=item.case_job.case, state=JobState.FAILED, reason="platform_error",
                                    platform_error=True, platform_log=f"{type(exc).__name__}: {exc}",
                                    detail="the platform lost the case's worker; the case will be run again, "
                                           "and this does not count against the submission")
                        for item in batch]
        recorded = recorder.record_all_safely(self.settings, list(zip(batch, outcomes, strict=True)))
        for item, outcome, (retry, written) in zip(batch, outcomes, recorded, strict=True):
            self.follow_up(item, outcome, retry, written)
        for submission_id in dict.fromkeys(item.submission_id for item in batch):
            if not any(p.submission_id == submission_id for p in self.flying()):
                self.close(submission_id)

    def follow_up(self, item: Pending, outcome: CaseOutcome, retry: bool, recorded: CaseOutcome) -> None:
        """What a job's recorded outcome leads to: its evaluation, a retry, or its end."""
        if recorded is outcome and outcome.state == JobState.EVALUATING and outcome.evaluated is not None:
            item, recorded = dataclasses.replace(item, stage="evaluate"), outcome.evaluated  # recorded with it
        outcome = recorded
        if outcome.state == JobState.EVALUATING and self.dispatch([dataclasses.replace(item, stage="evaluate")]):
            return
        if retry and self.dispatch([item]):
            return
        if outcome.platform_error:
            self.stuck.append(item)
        self.done += 1
        if self.on_progress:
            self.on_progress(self.done, self.total, outcome)

    def close(self, submission_id: int) -> None:
        try:
            finish_ready(self.settings, [submission_id], self.on_notice)
        except Exception:  # noqa: BLE001 - one submission's summary never stops the others
            log.exception("closing submission %s failed", submission_id)
            if self.on_notice:
                self.on_notice(f"submission {submission_id} could not be closed (see the log); "
                               "`medarena run` tries again")

    def report(self) -> None:
        if self.unschedulable and self.on_notice:
            need = self.unschedulable[0].resources
            self.on_notice(f"{len(self.unschedulable)} case(s) stay queued: they need {need['num_cpus']:g} CPU and "
                           f"{need['num_gpus']:g} GPU each, more than this Ray cluster has "
                           f"({self.executor.describe()}); they run once such nodes join")
        if self.stuck and self.on_notice:
            self.on_notice(f"{len(self.stuck)} case(s) stay queued after {MAX_PLATFORM_ATTEMPTS} platform faults "
                           "(not counted against anyone); the organizer sees why in Job.platform_log; "
                           "`medarena run` tries them again")
