"""What every endpoint needs: the settings, and who is calling."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response
from fastapi.security import OAuth2PasswordBearer
from starlette.concurrency import run_in_threadpool

from medarena.accounts.tokens import Identity
from medarena.services import callers
from medarena.services.settings import Settings

bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


async def get_settings(request: Request) -> Settings:  # async, as get_caller: no hop to a thread
    return request.app.state.settings


async def get_caller(request: Request, token: Annotated[str | None, Depends(bearer)]) -> Identity | None:
    """The caller behind the bearer token (a login token or a personal one); None when anonymous.
    A token that is sent but not valid is refused, never taken as anonymous. A token accepted in
    the last few seconds is answered from memory (:mod:`medarena.services.callers` says what
    that may delay); otherwise the database is read on the event loop (a thread per check waited
    for the interpreter lock behind every request the loop served), and the token's
    ``last_used_at``, due once a minute, is written in a thread the answer does not wait for."""
    if token is None:
        return None
    settings = request.app.state.settings
    caller = callers.cached(settings, token)
    if caller is None:
        caller, stale = callers.check(settings, token)  # reads only: on the event loop
        if stale:  # a write may wait for another writer: in a thread, and the answer does not wait for it
            _record_use(settings, caller.token_id)
    return caller


_recording: set[asyncio.Task] = set()  # held until done (the loop keeps only weak references)


def _record_use(settings: Settings, token_id: int) -> None:
    task = asyncio.ensure_future(run_in_threadpool(callers.record_use, settings, token_id))
    _recording.add(task)
    task.add_done_callback(_recorded)


def _recorded(task: asyncio.Task) -> None:
    _recording.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a use not recorded now is recorded at the next check


SettingsDep = Annotated[Settings, Depends(get_settings)]
CallerDep = Annotated[Identity | None, Depends(get_caller)]


class JSONBytes(Response):
    """An answer already encoded as JSON (by a cache of the services), sent as it is."""

    media_type = "application/json"
