"""What every endpoint needs: the settings, and who is calling."""

from __future__ import annotations

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
    that may delay); otherwise the database is asked, in a thread."""
    if token is None:
        return None
    settings = request.app.state.settings
    return callers.cached(settings, token) or await run_in_threadpool(callers.authenticate, settings, token)


SettingsDep = Annotated[Settings, Depends(get_settings)]
CallerDep = Annotated[Identity | None, Depends(get_caller)]


class JSONBytes(Response):
    """An answer already encoded as JSON (by a cache of the services), sent as it is."""

    media_type = "application/json"
