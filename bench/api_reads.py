"""Read load on the API: 50 concurrent clients reading a leaderboard of 100 submissions x 100
cases and polling submission states, against one `medarena serve` process on loopback.

Half of the clients read the public leaderboard anonymously; the other half poll the state of one
of their own submissions (100 cases each, with their metrics) with a personal token. Each client
sends its next request when the previous one is answered, for ``--seconds``. Reported: requests
per second and latency percentiles (median of ``--repeats`` runs). Target: p99 under 100 ms.

``--interval S``: each client polls at most once every S seconds (a dashboard or `--follow`
refreshing), instead of sending its next request as soon as the previous one is answered (the
default, which measures the most the server answers).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

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


async def client_loop(url: str, path: str, token: str | None, until: float, latencies: list[float],
                      interval: float = 0.0, offset: float = 0.0) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        await asyncio.sleep(offset)  # polling clients do not all start at once
        while time.perf_counter() < until:
            start = time.perf_counter()
            response = await client.get(path)
            response.raise_for_status()
            latencies.append(time.perf_counter() - start)
            await asyncio.sleep(max(0.0, interval - (time.perf_counter() - start)))


async def load(url: str, owners: list[tuple[int, str]], clients: int, seconds: float,
               interval: float = 0.0) -> tuple[float, list[float]]:
    latencies: list[float] = []
    until = time.perf_counter() + seconds
    tasks = []
    for i in range(clients):
        offset = interval * i / clients
        if i % 2 == 0:
            tasks.append(client_loop(url, "/api/v1/challenges/toy/phases/test/leaderboard", None, until, latencies,
                                     interval, offset))
        else:
            sid, token = owners[i % len(owners)]
            tasks.append(client_loop(url, f"/api/v1/submissions/{sid}", token, until, latencies, interval, offset))
    start = time.perf_counter()
    await asyncio.gather(*tasks)
    return len(latencies) / (time.perf_counter() - start), latencies


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
            runs = [asyncio.run(load(server.url, owners, args.clients, args.seconds, args.interval))
                    for _ in range(args.repeats)]
        finally:
            stop_server(server)
    rates = [r for r, _ in runs]
    p50 = [float(np.percentile(lat, 50)) * 1000 for _, lat in runs]
    p99 = [float(np.percentile(lat, 99)) * 1000 for _, lat in runs]
    mode = f"polling every {args.interval:g} s" if args.interval else "closed loop"
    print(f"{args.clients} clients, {args.workers} server process(es), {args.submissions} submissions x "
          f"{args.cases} cases, {args.seconds:g} s per run, {mode}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"requests/s: median {statistics.median(rates):.1f} of {', '.join(f'{r:.1f}' for r in rates)}")
    print(f"p50 ms:     median {statistics.median(p50):.0f} of {', '.join(f'{v:.0f}' for v in p50)}")
    print(f"p99 ms:     median {statistics.median(p99):.0f} of {', '.join(f'{v:.0f}' for v in p99)}")


if __name__ == "__main__":
    main()
