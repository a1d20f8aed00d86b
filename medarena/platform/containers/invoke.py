"""Many cases per container start: an algorithm that serves grand-challenge's invoke API.

grand-challenge (2026) lets an algorithm image declare, with the image label
``org.grand-challenge.api-method=invoke``, that it is a web server rather than a program run once
per case. Its runtime (sagemaker-shim, checked at commit b20f0a71 of DIAGNijmegen/rse-sagemaker-shim,
2026-03-09) starts the image's ENTRYPOINT/CMD once, with ``GRAND_CHALLENGE_COMPONENT_API_METHOD=invoke``,
waits for ``GET http://127.0.0.1:4743/health`` to answer 200, and then, per case: empties
``/input`` and ``/output``, puts the case's inputs in ``/input``, calls ``POST /invoke`` and takes
201 as success (anything else, a dropped connection or the time limit fails the case), and reads
``/output``. The port can be changed with ``GRAND_CHALLENGE_COMPONENT_USER_WEBSERVER_PORT``.

medarena speaks the same protocol, so an image written for it runs unchanged on both. The
container keeps every isolation of a one-case run (no network at all: the platform reaches the
server on the container's own loopback by entering its network namespace, which needs root;
read-only root, capped ``/output``, limits). A case that crashes or hangs the server, or makes it
answer anything but 201, fails that case alone; the server is stopped and started again for the
next case. The time limit applies to each case; the start (until ``/health`` answers) has a
limit of its own.
"""

from __future__ import annotations

import ctypes
import http.client
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from medarena.platform.outputfs import OutputFolder, empty_folder, remove_tree
from medarena.platform.runner import (
    DEFAULT_LOG_TAIL_BYTES,
    Limits,
    RunnerError,
    RunResult,
    _podman,
    _Tail,
    container_command,
    podman_env,
)

API_METHOD_LABEL = "org.grand-challenge.api-method"
PORT = 4743
_POLL_SECONDS = 0.05
_SIGKILL_EXIT = 137
_CLONE_NEWNET = 0x40000000


def invoke_available() -> bool:
    """Entering a container's network namespace needs root (rootless podman: one case per start)."""
    return os.geteuid() == 0


def serves_invoke(image_labels: dict[str, str] | None) -> bool:
    return (image_labels or {}).get(API_METHOD_LABEL, "exec").strip().lower() == "invoke"


class _Log(_Tail):
    """A container's stdout or stderr, drained as it comes, counting what it wrote, so that each
    case gets the tail of what was written while it ran."""

    def __init__(self, stream, size: int) -> None:
        self.total, self.last_at = 0, 0.0  # bytes so far; when the last of them came (monotonic)
        super().__init__(stream, size)

    def _read(self) -> None:
        while chunk := self._stream.read1(65536):
            self._data += chunk
            self.total += len(chunk)
            self.last_at = time.monotonic()
            if len(self._data) > 2 * self._size:
                del self._data[: len(self._data) - self._size]

    def since(self, mark: int) -> str:
        data = bytes(self._data)
        kept_from = self.total - len(data)
        text = data[max(mark - kept_from, 0):][-self._size:].decode("utf-8", errors="replace")
        return text.replace("\x00", "\ufffd")  # NUL cannot be stored in PostgreSQL text


class CaseServer:
    """One running algorithm container that serves case after case through ``POST /invoke``.

    ``folder`` holds ``input`` (mounted read-only at ``/input``, filled by the platform per case)
    and ``output`` (the capped ``/output``). Not thread-safe: one case at a time, as on
    grand-challenge."""

    def __init__(self, image: str, limits: Limits, *, folder: Path, name: str,
                 gpu_ids: Sequence[str] = (), read_only_mounts: Sequence[tuple[Path, str]] = (),
                 log_tail_bytes: int = DEFAULT_LOG_TAIL_BYTES, port: int = PORT) -> None:
        self.image, self.limits, self.name, self.port = image, limits, name, port
        self.folder = Path(folder)
        self.input = self.folder / "input"
        self.output = OutputFolder(self.folder / "output", limits.output_mb * 2**20)
        self._gpu_ids, self._mounts, self._tail_bytes = tuple(gpu_ids), tuple(read_only_mounts), log_tail_bytes
        self._case_marks, self._answered_at = (0, 0), 0.0
        self._process: subprocess.Popen | None = None
        self._pid: int | None = None
        self._prepared = False
        self.starts = 0

    # -- life cycle ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> RunResult | None:
        """Start the container and wait for ``/health``; a failure is the case's result."""
        self.stop()
        self._prepare()
        _podman("rm", "--force", "--ignore", "--time", "0", self.name, timeout=60)
        (self.folder / "oom").unlink(missing_ok=True)
        command = container_command(self.image, self.input, self.output.path, self.limits, name=self.name,
                                    gpu_ids=self._gpu_ids, file_size_limit=self.output.file_size_limit,
                                    read_only_mounts=self._mounts)
        env = ["--env", "GRAND_CHALLENGE_COMPONENT_API_METHOD=invoke",
               "--env", f"GRAND_CHALLENGE_COMPONENT_USER_WEBSERVER_PORT={self.port}"]
        self.command = command[:-1] + env + command[-1:]
        self._process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, env=podman_env(), cwd=self.folder)
        self._stdout = _Log(self._process.stdout, self._tail_bytes)
        self._stderr = _Log(self._process.stderr, self._tail_bytes)
        self.starts += 1
        started = time.monotonic()
        deadline = started + self.limits.wall_time_seconds
        while time.monotonic() < deadline:
            if not self.running:
                return self._failed(started, 0, 0, "exit_code", "the inference server exited before "
                                    "/health answered" + self._exit_detail())
            try:
                if self._pid is None:
                    self._pid = self._container_pid()
                if self._pid and self._request("GET", "/health", timeout=2.0) == 200:
                    return None
            except OSError:
                pass
            time.sleep(_POLL_SECONDS)
        return self._failed(started, 0, 0, "timeout", "the inference server did not answer 200 on /health "
                            f"within {self.limits.wall_time_seconds:g} s")

    def _prepare(self) -> None:
        if not self._prepared:
            self.input.mkdir(parents=True, exist_ok=True)
            self.output.open()
            self._prepared = True

    def stop(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                _podman("stop", "--time", "0", self.name, timeout=60)
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            _podman("rm", "--force", "--ignore", self.name, timeout=60)
        self._process, self._pid = None, None

    def close(self) -> None:
        """Stop the container and remove the folder (the output file system with it)."""
        self.stop()
        if self._prepared:
            self.output.close()
            self._prepared = False
        remove_tree(self.folder)

    # -- cases -----------------------------------------------------------------------------

    def run_case(self, fill_inputs: Callable[[Path], None]) -> RunResult:
        """Empty ``/input`` and ``/output``, let ``fill_inputs`` write the case into the input
        folder, and invoke the server (starting it first when it is not running). On ``ok`` the
        case's outputs are in :attr:`output` until the next case."""
        self._prepare()
        _empty(self.input)
        _empty(self.output.path)
        fill_inputs(self.input)
        if not self.running and (failure := self.start()) is not None:
            self.stop()
            return failure
        marks = self._stdout.total, self._stderr.total
        started = time.monotonic()
        deadline = started + self.limits.wall_time_seconds
        answer: dict[str, object] = {}
        caller = threading.Thread(target=self._invoke_into, args=(answer,), daemon=True)
        caller.start()
        status, message = None, ""
        while caller.is_alive():
            if time.monotonic() >= deadline:
                status, message = "timeout", f"stopped after the wall-time limit of {self.limits.wall_time_seconds:g} s"
                break
            if too_large := self.output.over():
                status, message = "output_too_large", f"stopped: {too_large}"
                break
            if not self.running:
                break
            caller.join(_POLL_SECONDS)
        if status is not None:
            self.stop()
            caller.join(5)
            return self._failed(started, *marks, status, message)
        caller.join(5)
        if too_large := self.output.over():
            self.stop()
            return self._failed(started, *marks, "output_too_large", f"stopped: {too_large}")
        code = answer.get("status")
        if code == 201:
            # the case's last lines may still be on their way: case_logs() waits for them, after
            # the platform's own work on the outputs, not before it
            self._case_marks, self._answered_at = marks, time.monotonic()
            return RunResult("ok", 0, round(self._answered_at - started, 3), self._stdout.since(marks[0]),
                             self._stderr.since(marks[1]), self.command, "")
        self._settle_logs()
        try:  # a server that crashed drops the connection a moment (seconds, on a busy node) before its container ends
            self._process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            pass
        if not self.running:
            # podman run answers with the container's exit status; conmon leaves an "oom" marker
            # in its working directory when the kernel's OOM killer struck
            exit_code = self._process.returncode
            oom = (self.folder / "oom").exists()
            self.stop()
            if oom or exit_code == _SIGKILL_EXIT:
                return self._failed(started, *marks, "out_of_memory",
                                    f"killed for exceeding the memory limit of {self.limits.memory_mb} MB")
            return self._failed(started, *marks, "exit_code",
                                f"the inference server exited while serving the case (exit code {exit_code})")
        self.stop()  # a server that failed a case is started afresh for the next one
        reason = f"returned status {code}, expected 201" if code else f"failed: {answer.get('error', 'no answer')}"
        return self._failed(started, *marks, "exit_code", f"POST /invoke {reason}")

    def case_logs(self, quiet: float = 0.02, at_most: float = 0.3) -> tuple[str, str]:
        """stdout and stderr of the case last served ``ok``: lines written before the answer reach
        us through conmon and the podman client a moment later, so this waits until nothing has
        come for ``quiet`` seconds since the answer (at most ``at_most``)."""
        end = time.monotonic() + at_most
        while (now := time.monotonic()) < end:
            last = max(self._answered_at, self._stdout.last_at, self._stderr.last_at)
            if now - last >= quiet:
                break
            time.sleep(quiet - (now - last))
        return self._stdout.since(self._case_marks[0]), self._stderr.since(self._case_marks[1])

    # -- plumbing --------------------------------------------------------------------------

    def _settle_logs(self, quiet: float = 0.02, at_most: float = 0.3) -> None:
        """Lines written before the answer reach us through conmon and the podman client a moment
        later: wait until the logs have been quiet for ``quiet`` seconds (at most ``at_most``)."""
        end = time.monotonic() + at_most
        seen = self._stdout.total + self._stderr.total
        while time.monotonic() < end:
            time.sleep(quiet)
            now = self._stdout.total + self._stderr.total
            if now == seen:
                return
            seen = now

    def _invoke_into(self, answer: dict[str, object]) -> None:
        try:
            answer["status"] = self._request("POST", "/invoke", timeout=self.limits.wall_time_seconds + 5)
        except OSError as exc:
            answer["error"] = f"{type(exc).__name__}: {exc}"[:200]

    def _request(self, method: str, path: str, *, timeout: float) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        connection.sock = connect_in_namespace(self._pid, self.port, timeout)
        try:
            connection.request(method, path, headers={"Content-Length": "0"})
            response = connection.getresponse()
            response.read(65536)
            return response.status
        finally:
            connection.close()

    def _container_pid(self) -> int | None:
        result = _podman("container", "inspect", "--format", "{{.State.Pid}}", self.name, timeout=60)
        pid = int(result.stdout.strip() or 0) if result.returncode == 0 else 0
        return pid or None

    def _exit_detail(self) -> str:
        last = self._stderr.since(0).strip().splitlines()
        return f": {last[-1][:300]}" if last else ""

    def _failed(self, started: float, out_mark: int, err_mark: int, status: str, message: str) -> RunResult:
        return RunResult(status, None, round(time.monotonic() - started, 3), self._stdout.since(out_mark),
                         self._stderr.since(err_mark), getattr(self, "command", []), message)


def _empty(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        empty_folder(folder)
    except OSError as exc:
        raise RunnerError(f"{exc} between two cases") from None


_libc = ctypes.CDLL(None, use_errno=True)


def connect_in_namespace(pid: int | None, port: int, timeout: float) -> socket.socket:
    """A TCP connection to 127.0.0.1:``port`` inside the network namespace of process ``pid``.

    A container run with ``--network=none`` has only its own loopback; a socket created by a
    thread that has entered that namespace (setns(2)) stays there after the thread leaves it,
    so the container never gets a route out."""
    if not pid:
        raise ConnectionRefusedError("the container has no process yet")
    result: dict[str, object] = {}

    def connect() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
            try:
                if _libc.setns(target, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns into the container's network namespace")
                try:
                    result["socket"] = socket.create_connection(("127.0.0.1", port), timeout=timeout)
                finally:
                    if _libc.setns(own, _CLONE_NEWNET) != 0:  # the thread ends anyway
                        pass
            finally:
                os.close(target)
        except OSError as exc:
            result["error"] = exc
        finally:
            os.close(own)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout + 5)
    if "socket" in result:
        return result["socket"]  # type: ignore[return-value]
    error = result.get("error")
    raise error if isinstance(error, OSError) else ConnectionError("could not connect into the container")
