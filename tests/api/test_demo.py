"""`medarena demo` as a service: server, worker and dashboard start, the examples arrive through the
API as the demo participants, and Ctrl-C stops all three."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.api.conftest import REPO, free_port


@pytest.mark.podman
@pytest.mark.slow
def test_demo_starts_three_processes_submits_through_the_api_and_stops_on_ctrl_c(tmp_path, example_images):
    api_port = free_port()
    dashboard_port = next(p for p in iter(free_port, None) if p != api_port)
    env = dict(os.environ, MEDARENA_HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO), COLUMNS="200",
               XDG_CACHE_HOME=str(tmp_path / "cache"), PYTHONUNBUFFERED="1")
    for name in ("MEDARENA_DATABASE_URL", "MEDARENA_STORE", "MEDARENA_RAY_ADDRESS", "RAY_ADDRESS"):
        env.pop(name, None)
    log = tmp_path / "demo.log"
    with log.open("w") as handle:
        demo = subprocess.Popen([sys.executable, "-m", "medarena.cli", "demo", "--api-port", str(api_port),
                                 "--port", str(dashboard_port)], env=env, cwd=str(REPO), stdout=handle,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and demo.poll() is None:
            if "Ctrl-C stops the server" in log.read_text():
                break
            time.sleep(1)
        time.sleep(1)
        text = log.read_text()
        assert "Ctrl-C stops the server, the worker and the dashboard" in text, (demo.poll(), text)
        assert f"http://127.0.0.1:{api_port}/api/docs" in text and f"http://127.0.0.1:{dashboard_port}" in text
        passwords = dict(re.findall(r"│ (\w+)\s+│ [^│]+│ (\S+)\s+│", text))
        assert set(passwords) == {"admin", "organizer", "alice", "bob", "mallory"}, text
        for user in ("alice", "bob", "mallory"):
            assert f"{user} submitted " in text and " through the API: submission " in text

        api = f"http://127.0.0.1:{api_port}"
        token = httpx.post(f"{api}/api/v1/auth/token",
                           data={"username": "organizer", "password": passwords["organizer"]}).json()["access_token"]
        rows = httpx.get(f"{api}/api/v1/submissions", headers={"Authorization": f"Bearer {token}"}).json()
        assert sorted(r["participant"] for r in rows) == ["alice", "bob", "mallory"]
        assert httpx.get(f"http://127.0.0.1:{dashboard_port}", timeout=30).status_code == 200

        demo.send_signal(signal.SIGINT)
        assert demo.wait(60) == 0
        for port in (api_port, dashboard_port):
            with pytest.raises(httpx.TransportError):
                httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(60)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait()
