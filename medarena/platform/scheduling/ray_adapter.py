"""Running case jobs as Ray tasks: one task per algorithm run (with the phase's CPUs and GPUs),
which also evaluates a case that holds no GPU, and one per evaluation of the others. Ray retries
a task whose worker or node was lost; what is left after that reaches the loop as an exception
from :meth:`RayAdapter.result`."""

from __future__ import annotations

import os

from medarena.platform import casejob, objectstore
from medarena.platform.casejob import CaseJob, CaseOutcome
from medarena.platform.scheduling.lock import SchedulerError
from medarena.platform.settings import Settings

MAX_PLATFORM_ATTEMPTS = 3


RAY_START_WAIT_VARIABLE = "RAY_raylet_start_wait_time_s"
RAY_START_WAIT_S = 300


def start_ray(settings: Settings) -> None:
    # Ray waits 30 s for a new node to register with its control store, too short on a loaded
    # machine. This Ray setting bounds that wait; Ray reads it once, when it is first imported (in
    # medarena, only here), so the first start-up on a slow machine waits longer and still ends
    # with a clear error.
    os.environ.setdefault(RAY_START_WAIT_VARIABLE, str(RAY_START_WAIT_S))
    import ray

    if ray.is_initialized():
        return
    if settings.ray_address and not settings.store_is_shared:
        raise SchedulerError("MEDARENA_RAY_ADDRESS is set but MEDARENA_STORE is not: on a cluster the case "
                             "store must be storage every node reaches (a shared folder or an s3:// URL)")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    kwargs = dict(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                  configure_logging=False)
    if settings.ray_address:
        ray.init(address=settings.ray_address, **kwargs)
        return
    gpus = os.environ.get("MEDARENA_RAY_GPUS")  # logical GPUs for a local cluster
    try:
        # "local": a Ray of our own, never one that happens to run on this machine
        ray.init(address="local", num_gpus=int(gpus) if gpus else None, **kwargs)
    except Exception as error:
        if "timed out during startup" not in str(error):
            raise
        raise SchedulerError(
            f"starting the local Ray cluster: its node did not register in time "
            f"({RAY_START_WAIT_VARIABLE}={os.environ[RAY_START_WAIT_VARIABLE]} s; an overloaded machine?); "
            f"Ray's logs are in {os.environ.get('RAY_TMPDIR', '/tmp')}/ray/session_latest/logs; "
            f"a larger {RAY_START_WAIT_VARIABLE} waits longer") from None


def run_on_worker(job: CaseJob) -> CaseOutcome:
    import ray

    gpu_ids = tuple(str(int(g)) for g in ray.get_gpu_ids())
    outcome = casejob.run_case(job, gpu_ids)
    outcome.node = f"{outcome.node}/{ray.get_runtime_context().get_node_id()}"  # hosts may run several nodes
    return outcome


def run_many_on_worker(jobs: list[CaseJob]) -> list[CaseOutcome]:
    return [run_on_worker(job) for job in jobs]


def evaluate_on_worker(job: CaseJob) -> CaseOutcome:
    return casejob.evaluate_case(job)


class RayAdapter:
    """Hands case jobs to Ray; handles are Ray object references."""

    def start(self, settings: Settings) -> None:
        import ray

        start_ray(settings)
        # tasks reach an object store with the driver's settings (worker nodes need none of their own)
        store_env = objectstore.worker_env(settings.store)
        task_env = {"runtime_env": {"env_vars": store_env}} if store_env else {}
        self._run = ray.remote(max_retries=MAX_PLATFORM_ATTEMPTS, retry_exceptions=False, **task_env)(run_on_worker)
        self._run_many = ray.remote(max_retries=MAX_PLATFORM_ATTEMPTS, retry_exceptions=False,
                                    **task_env)(run_many_on_worker)
        self._evaluate = ray.remote(max_retries=MAX_PLATFORM_ATTEMPTS, retry_exceptions=False,
                                    num_cpus=1, **task_env)(evaluate_on_worker)

    def submit(self, stage: str, job: CaseJob, resources: dict):
        if stage == "run":
            return self._run.options(**resources).remote(job)
        return self._evaluate.remote(job)

    def submit_many(self, stage: str, jobs: list[CaseJob], resources: dict):
        """Several cases of one submission run one after another by one task (stage "run")."""
        return self._run_many.options(**resources).remote(jobs)

    def wait_one(self, handles: list):
        import ray

        ready, _ = ray.wait(handles, num_returns=1)
        return ready[0]

    def result(self, handle) -> CaseOutcome | list[CaseOutcome]:
        import ray

        return ray.get(handle)

    def slots(self, resources: dict) -> int:
        """How many jobs with these resources the cluster holds at once (0: not even one)."""
        import ray

        total = ray.cluster_resources()
        fits = [total.get("CPU", 0) / resources["num_cpus"]]
        if resources.get("num_gpus"):
            fits.append(total.get("GPU", 0) / resources["num_gpus"])
        return int(min(fits))

    def describe(self) -> str:
        import ray

        total = ray.cluster_resources()
        return f"{total.get('CPU', 0):g} CPU, {total.get('GPU', 0):g} GPU in all"
