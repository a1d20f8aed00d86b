"""The FastAPI application: routers, error answers, body limits, and the upload sweeper."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from medarena import __version__
from medarena.api.limits import BodyLimit
from medarena.api.routers import auth, challenges, submissions
from medarena.errors import MedarenaError, Unauthenticated
from medarena.evaluators.ranking import RankingError
from medarena.services import uploads
from medarena.services.settings import Settings, load_settings

SWEEP_SECONDS = 600


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(uploads.prepare_storage, settings)
        sweeper = asyncio.create_task(_sweep_forever(settings))
        yield
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper

    app = FastAPI(title="medarena", version=__version__, openapi_url="/api/openapi.json", docs_url="/api/docs",
                  redoc_url=None, swagger_ui_oauth2_redirect_url="/api/docs/oauth2-redirect", lifespan=lifespan,
                  description="Medical-imaging challenges: accounts, challenges, uploads in parts, submissions, "
                              "leaderboards. Errors are `{\"detail\": \"...\"}` with their status code.")
    app.state.settings = settings
    app.add_middleware(BodyLimit)
    for router in (auth.router, challenges.router, submissions.router):
        app.include_router(router)
    app.add_api_route("/api/health", health, methods=["GET"], tags=["server"])
    app.add_exception_handler(MedarenaError, _medarena_error)
    app.add_exception_handler(ValueError, _ranking_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    return app


def health() -> dict[str, str]:
    return {"status": "ok"}


async def _sweep_forever(settings: Settings) -> None:
    while True:
        with contextlib.suppress(Exception):  # a sweep that fails is tried again at the next tick
            await run_in_threadpool(uploads.sweep_expired, settings)
        await asyncio.sleep(SWEEP_SECONDS)


async def _medarena_error(request: Request, exc: MedarenaError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else None
    return JSONResponse({"detail": str(exc)}, status_code=exc.http_status, headers=headers)


async def _ranking_error(request: Request, exc: ValueError) -> JSONResponse:
    """A ranking that cannot be computed is the organizer's to fix (422); any other ValueError is
    a fault, answered as before. (Imported here: the ranking's module brings SciPy and pandas.)"""

    if not isinstance(exc, RankingError):
        raise exc
    return JSONResponse({"detail": str(exc)}, status_code=422)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """One line naming the field (or the body) and what is wrong."""
    first = exc.errors()[0]
    loc = [str(p) for p in first.get("loc", ())]
    if first.get("type") == "json_invalid":
        message = "body: not valid JSON"
    elif first.get("type") == "extra_forbidden":
        message = f"{'.'.join(loc)}: unknown field"
    else:
        message = f"{'.'.join(loc)}: {first.get('msg', 'invalid')}"
    return JSONResponse({"detail": message}, status_code=422)
