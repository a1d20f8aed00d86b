"""What one container run used: CPU seconds and peak memory, read from a cgroup of its own.

Each case container gets its own parent cgroup (``podman run --cgroup-parent``), made by podman
under ``/medarena``. The container's cgroup inside it is deleted when the container ends, but the
parent outlives it, and cgroup counters are hierarchical: the parent's cumulative CPU time and
its memory high-water mark still hold the container's after it is gone, so one ``podman run``
and one read after it measure the whole run (no sampling that could miss a short peak). The
parent is removed after the read.

Measured on podman 4.3.1 + runc, cgroupfs manager, cgroup v1 (hybrid): a container burning
1.0 s of CPU reads 1.1-1.2 s (runc's init and the interpreter's start count too); podman also
puts the container's monitor (conmon, which starts ``runc create``) in a ``conmon`` child of the
parent, about 0.2 s of CPU that is the platform's, so it is subtracted. Its memory cannot be
subtracted from a high-water mark: the peak is the parent's, which includes conmon's resident
memory at the container's peak (about a megabyte; runc's own start-up memory peaks before the
container runs).

Where this cannot work (rootless podman, the systemd cgroup manager, a missing controller), the
figures are None and the run goes on: accounting never fails a case.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "medarena"
_SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
# cgroup v1 hierarchies that may hold the per-case parent, in removal order
_V1_CONTROLLERS = ("cpu,cpuacct", "cpuacct", "cpu", "memory", "pids", "blkio", "devices", "freezer", "cpuset",
                   "hugetlb", "net_cls", "net_prio", "net_cls,net_prio", "perf_event", "rdma", "misc", "systemd",
                   "unified")  # hybrid mode: podman makes the parent in the v2 tree too


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float | None = None
    peak_memory_bytes: int | None = None


@cache
def cgroup_parent_supported(podman_env: Callable[[], dict[str, str]]) -> bool:
    """Root podman with the cgroupfs manager: ``--cgroup-parent`` is a plain cgroup path."""
    if os.geteuid() != 0 or not CGROUP_ROOT.is_dir():
        return False
    try:
        result = subprocess.run(["podman", "info", "--format", "json"], capture_output=True, text=True,
                                env=podman_env(), timeout=60, stdin=subprocess.DEVNULL)
        host = json.loads(result.stdout).get("host", {}) if result.returncode == 0 else {}
    except (OSError, ValueError, subprocess.SubprocessError):
        return False
    return host.get("cgroupManager") == "cgroupfs"


class CaseMeter:
    """The per-case cgroup of one container run, named after the container.

    ``cgroup_parent`` is what to pass to podman (None: not measurable here); :meth:`finish`,
    called once the container is removed, reads and removes it. ``podman_env`` gives the
    environment of podman calls (the runner's settings)."""

    def __init__(self, container_name: str, podman_env: Callable[[], dict[str, str]]) -> None:
        self.cgroup_parent: str | None = None
        if _SAFE.match(container_name) and cgroup_parent_supported(podman_env):
            self.cgroup_parent = f"/{PARENT}/{container_name}"
            _remove(self.cgroup_parent)  # left by a worker that was lost: its counters are not this run's

    def finish(self) -> Usage:
        if self.cgroup_parent is None:
            return Usage()
        try:
            return Usage(_cpu_seconds(self.cgroup_parent), _peak_memory(self.cgroup_parent))
        except (OSError, ValueError):
            return Usage()
        finally:
            # a cgroup whose last process is still exiting stays busy for tens of milliseconds:
            # removed beside the next steps of the case rather than before them
            threading.Thread(target=_remove, args=(self.cgroup_parent,), daemon=True).start()


def _unified() -> bool:
    return (CGROUP_ROOT / "cgroup.controllers").is_file()


def _read(folder: Path | None, name: str) -> str | None:
    try:
        return (folder / name).read_text() if folder is not None else None
    except OSError:
        return None


def _folder(controllers: tuple[str, ...], rel: str) -> Path | None:
    """Where ``rel`` is in the hierarchy of one of ``controllers`` (cgroup v2: the one tree)."""
    if _unified():
        return CGROUP_ROOT / rel
    return next((CGROUP_ROOT / c / rel for c in controllers if (CGROUP_ROOT / c / rel).is_dir()), None)


def _cpu_total(rel: str) -> float | None:
    if _unified():
        found = re.search(r"^usage_usec (\d+)$", _read(_folder((), rel), "cpu.stat") or "", re.MULTILINE)
        return int(found.group(1)) / 1e6 if found else None
    text = _read(_folder(("cpuacct", "cpu,cpuacct", "cpuacct,cpu"), rel), "cpuacct.usage")
    return int(text) / 1e9 if text and text.strip().isdigit() else None


def _cpu_seconds(parent: str) -> float | None:
    rel = parent.lstrip("/")
    total = _cpu_total(rel)
    if total is None:
        return None
    monitor = _cpu_total(f"{rel}/conmon") or 0.0  # the platform's, not the algorithm's
    return round(max(total - monitor, 0.0), 3)


def _peak_memory(parent: str) -> int | None:
    # memory.peak (cgroup v2) needs Linux 5.19; older kernels give None
    text = _read(_folder(("memory",), parent.lstrip("/")), "memory.peak" if _unified() else "memory.max_usage_in_bytes")
    return int(text) if text and text.strip().isdigit() else None


def _remove(parent: str) -> None:
    """Remove the parent and its children, deepest first, in every hierarchy that has it. A child
    whose last process is still exiting is busy for a moment: try a few times, then leave it."""
    rel = parent.lstrip("/")
    roots = [CGROUP_ROOT] if _unified() else [CGROUP_ROOT / c for c in _V1_CONTROLLERS]
    for root in roots:
        top = root / rel
        if not top.is_dir():
            continue
        folders = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
        for folder in [*folders, top]:
            for _ in range(20):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)
