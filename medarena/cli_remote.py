"""The command line against a medarena server: `serve`, `login`, `logout`, and the participant's
`submit`, `status`, `results` and `cancel` when logged in."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn
from rich.table import Table
from rich.text import Text

from medarena import client as remote
from medarena.cli_common import fails_cleanly
from medarena.cli_compute import CASE_HEADERS, case_cells, totals_line
from medarena.errors import InvalidInput, NotFound, PlatformFault
from medarena.services.states import FINAL_SUBMISSION, HELD_UPLOAD, JobState

console = Console()
err = Console(stderr=True)
FINAL = FINAL_SUBMISSION  # a job ends in the same states


def _settings():
    from medarena.services.settings import load_settings

    return load_settings()


# ------------------------------------------------------------- the server

@fails_cleanly
def serve(host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
          with_worker: Annotated[bool, typer.Option(help="also run a worker for the submissions")] = False,
          workers: Annotated[int, typer.Option(min=1, max=64, help="server processes")] = 1):
    """Serve the API (OpenAPI at /api/openapi.json, docs at /api/docs) until stopped."""
    _settings()  # a bad setting is reported here, before anything starts
    server = [sys.executable, "-m", "medarena.api", "--host", host, "--port", str(port), "--workers", str(workers)]
    console.print(f"medarena API: http://{host}:{port}/api/docs  (Ctrl-C stops it)")
    if not with_worker:  # the server takes this process over, without the modules the command line imported
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, server)
    worker = subprocess.Popen([sys.executable, "-m", "medarena.cli", "worker", "--poll", "2"])
    process = subprocess.Popen(server)
    try:
        process.wait()
    finally:
        for child in (process, worker):
            child.terminate()
            child.wait(30)


# ------------------------------------------------------------- logging in

@fails_cleanly
def login(url: Annotated[str, typer.Argument(help="the server, e.g. http://127.0.0.1:8000")],
          username: Annotated[str | None, typer.Option("--username", "-u")] = None,
          password_stdin: Annotated[bool, typer.Option(help="read the password from standard input")] = False):
    """Log in to a medarena server; the token is kept in a file only you can read."""
    username = username or typer.prompt("user name")
    password = sys.stdin.readline().rstrip("\n") if password_stdin else typer.prompt("password", hide_input=True)
    token = remote.Client.login(url, username, password)
    path = remote.save_credentials(remote.Credentials(url.rstrip("/"), token, username))
    console.print(Text(f"logged in to {url} as {username} (token kept in {path})"))


@fails_cleanly
def logout():
    """Forget the login (the server revokes its token)."""
    credentials = remote.load_credentials()
    if credentials is not None:
        client = remote.Client(credentials.url, credentials.token)
        try:
            client.call("POST", "/api/v1/auth/logout")
        except Exception:  # noqa: BLE001 - logging out works even when the server is gone
            pass
        finally:
            client.close()
    console.print("logged out" if remote.forget_credentials() else "not logged in")


def connected() -> remote.Client | None:
    credentials = remote.load_credentials()
    return remote.Client(credentials.url, credentials.token) if credentials else None


# ------------------------------------------------------------- submitting

def submit(client: remote.Client, image: str, challenge: str, phase: str, comment: str, follow: bool,
           model: Path | None = None) -> None:
    """Upload the model tarball (if any) and the image in parts, then submit them together."""
    if model is not None and not Path(model).is_file():
        raise InvalidInput(f"model tarball {model}: no such file")
    model_upload = _upload(client, Path(model), challenge, phase, "model") if model is not None else None
    path = _as_tarball(image)
    upload = _upload(client, path, challenge, phase, "image")
    body = {"upload_id": upload["id"], "comment": comment}
    if model_upload is not None:
        body["model_upload_id"] = model_upload["id"]
    submission = client.call("POST", f"/api/v1/challenges/{challenge}/phases/{phase}/submissions", json=body)
    for done in (upload, model_upload):
        if done is not None:
            _forget_upload(challenge, phase, done["sha256"])
    console.print(Text(f"submission {submission['id']} queued ({upload['image_digest'][:19]})"
                       + (f" with model {model_upload['model_digest'][:19]}" if model_upload else "")))
    if follow:
        follow_submission(client, submission["id"])


def _upload(client: remote.Client, path: Path, challenge: str, phase: str, kind: str) -> dict[str, Any]:
    """A file sent in parts (resuming an upload of it begun earlier) and completed on the server."""
    progress = _bytes_progress()
    with progress:
        size = path.stat().st_size
        task = progress.add_task(f"{kind} checksum", total=size)
        sha = remote.file_sha256(path, lambda n: progress.advance(task, n))
        upload = _resume_or_create(client, challenge, phase, path, size, sha, kind)
        done = (upload["parts_received"] or 0) * upload["part_size"]
        progress.update(task, description=f"{kind} upload", completed=min(done, size))
        upload = remote.send_parts(client, path, upload, lambda n: progress.advance(task, n))
        progress.update(task, completed=size)
    console.print(f"checking the {'image' if kind == 'image' else 'model tarball'} on the server", style="dim")
    return client.call("POST", f"/api/v1/uploads/{upload['id']}/complete", timeout=1800)


def _as_tarball(image: str) -> Path:
    """A tarball as given, or a local image exported with podman (or docker) save."""
    path = Path(image)
    if path.is_file():
        return path
    if image.endswith((".tar", ".tar.gz", ".tgz", ".tar.xz")):
        raise InvalidInput(f"{image}: no such file")
    engine = shutil.which("podman") or shutil.which("docker")
    if engine is None:
        raise PlatformFault("neither podman nor docker is installed to export the image; give a tarball instead")
    folder = _cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (re.sub(r"[^A-Za-z0-9_.-]", "_", image)[:100] + ".tar")
    env = dict(os.environ)
    if engine.endswith("podman"):
        from medarena.services.containers import podman_env

        env = podman_env()
    with console.status(f"exporting {image} with {Path(engine).name} save"):
        result = subprocess.run([engine, "save", "-o", str(target) + ".tmp", image], capture_output=True, text=True,
                                env=env, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        Path(str(target) + ".tmp").unlink(missing_ok=True)
        last = (result.stderr.strip().splitlines() or ["failed"])[-1].removeprefix("Error: ")
        raise InvalidInput(f"{image}: not a file, and {Path(engine).name} cannot export it as an image: {last}")
    os.replace(str(target) + ".tmp", target)
    return target


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "medarena"


def _uploads_file() -> Path:
    return remote.config_dir() / "uploads.json"


def _load_uploads() -> dict[str, str]:
    try:
        return json.loads(_uploads_file().read_text())
    except (OSError, ValueError):
        return {}


def _key(challenge: str, phase: str, sha: str) -> str:
    return f"{challenge}/{phase}/{sha}"


def _remember_upload(challenge: str, phase: str, sha: str, upload_id: str) -> None:
    uploads = _load_uploads()
    uploads[_key(challenge, phase, sha)] = upload_id
    remote.config_dir().mkdir(parents=True, exist_ok=True, mode=0o700)
    _uploads_file().write_text(json.dumps(uploads))


def _forget_upload(challenge: str, phase: str, sha: str) -> None:
    uploads = _load_uploads()
    if uploads.pop(_key(challenge, phase, sha), None) is not None:
        _uploads_file().write_text(json.dumps(uploads))


def _resume_or_create(client: remote.Client, challenge: str, phase: str, path: Path, size: int, sha: str,
                      kind: str = "image"):
    known = _load_uploads().get(_key(challenge, phase, sha))
    if known:
        try:
            upload = client.call("GET", f"/api/v1/uploads/{known}")
            if upload["state"] in HELD_UPLOAD and upload.get("kind", "image") == kind:
                err.print(f"resuming upload {known} at part {upload['next_part']}", style="dim")
                return upload
        except (NotFound, remote.errors.Conflict):
            pass
    upload = client.call("POST", f"/api/v1/challenges/{challenge}/phases/{phase}/uploads",
                         json={"size": size, "sha256": sha, "filename": path.name[:255], "kind": kind})
    _remember_upload(challenge, phase, sha, upload["id"])
    return upload


def _bytes_progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeElapsedColumn(), console=err)


# ------------------------------------------------------------- following

def follow_submission(client: remote.Client, submission_id: int, poll: float = 2.0) -> dict[str, Any]:
    """Print each case as it ends, then the scores and the rank."""
    seen: set[str] = set()
    while True:
        data = client.call("GET", f"/api/v1/submissions/{submission_id}")
        for case in data["cases"]:
            if case["state"] in FINAL and case["case"] not in seen:
                seen.add(case["case"])
                line = Text(f"  {case['case']}: {case['state']}")
                if case.get("reason"):
                    line.append(f" ({case['reason']})")
                if case.get("runtime_seconds") is not None:
                    line.append(f" {case['runtime_seconds']:.1f} s")
                console.print(line)
        if data["state"] in FINAL:
            break
        time.sleep(poll)
    console.print(Text(f"submission {submission_id}: {data['state']}"))
    _print_scores(data)
    return data


def _print_scores(data: dict[str, Any]) -> None:
    for label, metrics in (data.get("aggregates") or {}).items():
        for metric, stats in metrics.items():
            if isinstance(stats, dict) and stats.get("mean") is not None:
                console.print(Text(f"{metric} ({label}): mean {stats['mean']:.4g}" if label not in ("", "None")
                                   else f"{metric}: mean {stats['mean']:.4g}"))
    rank = data.get("rank")
    if rank:
        console.print(Text(f"rank {rank['rank']} of {rank['of']}" + (
            f" (bootstrap interval {rank['rank_low']:g}-{rank['rank_high']:g})"
            if rank.get("rank_low") is not None else "")))


# ------------------------------------------------------------- status, results, cancel

def status(client: remote.Client, challenge: str | None) -> None:
    rows = client.call("GET", "/api/v1/submissions", params={"challenge": challenge} if challenge else None)
    table = Table("id", "challenge/phase", "participant", "state", "cases", "submitted")
    for row in rows:
        counts = ", ".join(f"{n} {state}" for state, n in sorted(row["case_counts"].items())) or "-"
        table.add_row(str(row["id"]), Text(f"{row['challenge']}/{row['phase']}"), Text(row["participant"]),
                      row["state"], counts, row["created_at"][:19].replace("T", " "))
    console.print(table)


def results(client: remote.Client, submission_id: int, output: Path | None, logs: bool) -> None:
    data = client.call("GET", f"/api/v1/submissions/{submission_id}")
    names = sorted({k for c in data["cases"] for r in c.get("metrics", []) for k in r if k != "label"})
    figures = "compute" in data  # the caller's own submission, or an organizer
    table = Table("case", "state", "reason", "runtime s", *(CASE_HEADERS if figures else ()), "label", *names,
                  "detail")
    for case in data["cases"]:
        for row in case.get("metrics") or [{}]:
            table.add_row(Text(case["case"]), case["state"], case.get("reason") or "",
                          f"{case['runtime_seconds']:.1f}" if case.get("runtime_seconds") is not None else "",
                          *(case_cells(case) if figures else ()), Text(str(row.get("label") or "")),
                          *[_fmt(row.get(m)) for m in names],
                          Text(case.get("detail") or ""))
    console.print(table)
    if figures:
        console.print(Text(totals_line(data["compute"])))
    _print_scores(data)
    if logs:
        for case in client.call("GET", f"/api/v1/submissions/{submission_id}/logs")["cases"]:
            if case["state"] == JobState.FAILED and (case["stdout"].strip() or case["stderr"].strip()):
                console.rule(Text(f"{case['case']}: {case['reason']}"))
                for name in ("stdout", "stderr"):
                    if case[name].strip():
                        console.print(Text(name, style="bold"))
                        console.print(_visible(case[name].rstrip()))
    if output:
        output.write_text(json.dumps(data, indent=2))


def _visible(text: str) -> Text:
    """Participant text shown as plain text, with control characters made visible."""
    return Text("".join(c if c in "\n\t" or c.isprintable() else f"\\x{ord(c):02x}" for c in text))


def _fmt(value) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def cancel(client: remote.Client, submission_id: int) -> None:
    data = client.call("POST", f"/api/v1/submissions/{submission_id}/cancel")
    console.print(f"cancelled submission {submission_id} ({data['cases_cancelled']} cases not run)")
