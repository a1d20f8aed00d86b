"""A participant algorithm that attacks the platform in one way, named by MEDARENA_HOSTILE (baked
into each test image at build time). Unless the behaviour is about the output itself, it also
writes a correct segmentation, so that the case's reason comes from the behaviour alone."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
import uuid
from pathlib import Path

import mha
import numpy as np

INPUT, OUTPUT = Path("/input"), Path("/output")
FOLDER = OUTPUT / "images/segmentation"


def read_input() -> tuple[np.ndarray, dict[str, str]]:
    entry = next(e for e in json.loads((INPUT / "inputs.json").read_text()) if e["value"] is None)
    return mha.read(next((INPUT / entry["interface"]["relative_path"]).glob("*.mha")))


def segment(array: np.ndarray) -> np.ndarray:
    return (array > array.mean()).astype(np.uint8)


def write_good() -> Path:
    array, header = read_input()
    FOLDER.mkdir(parents=True, exist_ok=True)
    path = FOLDER / f"{uuid.uuid4()}.mha"
    mha.write(path, segment(array), like=header)
    return path


def write_array(array: np.ndarray, *, compress: bool = True) -> Path:
    _, header = read_input()
    FOLDER.mkdir(parents=True, exist_ok=True)
    path = FOLDER / "result.mha"
    mha.write(path, array, like=header, compress=compress)
    return path


def attempts(label: str, *actions) -> None:
    """Run each action; print what happened. Exit 9 (an unexpected success) if any worked."""
    worked = []
    for action in actions:
        try:
            action()
            worked.append(getattr(action, "__name__", repr(action)))
        except OSError as exc:
            print(f"{label}: refused ({exc.strerror})", flush=True)
    if worked:
        sys.exit(f"{label}: allowed: {worked}")


def bad_utf8_name() -> None:
    write_good()
    with open(os.fsencode(OUTPUT) + b"/notes-\xff\xfe.txt", "wb") as file:
        file.write(b"x")


def deep_nesting() -> None:
    write_good()
    fd = os.open(OUTPUT, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(10_000):
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = inner


def files(count: int) -> None:
    write_good()
    (OUTPUT / "many").mkdir()
    try:
        for i in range(count):
            os.close(os.open(OUTPUT / "many" / str(i), os.O_CREAT | os.O_WRONLY))
    except OSError as exc:
        print(f"stopped at {i} files: {exc.strerror}", flush=True)
        time.sleep(3600)  # the platform stops it


def symlink_out() -> None:
    array, header = read_input()
    mha.write("/tmp/result.mha", segment(array), like=header)
    FOLDER.mkdir(parents=True)
    os.symlink("/tmp/result.mha", FOLDER / "result.mha")


def hard_link() -> None:
    attempts("hard link to /input", lambda: os.link(INPUT / "inputs.json", OUTPUT / "inputs.json"))
    path = write_good()
    os.link(path, OUTPUT / "copy.mha")


def fifo() -> None:
    write_good()
    os.mkfifo(FOLDER / "pipe.mha")


def unix_socket() -> None:
    write_good()
    socket.socket(socket.AF_UNIX).bind(str(OUTPUT / "listen.sock"))


def sparse_100g() -> None:
    write_good()
    with open(OUTPUT / "sparse.bin", "wb") as file:
        file.truncate(100 * 2**30)


def beyond_cap() -> None:
    write_good()
    chunk = os.urandom(2**20)
    with open(OUTPUT / "fill.bin", "wb") as file:
        while True:
            try:
                file.write(chunk)
                file.flush()
            except OSError:
                time.sleep(0.1)  # keeps trying: the platform must stop it


def unreadable_file() -> None:
    write_good()
    (OUTPUT / "secret").mkdir()
    (OUTPUT / "secret" / "key.txt").write_text("x")
    os.chmod(OUTPUT / "secret" / "key.txt", 0)
    os.chmod(OUTPUT / "secret", 0)


def unreadable_output_folder() -> None:
    write_good()
    os.chmod(FOLDER, 0)


def network() -> None:
    def connect(host: str, port: int):
        def attempt():
            with socket.create_connection((host, port), timeout=2):
                pass
        attempt.__name__ = f"connect {host}:{port}"
        return attempt

    def resolve():
        socket.getaddrinfo("deb.debian.org", 80)

    interfaces = sorted(name for _, name in socket.if_nameindex())
    print(f"network: interfaces {interfaces}", flush=True)
    attempts("network", connect("1.1.1.1", 53), connect("10.0.2.2", 80), connect("169.254.169.254", 80),
             connect("10.88.0.1", 22), resolve)
    if interfaces != ["lo"]:
        sys.exit(f"network: interfaces {interfaces}")
    write_good()


def fork_bomb() -> None:
    while True:
        try:
            os.fork()
        except OSError:
            time.sleep(0.01)


def memory_hog() -> None:
    hoard = []
    while True:
        hoard.append(np.ones(2**23, dtype=np.float64))  # 64 MiB, every page touched


def sleep_forever() -> None:
    time.sleep(10**6)


def huge_logs() -> None:
    line = b"x" * 1023 + b"\n"
    block = line * 1024  # 1 MiB
    out, err = sys.stdout.buffer, sys.stderr.buffer
    for i in range(256):  # 256 MiB to stdout, 64 MiB to stderr, with bytes no text holds
        out.write(block)
        if i % 4 == 0:
            err.write(b"\x00\xff\x1b[31m" + block[6:])
    out.write(b"huge_logs: the last stdout line\n")
    err.write(b"huge_logs: the last stderr line\n")
    out.flush()
    err.flush()
    write_good()


def nan_output() -> None:
    array, _ = read_input()
    mask = segment(array).astype(np.float32)
    mask[0, 0, 0] = np.nan
    write_array(mask)


def wrong_dtype() -> None:
    array, _ = read_input()
    write_array(segment(array).astype(np.float64) * 0.5)


def wrong_grid() -> None:
    array, _ = read_input()
    write_array(segment(array)[1:])


def truncated_mha() -> None:
    array, _ = read_input()
    path = write_array(segment(array), compress=False)
    data = path.read_bytes()
    path.write_bytes(data[:-1000])


def host_paths() -> None:
    """Read what a container should never see; every attempt must fail or find nothing."""
    mounts = Path("/proc/self/mounts").read_text()
    found = [line for line in mounts.splitlines() if "references" in line or "predictions" in line]
    if found:
        sys.exit(f"host_paths: the mounts show {found}")
    attempts("host paths", lambda: Path("/etc/shadow").read_text(),
             lambda: os.listdir("/references"), lambda: Path("/proc/1/root/etc/shadow").read_text(),
             lambda: os.open("/dev/vda", os.O_RDONLY), lambda: os.open("/dev/sda", os.O_RDONLY))
    write_good()


def write_input() -> None:
    attempts("write /input", lambda: (INPUT / "inputs.json").write_text("[]"),
             lambda: (INPUT / "new.txt").write_text("x"), lambda: os.chmod(INPUT / "inputs.json", 0o777),
             lambda: Path("/etc/passwd").write_text("x"), lambda: Path("/opt/x").write_text("x"))
    write_good()


def exit_nonzero() -> None:
    print("exit_nonzero: giving up on purpose", file=sys.stderr, flush=True)
    sys.exit(3)


def kill_init() -> None:
    os.kill(1, signal.SIGKILL)  # PID 1 of a namespace ignores what it has no handler for
    time.sleep(0.5)
    print("kill_init: PID 1 survived SIGKILL; sending SIGTERM", file=sys.stderr, flush=True)
    os.kill(1, signal.SIGTERM)  # catatonit passes it on to this process: it ends the run
    time.sleep(30)


def orphans() -> None:
    for _ in range(5):
        if os.fork() == 0:  # double fork: the grandchild is reparented to PID 1
            if os.fork() == 0:
                os.setsid()
                time.sleep(10**6)
            os._exit(0)
    time.sleep(0.5)
    write_good()


def markup_log() -> None:
    write_good()
    print("[bold red]fake[/bold red] [/x] \x1b]0;title\x07\x1b[2J", file=sys.stderr, flush=True)
    sys.exit(1)


def setuid_escalation() -> None:
    import shutil

    shutil.copy("/bin/sh", "/tmp/sh")
    attempts("privileges", lambda: os.chmod("/tmp/sh", 0o4755) or os.setuid(0), lambda: os.setuid(0),
             lambda: os.mknod("/tmp/null", 0o600 | 0o020000, os.makedev(1, 3)))
    if os.geteuid() == 0:
        sys.exit("setuid: running as root in the container")
    write_good()


def main() -> None:
    behaviour = os.environ["MEDARENA_HOSTILE"]
    print(f"hostile: {behaviour}", flush=True)
    actions = {"twelve_thousand_files": lambda: files(12_000), "hundred_thousand_files": lambda: files(100_000)}
    (actions.get(behaviour) or globals()[behaviour])()


if __name__ == "__main__":
    main()
