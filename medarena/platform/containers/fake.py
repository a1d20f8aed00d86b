"""An in-process backend for fast scheduler tests: no podman, no images. An image name stands for
a Python callable (a *program*) that reads /input from ``input_dir`` and writes /output into
``output_dir``, as a container would; what it returns says how the "container" ended:

- ``None`` or ``0``: it exited normally; any other ``int``: it exited with that code;
- ``"timeout"`` or ``"out_of_memory"``: stopped by the wall-time or memory limit;
- ``"image_error"``: the image could not be started;
- an exception: a crash (exit code 1, the exception's last line on stderr), except
  :class:`~medarena.platform.runner.RunnerError`, which is a fault of the platform and raises.

The output cap is checked after the program ends, as the real watcher would have stopped it.
Programs are registered by name with :func:`register` (the built-in ``fake/...`` ones below in
every process; others in the process that registers them); an image pins as ``sha256:`` and
the SHA-256 of its name, like a real image ID.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from medarena.platform.containers.backend import ContainerSpec, RunResult
from medarena.platform.outputfs import OutputFolder
from medarena.platform.runner import ImageError, ImageRef, Limits, RunnerError


@dataclass
class FakeContainer:
    """What a program sees: the folders of its run, its limits and its output streams."""

    input_dir: Path
    output_dir: Path
    limits: Limits
    name: str
    gpu_ids: tuple[str, ...] = ()
    mounts: dict[str, Path] = field(default_factory=dict)  # container path -> host folder (read-only)
    stdout: io.StringIO = field(default_factory=io.StringIO)
    stderr: io.StringIO = field(default_factory=io.StringIO)


Program = Callable[[FakeContainer], "int | str | None"]
PROGRAMS: dict[str, Program] = {}


def register(name: str, program: Program) -> Program:
    PROGRAMS[name] = program
    return program


def digest_of(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def resolve(image: str) -> Program | None:
    """The program of an image name or of its digest (None: no such image)."""
    if image in PROGRAMS:
        return PROGRAMS[image]
    return next((program for name, program in PROGRAMS.items() if digest_of(name) == image), None)


class FakeBackend:
    name = "fake"
    runs: list[ContainerSpec] = []  # every run of this process, in order (for tests)
    removed: list[str] = []

    def run(self, spec: ContainerSpec) -> RunResult:
        output_dir = Path(spec.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        if any(output_dir.iterdir()):
            raise ValueError(f"{output_dir}: the output folder must be empty before a run")
        FakeBackend.runs.append(spec)
        limits = spec.limits
        name = spec.name or "fake-run"
        command = ["fake", spec.image]
        program = resolve(spec.image)
        if program is None:
            return RunResult("image_error", None, 0.0, "", "", command,
                             f"image {spec.image}: not found among the local images (load it or build it first)")
        box = FakeContainer(Path(spec.input_dir), output_dir, limits, name, tuple(spec.gpu_ids),
                            {target: Path(host) for host, target in spec.read_only_mounts})
        start = time.monotonic()
        try:
            ended = program(box)
        except RunnerError:
            raise
        except Exception as exc:  # noqa: BLE001 - the "algorithm" crashed
            box.stderr.write(f"Traceback (most recent call last):\n{type(exc).__name__}: {exc}\n")
            ended = 1
        runtime = round(time.monotonic() - start, 3)
        out, err = _tail(box.stdout, spec.log_tail_bytes), _tail(box.stderr, spec.log_tail_bytes)

        def result(status, exit_code, message="", seconds=runtime) -> RunResult:
            return RunResult(status, exit_code, seconds, out, err, command, message)

        output = spec.output or OutputFolder(output_dir, limits.output_mb * 2**20)
        if too_large := output.over():
            return result("output_too_large", None, f"stopped: {too_large}")
        if ended == "timeout":
            return result("timeout", None, f"stopped after the wall-time limit of {limits.wall_time_seconds:g} s",
                          seconds=float(limits.wall_time_seconds))
        if ended == "out_of_memory":
            return result("out_of_memory", 137, f"killed for exceeding the memory limit of {limits.memory_mb} MB")
        if ended == "image_error":
            return result("image_error", None, "the container did not start: the image cannot be run")
        code = int(ended or 0)
        if code != 0:
            last = (err.strip().splitlines() or [""])[-1]
            return result("exit_code", code, f"exited with code {code}" + (f": {last[:300]}" if last else ""))
        return result("ok", 0)

    def load_image(self, ref: str | Path) -> ImageRef:
        if resolve(str(ref)) is None:
            raise ImageError(f"image {ref}: not found among the local images (load it or build it first)")
        return ImageRef(name=str(ref), digest=digest_of(str(ref)))

    def save_image(self, digest: str, destination: str) -> None:
        pass  # every process of this machine knows the programs

    def ensure_image(self, digest: str, archive: str) -> None:
        if resolve(digest) is None:
            raise RunnerError(f"{archive}: loading it did not give image {digest}")

    def remove(self, name: str) -> None:
        FakeBackend.removed.append(name)


def _tail(stream: io.StringIO, size: int) -> str:
    data = stream.getvalue().encode("utf-8", errors="replace")[-size:] if size else b""
    return data.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


# ---------------------------------------------------------------------------------------------
# built-in programs


def _noop(box: FakeContainer) -> None:
    box.stdout.write("doing nothing\n")


def _crash(box: FakeContainer) -> int:
    box.stderr.write("crashing on purpose\n")
    return 3


def _platform_fault(box: FakeContainer) -> None:
    raise RunnerError("podman could not start the container (simulated)")


register("fake/noop", _noop)
register("fake/crash", _crash)
register("fake/timeout", lambda box: "timeout")
register("fake/oom", lambda box: "out_of_memory")
register("fake/image-error", lambda box: "image_error")
register("fake/platform-fault", _platform_fault)
