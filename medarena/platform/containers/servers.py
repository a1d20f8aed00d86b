"""The inference servers a worker process keeps between cases, for phases that let algorithms
serve many cases per start (``many_cases_per_start``): one :class:`CaseServer` per submission,
started on the first case a worker gets and reused for the next ones.

A worker keeps at most :data:`MAX_SERVERS` (the least recently used is stopped first), stops a
server that has had no case for :data:`IDLE_SECONDS`, and stops them all when the process ends.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from medarena.platform.containers.invoke import CaseServer, invoke_available, serves_invoke
from medarena.platform.outputfs import remove_tree
from medarena.platform.runner import Limits, _podman

MAX_SERVERS = 2
IDLE_SECONDS = 10.0

_servers: OrderedDict[tuple, tuple[CaseServer, float]] = OrderedDict()
_lock = threading.Lock()
_reaper: threading.Thread | None = None


@cache
def image_serves_invoke(image: str) -> bool:
    """Whether a (pinned) image carries grand-challenge's label for the invoke API."""
    result = _podman("image", "inspect", "--format", "{{json .Labels}}", image, timeout=60)
    try:
        labels = json.loads(result.stdout) if result.returncode == 0 else {}
    except ValueError:
        labels = {}
    return serves_invoke(labels)


def use_server(image: str) -> bool:
    return invoke_available() and image_serves_invoke(image)


def server_for(image: str, limits: Limits, *, owner: object, scratch: Path, namespace: str,
               read_only_mounts: Sequence[tuple[Path, str]] = (), gpu_ids: Sequence[str] = ()) -> CaseServer:
    """This worker's server for the image of one submission (``owner``: servers are never shared
    between submissions, even of the same image), started on its first case, marked as in use."""
    key = (owner, image, limits.model_dump_json(), tuple((str(p), t) for p, t in read_only_mounts), tuple(gpu_ids))
    with _lock:
        _start_reaper()
        if key in _servers:
            server, _ = _servers.pop(key)
        else:
            while len(_servers) >= MAX_SERVERS:
                _, (oldest, _) = _servers.popitem(last=False)
                oldest.close()
            tag = uuid.uuid4().hex[:8]
            server = CaseServer(image, limits, folder=Path(scratch) / f"server-{os.getpid()}-{tag}",
                                name=f"medarena-{namespace}-server-{tag}", gpu_ids=gpu_ids,
                                read_only_mounts=read_only_mounts)
        _servers[key] = (server, float("inf"))  # in use: never idle
        return server


def release(server: CaseServer) -> None:
    with _lock:
        for key, (held, _) in _servers.items():
            if held is server:
                _servers[key] = (server, time.monotonic())


def close_all() -> None:
    with _lock:
        while _servers:
            _, (server, _) = _servers.popitem()
            server.close()


def close_idle(now: float | None = None) -> None:
    """Close the servers that had no case for :data:`IDLE_SECONDS`, and those whose container is
    gone (removed at the end of a scheduler run) while no case uses them."""
    now = time.monotonic() if now is None else now
    with _lock:
        for key in [k for k, (server, used) in _servers.items()
                    if now - used > IDLE_SECONDS or (used != float("inf") and not server.running)]:
            server, _ = _servers.pop(key)
            server.close()


def sweep_scratch(scratch: Path) -> None:
    """Remove the server folders (with their mounted /output) of worker processes that are gone."""
    for folder in Path(scratch).glob("server-*-*"):
        try:
            pid = int(folder.name.split("-")[1])
        except ValueError:
            continue
        if not Path(f"/proc/{pid}").exists():
            remove_tree(folder)


def _start_reaper() -> None:
    global _reaper
    if _reaper is None:
        _reaper = threading.Thread(target=_reap, daemon=True, name="medarena-case-servers")
        _reaper.start()
        atexit.register(close_all)


def _reap() -> None:
    while True:
        time.sleep(2.0)
        try:
            close_idle()
        except Exception:  # noqa: BLE001 - a failed stop is retried on the next round
            pass


def remove_leftovers(namespace: str) -> None:
    """Remove this platform's inference-server containers once a scheduler run is over (the
    workers that held them start new ones for the next run); also those of a lost worker."""
    from medarena.platform.runner import podman_available

    if not podman_available():
        return
    listed = _podman("ps", "-a", "--filter", f"name=^medarena-{namespace}-server-", "--format", "{{.Names}}",
                     timeout=60)
    names = [n for n in listed.stdout.split() if n.startswith(f"medarena-{namespace}-server-")]
    if names:
        _podman("rm", "--force", "--ignore", "--time", "0", *names, timeout=120)
