"""Read load on the API: 50 concurrent clients reading a leaderboard of 100 submissions x 100
cases and polling submission states, against one `medarena serve` process on loopback.

Half of the clients read the public leaderboard anonymously; the other half poll the state of one
of their own submissions (100 cases each, with their metrics) with a personal token. Each client
sends its next request when the previous one is answered, for ``--seconds``. Each run starts once
every client is connected and answered once (the first of those answers, in the first run, build
the server's caches). Reported: requests per second and latency percentiles (median of
``--repeats`` runs), and the CPU time per request of the server (all its processes, from
/proc) and of the clients (this process: they share the machine's cores with the server).
Target: p99 under 100 ms.

``--interval S``: each client polls at most once every S seconds (a dashboard or `--follow`
refreshing), instead of sending its next request as soon as the previous one is answered (the
default, which measures the most the server answers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import ssl
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.api.conftest import settings_for, start_server, stop_server  # noqa: E402


def seed(settings, home: Path, submissions: int, cases: int) -> list[tuple[int, str]]:
    """The phase's cases, one user per submission with a token: [(submission id, token)]."""
    from medarena.platform import leaderboard, organizer
    from medarena.platform.account_tables import User
    from medarena.platform.database import Case, Job, MetricValue, Submission, session_scope
    from medarena.platform.submissions import find_phase
    from medarena.services import accounts
    from tests.platform.challenge_data import write_definition

    organizer.create_challenge(settings, write_definition(home / "toy.yaml", ranking={
        "method": "aggregate-then-rank", "metrics": [{"metric": "dice", "label": "fg"}], "bootstrap": 100}))
    rng = np.random.default_rng(0)
    with session_scope(settings.database_url) as session:
        phase, _ = find_phase(session, "toy", "test")
        phase.cases.extend(Case(name=f"case{i:03d}", checksum="0" * 64, info={}) for i in range(cases))
        session.flush()
        for s in range(submissions):
            user = User(username=f"user{s:03d}", password_hash="-", is_admin=False, disabled=False)
            session.add(user)
            session.flush()
            submission = Submission(phase=phase, participant=user.username, image="img",
                                    image_digest="sha256:" + "0" * 64, state="succeeded", submitter_id=user.id,
                                    created_at=dt.datetime(2026, 1, 1))
            session.add(submission)
            quality = rng.uniform(0.5, 0.95)
            for case in phase.cases:
                job = Job(case=case, state="succeeded", runtime_seconds=1.0)
                job.metrics.append(MetricValue(label="fg", metric="dice", value=float(rng.normal(quality, 0.05))))
                job.metrics.append(MetricValue(label="fg", metric="hd95", value=float(rng.uniform(1, 10))))
                submission.jobs.append(job)
            session.flush()
            leaderboard.summarize_submission(session, submission)
        leaderboard.rank_phase(session, phase)
        ids = [s.id for s in phase.submissions]
    for s in range(submissions):
        accounts.grant_role(settings, f"user{s:03d}", "toy", "participant")
    return [(sid, accounts.create_token(settings, f"user{i:03d}", "bench", 1)[0]) for i, sid in enumerate(ids)]


async def client_loop(client: httpx.AsyncClient, path: str, until: float, latencies: list[float],
                      interval: float = 0.0, offset: float = 0.0) -> None:
    await asyncio.sleep(offset)  # polling clients do not all start at once
    while time.perf_counter() < until:
        start = time.perf_counter()
        response = await client.get(path)
        response.raise_for_status()
        latencies.append(time.perf_counter() - start)
        await asyncio.sleep(max(0.0, interval - (time.perf_counter() - start)))


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


async def load(url: str, owners: list[tuple[int, str]], clients: int, seconds: float, interval: float = 0.0,
               server_pid: int | None = None) -> Run:
    """One run: every client connected (and answered once) before the clock starts."""
    tls = ssl.create_default_context()  # unused on http://, but each client would load the CAs again
    made = []
    for i in range(clients):
        if i % 2 == 0:
            path, headers = "/api/v1/challenges/toy/phases/test/leaderboard", {}
        else:
            sid, token = owners[i % len(owners)]
            path, headers = f"/api/v1/submissions/{sid}", {"Authorization": f"Bearer {token}"}
        made.append((httpx.AsyncClient(base_url=url, headers=headers, timeout=30, verify=tls), path))
    server = [psutil.Process(server_pid)] if server_pid else []
    server += [child for parent in server for child in parent.children(recursive=True)]
    try:
        await asyncio.gather(*(client.get(path) for client, path in made))
        latencies: list[float] = []
        server_cpu, client_cpu = cpu_seconds(server), cpu_seconds([psutil.Process()])
        start = time.perf_counter()
        until = start + seconds
        await asyncio.gather(*(client_loop(client, path, until, latencies, interval, interval * i / clients)
                               for i, (client, path) in enumerate(made)))
        elapsed = time.perf_counter() - start
        return Run(len(latencies) / elapsed, latencies, (cpu_seconds(server) - server_cpu) / len(latencies),
                   (cpu_seconds([psutil.Process()]) - client_cpu) / len(latencies), elapsed)
    finally:
        for client, _ in made:
            await client.aclose()


@dataclass
class Run:
    rate: float  # requests answered per second
    latencies: list[float]
    server_cpu: float  # seconds of the server's CPU (all its processes) per request
    client_cpu: float  # seconds of this process's CPU per request
    seconds: float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--submissions", type=int, default=100)
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1, help="server processes (medarena serve --workers)")
    parser.add_argument("--interval", type=float, default=0.0, help="seconds between one client's requests "
                        "(0: the next as soon as the previous is answered)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="medarena-bench-reads-") as folder:
        home = Path(folder)
        settings = settings_for(home)
        owners = seed(settings, home, args.submissions, args.cases)
        server = start_server(settings, home / "server.log", serve_args=("--workers", str(args.workers)))
        try:
            runs = []
            for _ in range(args.repeats):
                load_before = os.getloadavg()[0]
                runs.append(asyncio.run(load(server.url, owners, args.clients, args.seconds, args.interval,
                                             server.process.pid)))
                print(f"run: {runs[-1].rate:.1f} requests/s, load average {load_before:.1f} before, "
                      f"{os.getloadavg()[0]:.1f} after", flush=True)
        finally:
            stop_server(server)
    p50 = [float(np.percentile(run.latencies, 50)) * 1000 for run in runs]
    p99 = [float(np.percentile(run.latencies, 99)) * 1000 for run in runs]
    mode = f"polling every {args.interval:g} s" if args.interval else "closed loop"
    print(f"{args.clients} clients, {args.workers} server process(es), {args.submissions} submissions x "
          f"{args.cases} cases, {args.seconds:g} s per run, {mode}")
    print(f"requests/s: median {statistics.median(r.rate for r in runs):.1f} of "
          f"{', '.join(f'{r.rate:.1f}' for r in runs)}")
    print(f"p50 ms:     median {statistics.median(p50):.1f} of {', '.join(f'{v:.1f}' for v in p50)}")
    print(f"p99 ms:     median {statistics.median(p99):.1f} of {', '.join(f'{v:.1f}' for v in p99)}")
    print(f"server CPU per request, ms: median {statistics.median(r.server_cpu for r in runs) * 1000:.2f} of "
          f"{', '.join(f'{r.server_cpu * 1000:.2f}' for r in runs)}")
    print(f"client CPU per request, ms: median {statistics.median(r.client_cpu for r in runs) * 1000:.2f} of "
          f"{', '.join(f'{r.client_cpu * 1000:.2f}' for r in runs)} (the {args.clients} clients, in this process)")


if __name__ == "__main__":
    main()
