"""Running case jobs in the driver's own process, one after another in the order they were
handed over: no Ray, nothing to start. For fast tests (with the fake container backend) and for
looking at the loop's decisions one step at a time; ``slots`` stands for the cluster's size."""

from __future__ import annotations

import itertools

from medarena.platform import casejob
from medarena.platform.casejob import CaseJob, CaseOutcome
from medarena.platform.settings import Settings


class InProcessAdapter:
    def __init__(self, slots: int = 2, gpus: int = 0) -> None:
        self.cpus, self.gpus = slots, gpus
        self._jobs: dict[int, tuple[str, CaseJob | list[CaseJob]]] = {}
        self._ids = itertools.count()

    def start(self, settings: Settings) -> None:
        pass

    def submit(self, stage: str, job: CaseJob, resources: dict) -> int:
        handle = next(self._ids)
        self._jobs[handle] = (stage, job)
        return handle

    def submit_many(self, stage: str, jobs: list[CaseJob], resources: dict) -> int:
        handle = next(self._ids)
        self._jobs[handle] = (stage, jobs)
        return handle

    def wait_one(self, handles: list) -> int:
        return min(handles)  # the oldest first: the order of dispatch is the order of completion

    def result(self, handle: int) -> CaseOutcome | list[CaseOutcome]:
        stage, job = self._jobs.pop(handle)
        if isinstance(job, list):
            return [casejob.run_case(one) for one in job]
        return casejob.run_case(job) if stage == "run" else casejob.evaluate_case(job)

    def slots(self, resources: dict) -> int:
        fits = [self.cpus / resources["num_cpus"]]
        if resources.get("num_gpus"):
            fits.append(self.gpus / resources["num_gpus"])
        return int(min(fits))

    def describe(self) -> str:
        return f"{self.cpus:g} CPU, {self.gpus:g} GPU in all"
