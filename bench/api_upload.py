"""Upload throughput of the API: an image-sized file in parts over loopback, and the server's peak RSS.

A 2 GiB file (``--size-mb``) is sent by the participant's client (:func:`medarena.client.send_parts`:
each part read once, its SHA-256 in a header, the next part read and hashed while one is sent) in
the server's default part size (``--part-mb`` to change it) to `medarena serve` running as a
subprocess; the part phase is timed (median of ``--repeats``) and the server's peak resident
memory read from /proc (VmHWM) at the end. Then one leaderboard is read and the server's memory
read again: a server that has validated a challenge definition has imported every evaluator.
The floor, timed in the same run: copying the same file on the same disk with `cp`, and hashing
it with SHA-256 (what the server does on top of writing). The server's CPU time per GB (from
/proc, all its threads) says what an upload costs it whatever else the machine runs. Targets: at
least 150 MB/s, server RSS under 300 MB.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.api.conftest import settings_for, start_server, stop_server  # noqa: E402

PART = 16 << 20  # the block the test file is written in


def make_file(path: Path, size: int) -> str:
    block = os.urandom(PART)
    digest = hashlib.sha256()
    with path.open("wb") as file:
        left = size
        while left:
            chunk = block[:min(left, PART)]
            file.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def upload(url: str, token: str, path: Path, size: int, sha: str, part_size: int | None) -> float:
    from medarena.client import Client, send_parts

    client = Client(url, token, timeout=120)
    try:
        upload = client.call("POST", "/api/v1/challenges/toy/phases/test/uploads",
                             json={"size": size, "sha256": sha, "part_size": part_size})
        start = time.perf_counter()
        upload = send_parts(client, path, upload)
        elapsed = time.perf_counter() - start
        assert upload["next_part"] is None
    finally:
        client.close()
    return elapsed


def rss_mb(pid: int, field: str = "VmHWM") -> float:
    """The process's peak (VmHWM) or current (VmRSS) resident memory."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of the process, all its threads (/proc/PID/stat, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--part-mb", type=int, default=None, help="default: the server's")
    args = parser.parse_args()
    size = args.size_mb << 20
    part_size = args.part_mb << 20 if args.part_mb else None

    from medarena.platform import organizer
    from medarena.services import accounts
    from tests.platform.challenge_data import write_definition, write_source

    with tempfile.TemporaryDirectory(prefix="medarena-bench-upload-") as folder:
        home = Path(folder)
        settings = settings_for(home)
        organizer.create_challenge(settings, write_definition(home / "toy.yaml"))
        organizer.ingest_phase(settings, "toy", "test", write_source(home / "source", n=1))
        accounts.add_user(settings, "alice", "alice-password")
        accounts.grant_role(settings, "alice", "toy", "participant")
        token, _ = accounts.create_token(settings, "alice", "bench", 1)
        data = home / "image.tar"
        sha = make_file(data, size)
        server = start_server(settings, home / "server.log", MEDARENA_UPLOADS_PER_USER="100",
                              MEDARENA_UPLOAD_BYTES_PER_USER=str(1 << 40))
        try:
            idle = rss_mb(server.process.pid, "VmRSS")
            times, cpu = [], []
            for _ in range(args.repeats):
                before = cpu_seconds(server.process.pid)
                times.append(upload(server.url, token, data, size, sha, part_size))
                cpu.append(cpu_seconds(server.process.pid) - before)
                shutil.rmtree(home / "uploads", ignore_errors=True)
            rss = rss_mb(server.process.pid)
            httpx.get(f"{server.url}/api/v1/challenges/toy/phases/test/leaderboard", timeout=120).raise_for_status()
            rss_all = rss_mb(server.process.pid)
        finally:
            stop_server(server)
        copies, hashes = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run(["cp", str(data), str(home / "copy.tar")], check=True)
            copies.append(time.perf_counter() - start)
            (home / "copy.tar").unlink()
            start = time.perf_counter()
            digest = hashlib.sha256()
            with data.open("rb") as file:
                while block := file.read(1 << 20):
                    digest.update(block)
            hashes.append(time.perf_counter() - start)
    mb = size / 1e6
    median = statistics.median(times)
    from medarena.services.uploads import DEFAULT_PART

    parts = (part_size or DEFAULT_PART) >> 20
    print(f"file: {args.size_mb} MiB in {parts} MiB parts; load average {os.getloadavg()[0]:.1f}")
    print(f"upload:  {mb / median:7.0f} MB/s  median {median:.2f} s of {', '.join(f'{t:.2f}' for t in times)}")
    print(f"server CPU: {statistics.median(cpu) / (size / 1e9):.2f} s per GB (median; receiving, hashing, writing)")
    print(f"cp:      {mb / statistics.median(copies):7.0f} MB/s  (floor: the same bytes copied on this disk)")
    print(f"sha256:  {mb / statistics.median(hashes):7.0f} MB/s  (the hash the server computes as it writes)")
    print(f"server peak RSS: {rss:.0f} MB (after start, before any upload: {idle:.0f} MB; "
          f"{rss_all:.0f} MB once a leaderboard was read and the evaluators imported)")


if __name__ == "__main__":
    main()
