"""Answers computed once per version of what they are computed from.

A reader asks the database for a small *version* (counts, largest ids and timestamps of the rows
an answer is built from: one cheap aggregate query), then takes the answer from here when that
version was seen before, or builds it and keeps it. The version is read before the rows, so an
answer built from rows newer than its version is only ever found under an older version, which
the next reader no longer asks for. What the caller may see is decided per request, after the
cache: an entry holds the whole answer, and each caller gets it filtered by their own view.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import date, datetime
from typing import Any


class VersionedCache:
    """A bounded least-recently-used map of key -> (version, value), safe across threads."""

    def __init__(self, size: int):
        self.size = size
        self._entries: OrderedDict[Hashable, tuple[Hashable, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.builds = 0  # how many answers were built rather than found (for tests and benchmarks)

    def get(self, key: Hashable, version: Hashable, build: Callable[[], Any] | None) -> Any:
        """The value kept for ``key`` at ``version``; else ``build()``'s, kept (None when no ``build``)."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None and found[0] == version:
                self._entries.move_to_end(key)
                return found[1]
        if build is None:
            return None
        value = build()  # outside the lock: two readers may build the same answer, never a wrong one
        with self._lock:
            self.builds += 1
            self._entries[key] = (version, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def to_json(data: Any) -> bytes:
    """JSON as the API writes it (compact, UTF-8, ISO dates, no NaN)."""
    return json.dumps(data, default=_plain, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
