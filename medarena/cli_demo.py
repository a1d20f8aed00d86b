"""`medarena demo`: the demo challenge as a service. It starts the API server, a worker and the
dashboard, creates the demo accounts (printing their passwords), submits the example algorithms
through the API as the demo participants, prints the three addresses, and stops all three on
Ctrl-C (or SIGTERM)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table
from rich.text import Text

from medarena import client as remote
from medarena.cli_remote import _as_tarball
from medarena.errors import PlatformFault

console = Console()
ORGANIZER, ADMIN = "organizer", "admin"


def run(api_port: int = 8000, dashboard_port: int = 8501, host: str = "127.0.0.1", task: str = "segmentation",
        cases: int | None = None) -> None:
    from medarena.services import demo as demo_module
    from medarena.services.settings import load_settings

    settings = load_settings()
    demo = demo_module.get_demo(task)
    _prepare_challenge(settings, demo, cases)
    passwords = _accounts(settings, demo)
    children = _start(api_port, dashboard_port, host)
    stop = _stopper(children)
    signal.signal(signal.SIGTERM, _interrupt)  # a SIGTERM stops the three like Ctrl-C does
    try:
        api = f"http://{host}:{api_port}"
        _wait_for(api, children)
        _submit_examples(api, demo, passwords)
        table = Table("user", "role", "password", title="demo accounts (new passwords each start)")
        for user, (role, password) in passwords.items():
            table.add_row(user, role, password)
        console.print(table)
        console.print(Text(f"API:       {api}/api/docs\nOpenAPI:   {api}/api/openapi.json\n"
                           f"dashboard: http://{host}:{dashboard_port}\n"
                           f"participant command line: medarena login {api} -u alice"))
        console.print("Ctrl-C stops the server, the worker and the dashboard")
        while all(child.poll() is None for child in children.values()):
            time.sleep(1)
        ended = [name for name, child in children.items() if child.poll() is not None]
        raise PlatformFault(f"the {', '.join(ended)} stopped; stopping the others")
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        stop()


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def _prepare_challenge(settings, demo, cases: int | None) -> None:
    from medarena.services import local
    from medarena.services.demo import PHASE

    local.create_challenge(settings, demo.definition)
    if not local.phase_has_cases(settings, demo.challenge, PHASE):
        source = demo.write_source(settings.home / "demo-source" / demo.task, cases or demo.cases)
        console.print(f"ingested {local.ingest_phase(settings, demo.challenge, PHASE, source)} demo cases")


def _accounts(settings, demo) -> dict[str, tuple[str, str]]:
    """Create the demo accounts, or give them new passwords: user -> (role, password)."""
    from medarena.errors import Conflict
    from medarena.services import accounts

    wanted = {ADMIN: "site admin", ORGANIZER: f"organizer of {demo.challenge}",
              **{name: f"participant of {demo.challenge}" for name in demo.algorithms}}
    passwords = {}
    for user, role in wanted.items():
        password = secrets.token_urlsafe(9)
        try:
            accounts.add_user(settings, user, password, admin=user == ADMIN)
        except Conflict:
            accounts.set_password(settings, user, password)
        if user == ORGANIZER:
            accounts.grant_role(settings, user, demo.challenge, "organizer")
        elif user != ADMIN:
            accounts.grant_role(settings, user, demo.challenge, "participant")
        passwords[user] = (role, password)
    return passwords


def _die_with_parent(sig: int = signal.SIGTERM):
    """Linux: the child gets ``sig`` when the demo itself dies, even by SIGKILL."""

    def set_death_signal() -> None:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, sig)

    return set_death_signal if sys.platform == "linux" else None


def _start(api_port: int, dashboard_port: int, host: str) -> dict[str, subprocess.Popen]:
    """Each in a process group of its own: Ctrl-C reaches this process, which stops them in order."""
    command = [sys.executable, "-m", "medarena.cli"]
    options = {"start_new_session": True, "preexec_fn": _die_with_parent()}
    return {
        "API server": subprocess.Popen([*command, "serve", "--host", host, "--port", str(api_port)], **options),
        # Ray's driver handles SIGTERM itself: an orphaned worker is killed outright
        "worker": subprocess.Popen([*command, "worker", "--poll", "2"], stdout=subprocess.DEVNULL,
                                   start_new_session=True, preexec_fn=_die_with_parent(signal.SIGKILL)),
        "dashboard": subprocess.Popen([*command, "dashboard", "--port", str(dashboard_port), "--address", host],
                                      stdout=subprocess.DEVNULL, **options),
    }


def _stopper(children: dict[str, subprocess.Popen]):
    def stop() -> None:
        for child in children.values():
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for child in children.values():
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()

    return stop


def _wait_for(api: str, children) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if children["API server"].poll() is not None:
            raise PlatformFault("the API server did not start")
        try:
            if httpx.get(f"{api}/api/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.3)
    raise PlatformFault(f"the API server did not answer at {api} within 120 s")


def _submit_examples(api: str, demo, passwords: dict[str, tuple[str, str]]) -> None:
    """Each demo participant submits their example image through the API, once."""
    from medarena.services.demo import IMAGE, PHASE

    for user, algorithm in demo.algorithms.items():
        image = IMAGE.format(algorithm)
        token = remote.Client.login(api, user, passwords[user][1])
        client = remote.Client(api, token)
        try:
            mine = client.call("GET", "/api/v1/submissions", params={"challenge": demo.challenge})
            if mine:
                continue
            path = _as_tarball(image)
            with console.status(f"{user} uploads {image}"):
                upload = client.call("POST", f"/api/v1/challenges/{demo.challenge}/phases/{PHASE}/uploads",
                                     json={"size": path.stat().st_size, "sha256": remote.file_sha256(path),
                                           "filename": Path(path).name})
                upload = remote.send_parts(client, path, upload)
                client.call("POST", f"/api/v1/uploads/{upload['id']}/complete", timeout=1800)
                submission = client.call("POST", f"/api/v1/challenges/{demo.challenge}/phases/{PHASE}"
                                         "/submissions", json={"upload_id": upload["id"],
                                                                "comment": f"example algorithm {image}"})
            console.print(Text(f"{user} submitted {image} through the API: submission {submission['id']}"))
        finally:
            client.close()
