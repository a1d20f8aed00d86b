"""Where medarena keeps its state: one data root, overridable piece by piece by environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    store: str  # a local folder or an fsspec URL holding the case and prediction stores
    ray_address: str | None
    store_is_shared: bool = False  # MEDARENA_STORE was given (a cluster needs storage all nodes reach)
    container_backend: str = "podman"  # or "fake": programs in-process, for fast tests

    @property
    def scratch(self) -> Path:
        return self.home / "scratch"


def load_settings() -> Settings:
    """Read MEDARENA_HOME (default ./.medarena), MEDARENA_DATABASE_URL, MEDARENA_STORE and
    MEDARENA_RAY_ADDRESS (or RAY_ADDRESS) and MEDARENA_CONTAINER_BACKEND (podman by default)."""
    home = Path(os.environ.get("MEDARENA_HOME", ".medarena")).absolute()
    url = os.environ.get("MEDARENA_DATABASE_URL") or f"sqlite:///{home / 'medarena.db'}"
    store = os.environ.get("MEDARENA_STORE") or str(home / "store")
    ray_address = os.environ.get("MEDARENA_RAY_ADDRESS") or os.environ.get("RAY_ADDRESS")
    return Settings(home=home, database_url=url, store=store, ray_address=ray_address,
                    store_is_shared=bool(os.environ.get("MEDARENA_STORE")),
                    container_backend=os.environ.get("MEDARENA_CONTAINER_BACKEND") or "podman")
