"""Fixtures shared by the whole suite: one local Ray per session, a fresh data root per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("CONTAINERS_CONF", str(REPO / "infra" / "containers.conf"))


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray with 2 CPUs and 2 logical GPUs (scheduling by GPU is testable without one)."""
    import ray

    ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh MEDARENA_HOME with its own SQLite database and stores; returns the settings."""
    from medarena.platform.settings import load_settings

    monkeypatch.setenv("MEDARENA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MEDARENA_DATABASE_URL", raising=False)
    monkeypatch.delenv("MEDARENA_STORE", raising=False)
    return load_settings()
