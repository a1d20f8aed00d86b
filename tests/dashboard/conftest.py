"""Fixtures of the dashboard tests: the filled database and store (see filled_db), and the
environment that points the dashboard at them."""

from __future__ import annotations

import pytest

from tests.dashboard.filled_db import Filled, fill, store_case_images


@pytest.fixture(scope="session")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Filled:
    home = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{home}/t.db"
    ids = fill(url)
    store = str(home / "store")
    store_case_images(store, ids["bob"])
    return Filled(url=url, home=home, store=store, ids=ids)


@pytest.fixture
def dashboard_env(filled: Filled, monkeypatch: pytest.MonkeyPatch) -> Filled:
    monkeypatch.setenv("MEDARENA_HOME", str(filled.home))
    monkeypatch.setenv("MEDARENA_DATABASE_URL", filled.url)
    monkeypatch.setenv("MEDARENA_STORE", filled.store)
    return filled
