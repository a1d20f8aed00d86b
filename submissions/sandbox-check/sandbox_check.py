"""Report what the container may do, as JSON in /output/sandbox.json: a check of the platform's
isolation (network, writable paths, user, capabilities, limits) on a new host."""

from __future__ import annotations

import json
import os
import resource
import socket
from pathlib import Path


def can_write(folder: str) -> bool:
    try:
        Path(folder, f".probe-{os.getpid()}").write_text("x")
        Path(folder, f".probe-{os.getpid()}").unlink()
        return True
    except OSError:
        return False


def can_connect(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def status_field(name: str) -> str:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return ""


def first_readable(*paths: str) -> str:
    for path in paths:
        try:
            return Path(path).read_text().strip()
        except OSError:
            continue
    return ""


report = {
    "uid": os.getuid(),
    "gid": os.getgid(),
    "network_interfaces": sorted(name for _, name in socket.if_nameindex()),
    "can_connect": can_connect("1.1.1.1", 53) or can_connect("10.0.2.2", 80),
    "writable": {folder: can_write(folder) for folder in ("/", "/etc", "/input", "/tmp", "/output")},
    "capabilities_effective": status_field("CapEff"),
    "no_new_privileges": status_field("NoNewPrivs"),
    "nofile_limit": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
    "pids_max": first_readable("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"),
    "memory_max": first_readable("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"),
}
Path("/output/sandbox.json").write_text(json.dumps(report, indent=2))
print(json.dumps(report))
