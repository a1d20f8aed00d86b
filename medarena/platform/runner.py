"""Running one participant container for one case with podman, isolated as the container
contract says (docs/design.md), and loading/pinning participant images.

Faults of the container are results (:class:`RunResult` with a status the participant can act
on); faults of the platform (podman missing or failing before the container exists) raise
:class:`RunnerError` so that the caller can retry them without charging the participant.
"""

from __future__ import annotations

import gzip
import json
import lzma
import os
import platform
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import IO, Literal

from medarena.errors import InvalidInput, PlatformFault
from medarena.platform.definitions import Limits  # noqa: F401 - defined there, long imported from here
from medarena.platform.outputfs import OutputFolder
from medarena.platform.usage import CaseMeter, Usage

RunStatus = Literal["ok", "timeout", "out_of_memory", "exit_code", "image_error", "output_too_large"]

DEFAULT_LOG_TAIL_BYTES = 16_384
# The podman settings shipped with the repository (runc, explicit ulimits).
_REPO_CONTAINERS_CONF = Path(__file__).resolve().parents[2] / "infra" / "containers.conf"
_SIGKILL_EXIT = 137
# podman's --init: catatonit, as PID 1 of every container (reaps orphans, forwards signals)
_INIT_PATHS = ("/usr/libexec/podman/catatonit", "/usr/bin/catatonit")
# catatonit's words when the image's entrypoint cannot be executed
_INIT_EXEC_FAILED = re.compile(r"^ERROR \(catatonit:\d+\): failed to exec pid1: (.+)$", re.MULTILINE)
_WATCH_SECONDS = 0.25  # how often a running container's output is measured
# Root podman runs every container in a user namespace: its UIDs 0-65535 are these host UIDs, which
# no account owns, so the image's own user (root included) is never root on the host. Measured on
# podman 4.3.1 + runc: an explicit map starts a container in 0.9 s, --userns=auto in 1.4-2.0 s
# (and needs a "containers" range in /etc/subuid); both ran 4 at a time, stopped midway, without
# hanging. Rootless podman maps the container's root to the calling user already.
HOST_UID_BASE = 1_100_000_000
_ID_RANGE = 65_536
_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".tar.zst")
# How podman reports a container that could not start because of its image (anything else that
# stops a start, a missing CDI device for instance, is the platform's fault).
_IMAGE_START_ERRORS = ("exec:", "executable file not found", "no such file or directory", "permission denied",
                       "exec format error", "unable to find user", "no matching entries in passwd")


class ImageError(InvalidInput, ValueError):
    """A participant image that cannot be used; the message names the file or image."""


class RunnerError(PlatformFault, RuntimeError):
    """podman failed for a reason that is not the container's fault (retry, do not charge)."""


@dataclass(frozen=True)
class ImageRef:
    name: str  # a tag as loaded or given (informative only)
    digest: str  # the image ID, "sha256:<64 hex>": what actually runs


@dataclass(frozen=True)
class RunResult:
    """How one container run ended (the result of every container backend)."""

    status: RunStatus
    exit_code: int | None
    runtime_seconds: float
    stdout_tail: str
    stderr_tail: str
    command: list[str] = field(repr=False)
    message: str = ""  # one line for the participant; empty when ok
    cpu_seconds: float | None = None  # None: not measurable on this host
    peak_memory_bytes: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# ---------------------------------------------------------------------------------------------
# podman plumbing


@cache
def podman_available() -> bool:
    return shutil.which("podman") is not None


def podman_env() -> dict[str, str]:
    """The environment for podman calls: CONTAINERS_CONF defaults to the repository's settings."""
    env = dict(os.environ)
    if not env.get("CONTAINERS_CONF") and _REPO_CONTAINERS_CONF.is_file():
        env["CONTAINERS_CONF"] = str(_REPO_CONTAINERS_CONF)
    return env


def _podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    if not podman_available():
        raise RunnerError("podman is not installed (apt-get install podman runc)")
    return subprocess.run(["podman", *args], capture_output=True, text=True, env=podman_env(),
                          timeout=timeout, stdin=subprocess.DEVNULL)


def remove_container(name: str) -> None:
    """Stop and remove a container by name, if it exists (one left by a stopped scheduler)."""
    if podman_available():
        _podman("rm", "--force", "--ignore", "--time", "0", name, timeout=60)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1].removeprefix("Error: ") if lines else ""


def user_namespace_options() -> list[str]:
    if os.geteuid() != 0:
        return []
    return [f"--uidmap=0:{HOST_UID_BASE}:{_ID_RANGE}", f"--gidmap=0:{HOST_UID_BASE}:{_ID_RANGE}"]


@cache
def init_path() -> str | None:
    return next((p for p in _INIT_PATHS if Path(p).exists()), None)


@cache
def _runc() -> str | None:
    return shutil.which("runc") or next((p for p in ("/usr/sbin/runc", "/usr/bin/runc") if Path(p).exists()),
                                        None)


# ---------------------------------------------------------------------------------------------
# images


def load_image(ref: str | Path) -> ImageRef:
    """Make ``ref`` (a local image name, or a ``podman save``/``docker save`` tarball) available
    locally and pin it by its image ID. Raises :class:`ImageError`."""
    ref = str(ref)
    if ref.endswith(_ARCHIVE_SUFFIXES) or Path(ref).is_file():
        return _load_archive(Path(ref))
    return inspect_image(ref)


def _load_archive(path: Path) -> ImageRef:
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    with path.open("rb") as file:
        magic = file.read(6)
    opener = gzip.open if magic[:2] == b"\x1f\x8b" else lzma.open if magic == b"\xfd7zXZ\x00" else None
    if opener is None:
        result = _podman("load", "-i", str(path), timeout=1800)
    else:  # podman 4 loads only plain tarballs; `docker save | gzip` is common
        with tempfile.TemporaryDirectory(prefix="medarena-load-") as folder:
            plain = Path(folder) / "image.tar"
            try:
                with opener(path) as packed, plain.open("wb") as unpacked:
                    shutil.copyfileobj(packed, unpacked, 1 << 20)
            except (OSError, EOFError, lzma.LZMAError) as exc:
                raise ImageError(f"{path}: a damaged compressed archive ({exc})") from None
            result = _podman("load", "-i", str(plain), timeout=1800)
    if result.returncode != 0:
        raise ImageError(f"{path}: not an image archive as `podman save` or `docker save` write it")
    # podman prints "Loaded image: NAME" (or "Loaded image(s): A,B") per image in the archive
    names = [n.strip() for line in result.stdout.splitlines() if line.startswith("Loaded image")
             for n in line.split(":", 1)[1].split(",") if n.strip()]
    if not names:
        raise ImageError(f"{path}: the archive holds no image")
    refs = {inspect_image(name, source=str(path)) for name in names}
    if len({r.digest for r in refs}) > 1:
        raise ImageError(f"{path}: the archive holds {len(refs)} different images; submit exactly one")
    return next(iter(refs))


def save_image(digest: str, destination: str) -> None:
    """Write the pinned image as a `podman save` archive to ``destination`` (a path or an fsspec
    URL in the shared store), so that every node of a cluster can load exactly these bits."""
    import fsspec

    with tempfile.TemporaryDirectory(prefix="medarena-save-") as folder:
        archive = Path(folder) / "image.tar"
        result = _podman("save", "-o", str(archive), digest, timeout=1800)
        if result.returncode != 0:
            raise RunnerError(f"podman could not save image {digest}: {_last_line(result.stderr)}")
        with archive.open("rb") as source, fsspec.open(destination, "wb", auto_mkdir=True) as target:
            shutil.copyfileobj(source, target, 1 << 20)


def ensure_image(digest: str, archive: str) -> None:
    """Make sure this node has the pinned image, loading it from its archive in the shared store
    when it does not. A missing or wrong archive is the platform's fault: :class:`RunnerError`."""
    import fsspec

    if digest in _verified_images or _podman("image", "exists", digest).returncode == 0:
        return
    with tempfile.TemporaryDirectory(prefix="medarena-fetch-") as folder:
        local = Path(folder) / "image.tar"
        try:
            with fsspec.open(archive, "rb") as source, local.open("wb") as target:
                shutil.copyfileobj(source, target, 1 << 20)
        except OSError as exc:
            raise RunnerError(f"image {digest} is not on this node and its archive cannot be read: {exc}") from None
        result = _podman("load", "-i", str(local), timeout=1800)
    if result.returncode != 0 or _podman("image", "exists", digest).returncode != 0:
        raise RunnerError(f"{archive}: loading it did not give image {digest}")


def inspect_image(ref: str, *, source: str | None = None) -> ImageRef:
    """Pin a local image by its ID, checking that it has something to run on this machine."""
    label = f"{source}: image {ref}" if source else f"image {ref}"
    result = _podman("image", "inspect", ref)
    if result.returncode != 0:
        raise ImageError(f"{label}: not found among the local images (load it or build it first)")
    info = json.loads(result.stdout)[0]
    config = info.get("Config") or {}
    if not config.get("Entrypoint") and not config.get("Cmd"):
        raise ImageError(f"{label}: has no ENTRYPOINT and no CMD, so there is nothing to run")
    arch, host = info.get("Architecture"), _host_arch()
    if arch and host and arch != host:
        raise ImageError(f"{label}: built for {arch}, this machine runs {host}")
    digest = "sha256:" + info["Id"].removeprefix("sha256:")
    tags = info.get("RepoTags") or []
    name = ref if ref in tags else (tags[0] if tags else digest)
    return ImageRef(name=name, digest=digest)


def _host_arch() -> str | None:
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower())


# ---------------------------------------------------------------------------------------------
# running


# Folders grand-challenge's runtime makes writable besides /tmp (sagemaker-shim's
# GRAND_CHALLENGE_COMPONENT_WRITABLE_DIRECTORIES); /opt/ml/model and the ground truth are
# read-only here. They are tmpfs, counted against the memory limit like /tmp.
SCRATCH_FOLDERS = ("/opt/ml/output/data", "/opt/ml/checkpoints")


def container_command(image: str, input_dir: Path, output_dir: Path, limits: Limits, *, name: str,
                      gpu_ids: Sequence[str] = (), file_size_limit: int | None = None,
                      read_only_mounts: Sequence[tuple[Path, str]] = (), cidfile: Path | None = None,
                      cgroup_parent: str | None = None) -> list[str]:
    """The podman command that runs ``image`` on one case with the contract's isolation; the
    container removes itself when it ends. ``file_size_limit``: RLIMIT_FSIZE in bytes, where no
    file system caps ``/output``; ``read_only_mounts`` adds (host folder, container path) pairs,
    e.g. a model at /opt/ml/model; ``cidfile``: where podman writes the container's ID;
    ``cgroup_parent``: a cgroup of the run's own, to measure it (:mod:`medarena.platform.usage`)."""
    mounts = []
    for path, target, options in ((input_dir, "/input", "ro"), (output_dir, "/output", "rw,U"),
                                  *((path, target, "ro") for path, target in read_only_mounts)):
        host = str(Path(path).absolute())
        if ":" in host or "," in host:
            raise ValueError(f"{host}: a folder mounted into a container cannot contain ':' or ','")
        mounts += ["--volume", f"{host}:{target}:{options},nosuid,nodev"]
    memory = f"{int(limits.memory_mb)}m"
    command = ["podman"]
    if _runc():
        command += ["--runtime", _runc()]
    command += [
        "run", "--name", name, "--rm", *([f"--cidfile={cidfile}"] if cidfile else []), "--pull=never",
        "--log-driver=none",
        # catatonit as PID 1 reaps what the algorithm forks and forwards the stop signal
        "--init", *([f"--init-path={init_path()}"] if init_path() else []),
        *user_namespace_options(),
        "--network=none",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        "--read-only", "--read-only-tmpfs=false",
        # tmpfs pages count against the memory limit, so /tmp can never exceed it
        "--tmpfs", f"/tmp:rw,nosuid,nodev,mode=1777,size={memory}",
        *[arg for folder in SCRATCH_FOLDERS
          for arg in ("--tmpfs", f"{folder}:rw,nosuid,nodev,mode=1777,size={memory}")],
        *mounts,
        f"--memory={memory}", f"--memory-swap={memory}",
        f"--cpus={limits.cpus:g}",
        f"--pids-limit={int(limits.pids)}",
        # podman's default ulimits cannot be set on these hosts; explicit ones always can
        "--ulimit=nofile=1024:1024", "--ulimit=nproc=4096:4096",
    ]
    if cgroup_parent:
        command.append(f"--cgroup-parent={cgroup_parent}")
    if file_size_limit:
        command.append(f"--ulimit=fsize={int(file_size_limit)}:{int(file_size_limit)}")
    for gpu in gpu_ids:
        command += ["--device", f"nvidia.com/gpu={gpu}"]
    command.append(image)
    return command


class _Tail:
    """Reads a stream to its end in a thread, keeping only the last ``size`` bytes."""

    def __init__(self, stream: IO[bytes], size: int) -> None:
        self._stream, self._size, self._data = stream, size, bytearray()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while chunk := self._stream.read1(65536):  # type: ignore[attr-defined]
            self._data += chunk
            if len(self._data) > 2 * self._size:
                del self._data[: len(self._data) - self._size]

    def text(self, wait: float = 5.0) -> str:
        self._thread.join(wait)
        text = bytes(self._data[-self._size:]).decode("utf-8", errors="replace") if self._size else ""
        return text.replace("\x00", "\ufffd")  # NUL cannot be stored in PostgreSQL text


_verified_images: set[str] = set()


def run_container(image: str, input_dir: Path, output_dir: Path, limits: Limits, *,
                  gpu_ids: Sequence[str] = (), name: str | None = None,
                  log_tail_bytes: int = DEFAULT_LOG_TAIL_BYTES, output: OutputFolder | None = None,
                  read_only_mounts: Sequence[tuple[Path, str]] = ()) -> RunResult:
    """Run ``image`` (best: a pinned ID from :func:`load_image`) on the case in ``input_dir``,
    leaving its outputs in ``output_dir`` (which must be empty); the container is removed
    afterwards in every case. A container of the given ``name`` still present (from a worker
    that was lost) is removed and the run tried again, so name a container after its job to make
    retries clean.

    ``output`` is the capped :class:`OutputFolder` mounted at ``output_dir``; without it the
    folder is watched by walking it. Either way the container is stopped as soon as its output
    goes over ``limits.output_mb`` (status ``output_too_large``). stdout and stderr are drained
    as they come and only their tails are kept, however much a container prints.

    A run that ends normally costs one podman call (``podman run --rm``; a pinned image is
    checked once per process): podman's exit status is the container's, except 125-127, which
    podman also uses for its own failures; only then are the container's events read to tell
    whether it started.
    Raises :class:`RunnerError` when podman itself fails."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if any(output_dir.iterdir()):
        raise ValueError(f"{output_dir}: the output folder must be empty before a run")
    if output is None:
        output = OutputFolder(output_dir, limits.output_mb * 2**20)
    elif output.path.absolute() != output_dir.absolute():
        raise ValueError(f"{output_dir}: not the folder of the given output ({output.path})")
    if init_path() is None:
        raise RunnerError(f"podman's init process is missing ({_INIT_PATHS[0]}): apt-get install catatonit")
    name = name or f"medarena-{uuid.uuid4().hex[:16]}"
    # the container's ID, written by podman once it exists (beside /output, never inside it)
    cidfile = output_dir.parent / f".{name}.cid"
    meter, used = CaseMeter(name, podman_env), Usage()
    command = container_command(image, input_dir, output_dir, limits, name=name, gpu_ids=gpu_ids,
                                file_size_limit=output.file_size_limit, read_only_mounts=read_only_mounts,
                                cidfile=cidfile, cgroup_parent=meter.cgroup_parent)

    def result(status: RunStatus, exit_code: int | None, runtime: float, out: str, err: str,
               message: str) -> RunResult:
        return RunResult(status, exit_code, round(runtime, 3), out, err, command, message,
                         used.cpu_seconds, used.peak_memory_bytes)

    if image not in _verified_images:  # a pinned image ID, once checked, stays what it was
        try:
            inspect_image(image)
        except ImageError as exc:
            return result("image_error", None, 0.0, "", "", str(exc))
        if image.startswith("sha256:"):
            _verified_images.add(image)

    try:
        for attempt in (1, 2):
            cidfile.unlink(missing_ok=True)
            try:
                run = _watch(command, name, output, limits, log_tail_bytes, cwd=output_dir.parent)
                started = _started(cidfile, run.started_at) if run.exit_code in _PODMAN_EXIT_CODES else True
            finally:
                cidfile.unlink(missing_ok=True)
            if started is None and attempt == 1 and "already in use" in run.err:  # left over from a lost worker
                _podman("rm", "--force", "--ignore", "--time", "0", name, timeout=60)
                continue
            break
    finally:
        used = meter.finish()  # the container is gone (--rm): its cgroup holds its totals
    out, err, runtime = run.out, run.err, run.runtime

    if run.too_large:
        return result("output_too_large", None, runtime, out, err, f"stopped: {run.too_large}")
    if run.timed_out:
        return result("timeout", None, runtime, out, err,
                      f"stopped after the wall-time limit of {limits.wall_time_seconds:g} s")
    if started is None:
        raise RunnerError(f"podman could not create container {name} for {image}: "
                          f"{_last_line(err) or f'exit code {run.exit_code}'}")
    if not started:
        reason = _last_line(err)
        if not any(marker in reason.lower() for marker in _IMAGE_START_ERRORS):
            raise RunnerError(f"podman could not start container {name} for {image}: {reason}")
        return result("image_error", None, runtime, out, err, f"the container did not start: {reason[:300]}")
    exit_code = run.exit_code
    if exit_code != 0 and (failed := _INIT_EXEC_FAILED.search(err)):  # the init could not start the entrypoint
        program = _image_program(image)
        return result("image_error", None, runtime, out, err,
                      f"the container did not start: {program[:200]!r} cannot be run ({failed.group(1)[:100]})")
    if run.oom_killed or exit_code == _SIGKILL_EXIT:
        return result("out_of_memory", exit_code, runtime, out, err,
                      f"killed for exceeding the memory limit of {limits.memory_mb} MB")
    if exit_code != 0:
        last = _last_line(err)
        return result("exit_code", exit_code, runtime, out, err,
                      f"exited with code {exit_code}" + (f": {last[:300]}" if last else ""))
    return result("ok", 0, runtime, out, err, "")


# podman run's own failures (125: podman, 126: cannot invoke, 127: not found), which a container
# may also exit with
_PODMAN_EXIT_CODES = (125, 126, 127)


@dataclass
class _Watched:
    exit_code: int
    runtime: float
    out: str
    err: str
    timed_out: bool = False
    too_large: str | None = None
    oom_killed: bool = False
    started_at: float = 0.0  # the wall clock when podman was called


def _watch(command: list[str], name: str, output: OutputFolder, limits: Limits, log_tail_bytes: int,
           cwd: Path) -> _Watched:
    """Run the podman command, stopping the container at its wall time or output cap."""
    start, started_at = time.monotonic(), time.time()
    # conmon leaves an "oom" marker in its working directory when the kernel's OOM killer struck
    # anywhere in the container (podman's OOMKilled): keep it in the job's folder
    oom_marker = cwd / "oom"
    oom_marker.unlink(missing_ok=True)
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=podman_env(), cwd=cwd)
    stdout, stderr = _Tail(process.stdout, log_tail_bytes), _Tail(process.stderr, log_tail_bytes)
    timed_out, too_large = False, None
    try:
        deadline = start + limits.wall_time_seconds
        while process.poll() is None:
            if time.monotonic() >= deadline:
                timed_out = True
                _stop(name, process)
                break
            if too_large := output.over():
                _stop(name, process)
                break
            try:
                process.wait(timeout=min(_WATCH_SECONDS, max(deadline - time.monotonic(), 0.01)))
            except subprocess.TimeoutExpired:
                pass
        runtime = time.monotonic() - start
    finally:
        if process.poll() is None:
            _stop(name, process)
        if process.returncode is None or process.returncode < 0:  # the client was killed: --rm did not run
            _podman("rm", "--force", "--ignore", "--time", "0", name, timeout=60)
    too_large = too_large or output.over()  # also a container that went over in its last moments
    oom_killed = oom_marker.exists()
    oom_marker.unlink(missing_ok=True)
    return _Watched(process.returncode, runtime, stdout.text(), stderr.text(), timed_out, too_large, oom_killed,
                    started_at)


def _started(cidfile: Path, since: float) -> bool | None:
    """Whether the container of ``cidfile`` started (None: it was never created), from its
    events, which outlive the removed container."""
    try:
        cid = cidfile.read_text().strip()
    except OSError:
        return None
    if not re.fullmatch(r"[0-9a-f]{64}", cid):
        return None
    found = _podman("events", "--stream=false", "--since", str(int(since) - 60), "--filter", f"container={cid}",
                    "--format", "{{.Status}}", timeout=60)
    if found.returncode != 0:
        raise RunnerError(f"podman could not list the events of container {cid}: {_last_line(found.stderr)}")
    events = found.stdout.split()
    if "create" not in events:
        return None
    return "start" in events


def _image_program(image: str) -> str:
    result = _podman("image", "inspect", image)
    if result.returncode != 0:
        return image
    config = json.loads(result.stdout)[0].get("Config") or {}
    return " ".join(_as_list(config.get("Entrypoint")) + _as_list(config.get("Cmd")))


def _stop(name: str, process: subprocess.Popen) -> None:
    # Killing the podman client would leave the container running: stop the container by name.
    _podman("stop", "--time", "0", name, timeout=60)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _as_list(value) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)] if value else []
