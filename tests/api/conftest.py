"""An API server (`medarena serve` under uvicorn, a subprocess on a loopback port) over a
database seeded with two challenges, six kinds of callers and submissions in every state."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from medarena.platform.settings import Settings
from tests.api.world import World, seed_world
from tests.platform.conftest import example_images  # noqa: F401 - the example algorithm images
from tests.platform.test_postgres import postgres_url  # noqa: F401 - the suite's PostgreSQL

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    settings: Settings
    process: subprocess.Popen
    log: Path
    env: dict = field(default_factory=dict)

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


def server_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ, MEDARENA_HOME=str(settings.home), MEDARENA_DATABASE_URL=settings.database_url,
               MEDARENA_STORE=settings.store, PYTHONPATH=str(REPO), **extra)
    env.pop("MEDARENA_RAY_ADDRESS", None)
    env.pop("RAY_ADDRESS", None)
    return env


def start_server(settings: Settings, log: Path, serve_args: tuple[str, ...] = (), **extra: str) -> Server:
    port = free_port()
    env = server_env(settings, **extra)
    handle = log.open("w")
    process = subprocess.Popen([sys.executable, "-m", "medarena.cli", "serve", "--port", str(port), *serve_args],
                               env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=str(REPO))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"medarena serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return Server(url, settings, process, log, env)
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError(f"medarena serve did not answer within 180 s:\n{log.read_text()}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(20)
    except subprocess.TimeoutExpired:
        server.process.kill()


def settings_for(home: Path, database_url: str | None = None) -> Settings:
    return Settings(home=home, database_url=database_url or f"sqlite:///{home / 'medarena.db'}",
                    store=str(home / "store"), ray_address=None)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request, tmp_path_factory) -> Iterator[tuple[Server, World]]:
    home = tmp_path_factory.mktemp("api-home")
    url = None
    if request.param == "postgresql":
        import glob

        if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
            pytest.skip("PostgreSQL is not installed")
        url = _fresh_pg_database(request.getfixturevalue("postgres_url"))
    settings = settings_for(home, url)
    seeded = seed_world(settings, home)
    server = start_server(settings, home / "server.log", MEDARENA_UPLOADS_PER_USER="100")
    yield server, seeded
    stop_server(server)


def _fresh_pg_database(base_url: str) -> str:
    import uuid

    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    name = f"api_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)
