"""Fixtures of the dashboard tests: the filled database and store (see filled_db), and the
environment that points the dashboard at them."""

from __future__ import annotations

import pytest

from medarena.dashboard.data import Viewer
from medarena.platform.settings import Settings
from medarena.services import accounts
from tests.dashboard.filled_db import PASSWORDS, Filled, fill, store_case_images


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


@pytest.fixture(scope="session")
def viewers(filled: Filled) -> dict[str | None, Viewer]:
    """Who looks, by user name (None: anonymous), each logged in through the accounts service."""
    settings = Settings(home=filled.home, database_url=filled.url, store=filled.store, ray_address=None)
    result: dict[str | None, Viewer] = {None: Viewer(settings)}
    for name, password in PASSWORDS.items():
        token = accounts.login(settings, name, password, "tests")
        result[name] = Viewer(settings, accounts.authenticate(settings, token))
    return result
