"""Where the platform keeps its database, store and scratch space, read from the environment."""

from medarena.platform.settings import Settings, load_settings

__all__ = ["Settings", "load_settings"]
