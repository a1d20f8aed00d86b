"""Uploads of image tarballs in parts, and submissions."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from starlette.concurrency import run_in_threadpool

from medarena.api.deps import CallerDep, JSONBytes, SettingsDep
from medarena.api.schemas import SubmissionCreate, UploadCreate
from medarena.services import submissions, uploads

router = APIRouter(prefix="/api/v1", tags=["submissions"])
WRITE_BLOCK = 4 << 20  # per hand-off to a thread: fewer hand-offs, at most two blocks held per request


@router.post("/challenges/{slug}/phases/{phase}/uploads", status_code=201)
def create_upload(slug: str, phase: str, body: UploadCreate, settings: SettingsDep,
                  caller: CallerDep) -> dict[str, Any]:
    """Start an upload of an image or a model tarball: its size and SHA-256; the answer says the
    part size and count."""
    return uploads.create_upload(settings, caller, slug, phase, body.size, body.sha256, body.part_size,
                                 body.filename, kind=body.kind)


@router.get("/uploads/{upload_id}")
def get_upload(upload_id: str, settings: SettingsDep, caller: CallerDep) -> dict[str, Any]:
    """An upload's state: which parts are in (``next_part``), to resume after a dropped connection."""
    return uploads.get_upload(settings, caller, upload_id)


@router.put("/uploads/{upload_id}/parts/{index}")
async def put_part(upload_id: str, index: int, request: Request, settings: SettingsDep, caller: CallerDep,
                   x_part_sha256: Annotated[str | None, Header()] = None) -> dict[str, Any]:
    """One part, in order, as the raw request body with its SHA-256 in ``X-Part-SHA256``."""
    length = request.headers.get("content-length")
    writer = await run_in_threadpool(uploads.begin_part, settings, caller, upload_id, index, x_part_sha256,
                                     int(length) if length and length.isdigit() else None)
    try:
        await _receive(request, writer)
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    return await run_in_threadpool(uploads.get_upload, settings, caller, upload_id)


async def _receive(request: Request, writer: uploads.PartWriter) -> None:
    """Hand the body to the writer about :data:`WRITE_BLOCK` bytes at a time, in a thread (hashing
    and writing release the GIL), while the next block arrives; at most two blocks are held, as the
    chunks they arrived in (joining them would copy every byte once more)."""
    pending: asyncio.Task | None = None
    chunks: list[bytes] = []
    held = 0
    try:
        async for chunk in request.stream():
            chunks.append(chunk)
            held += len(chunk)
            if held >= WRITE_BLOCK:
                if pending is not None:
                    await pending
                pending = asyncio.ensure_future(run_in_threadpool(writer.write_all, chunks))
                chunks, held = [], 0
        if pending is not None:
            await pending
        if held:
            await run_in_threadpool(writer.write_all, chunks)
    finally:
        if pending is not None:
            await asyncio.wait({pending})  # the writer is aborted only once no block is being written
            if not pending.cancelled():
                pending.exception()  # retrieved: a failure is answered once, never logged as lost


@router.post("/uploads/{upload_id}/complete")
def complete_upload(upload_id: str, settings: SettingsDep, caller: CallerDep) -> dict[str, Any]:
    """Check the whole file's SHA-256 and that it is an image archive (or a model tarball); then it
    can be submitted."""
    return uploads.complete_upload(settings, caller, upload_id)


@router.post("/challenges/{slug}/phases/{phase}/submissions", status_code=201)
def submit(slug: str, phase: str, body: SubmissionCreate, settings: SettingsDep,
           caller: CallerDep) -> dict[str, Any]:
    """Submit a completed image upload to the phase, with a completed model upload if it has one."""
    return submissions.submit(settings, caller, slug, phase, body.upload_id, body.comment, body.model_upload_id)


@router.get("/submissions")
def list_submissions(settings: SettingsDep, caller: CallerDep,
                     challenge: str | None = Query(default=None, max_length=64),
                     phase: str | None = Query(default=None, max_length=64)) -> list[dict[str, Any]]:
    """The caller's submissions, and all of the challenges they organize."""
    return submissions.list_submissions(settings, caller, challenge, phase)


@router.get("/submissions/{submission_id}", response_class=JSONBytes)
async def get_submission(submission_id: int, settings: SettingsDep, caller: CallerDep) -> JSONBytes:
    """State, per-case states, reasons, runtimes and metrics, as far as the caller may see them."""
    # a kept answer is found on the event loop; one to build is built in a thread
    answer = submissions.submission_json(settings, caller, submission_id, only_kept=True)
    if answer is None:
        answer = await run_in_threadpool(submissions.submission_json, settings, caller, submission_id)
    return JSONBytes(answer)


@router.get("/submissions/{submission_id}/logs")
def get_logs(submission_id: int, settings: SettingsDep, caller: CallerDep) -> dict[str, Any]:
    return submissions.get_logs(settings, caller, submission_id)


@router.post("/submissions/{submission_id}/cancel")
def cancel(submission_id: int, settings: SettingsDep, caller: CallerDep) -> dict[str, Any]:
    return submissions.cancel(settings, caller, submission_id)


@router.post("/submissions/{submission_id}/reevaluate")
def reevaluate(submission_id: int, settings: SettingsDep, caller: CallerDep) -> dict[str, Any]:
    """Organizers: score the stored predictions again (a worker does it; nothing reruns)."""
    return submissions.reevaluate(settings, caller, [submission_id])
