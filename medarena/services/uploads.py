"""Image and model tarballs uploaded in parts: declared size and SHA-256 up front, parts in
order, each checked by its SHA-256 and streamed to disk, resumable, capped per phase (a model by
the tarball cap) and per user, verified whole on completion, then loaded as an image or checked
and stored as a model tarball; abandoned uploads expire and free their space.

The bytes of an upload are one file ``<home>/uploads/<id>/data``; part ``i`` lies at
``i * part_size``. Parts arrive in order, so the file's length says which parts are in (a part
cut short by a dropped connection is cut off again). A lock file serialises the requests that
write one upload, across server processes. Parts are not fsynced: a part lost by a crash of the
machine shows as a shorter file (so it is asked for again), and the whole file's SHA-256 is
checked before anything uses it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from medarena.accounts.tokens import Identity
from medarena.errors import Conflict, InvalidInput, PayloadTooLarge, TooManyRequests
from medarena.platform import compute, tarballs
from medarena.platform.account_tables import Upload
from medarena.platform.challenges import PhaseDefinition
from medarena.platform.database import Challenge, Phase, session_scope, utcnow
from medarena.platform.runner import ImageError, load_image
from medarena.platform.settings import Settings
from medarena.platform.states import HELD_UPLOAD, UploadState, transition
from medarena.platform.submissions import find_phase
from medarena.services import access

MIN_PART = 64 << 10
MAX_PART = 64 << 20
DEFAULT_PART = 16 << 20
SHA256 = re.compile(r"^[0-9a-f]{64}$")
HELD = HELD_UPLOAD  # states that hold a user's quota
KINDS = ("image", "model")


@dataclass(frozen=True)
class Quotas:
    per_user_count: int = int(os.environ.get("MEDARENA_UPLOADS_PER_USER", "4"))
    per_user_bytes: int = int(os.environ.get("MEDARENA_UPLOAD_BYTES_PER_USER", str(64 << 30)))
    lifetime: dt.timedelta = field(default_factory=lambda: dt.timedelta(
        hours=float(os.environ.get("MEDARENA_UPLOAD_HOURS", "24"))))


def uploads_root(settings: Settings) -> Path:
    return settings.home / "uploads"


def _folder(settings: Settings, upload_id: str) -> Path:
    return uploads_root(settings) / upload_id


def _parts(upload: Upload) -> int:
    return max(1, -(-upload.size // upload.part_size))


def _part_length(upload: Upload, index: int) -> int:
    return min(upload.part_size, upload.size - index * upload.part_size)


def _received(upload: Upload, data: Path, repair: bool = False) -> int:
    """Parts fully in the file; with ``repair`` (under the upload's lock), a partial part left by
    a dropped connection is cut off."""
    length = data.stat().st_size if data.exists() else 0
    if length >= upload.size:
        return _parts(upload)
    whole = length // upload.part_size
    if repair and length != whole * upload.part_size:
        os.truncate(data, whole * upload.part_size)
    return whole


def _describe(settings: Settings, upload: Upload) -> dict[str, Any]:
    data = _folder(settings, upload.id) / "data"
    received = _received(upload, data) if upload.state == UploadState.OPEN else (
        _parts(upload) if upload.state in (UploadState.COMPLETE, UploadState.USED) else 0)
    model = upload.kind == "model"
    return {"id": upload.id, "kind": upload.kind, "state": upload.state, "filename": upload.filename,
            "size": upload.size, "sha256": upload.sha256, "part_size": upload.part_size, "parts": _parts(upload),
            "parts_received": received, "next_part": received if received < _parts(upload) else None,
            "image_digest": None if model else upload.image_digest,
            "model_digest": upload.image_digest if model else None,
            "created_at": upload.created_at, "expires_at": upload.expires_at}


def create_upload(settings: Settings, caller: Identity | None, challenge: str, phase: str, size: int,
                  sha256: str, part_size: int | None = None, filename: str = "",
                  quotas: Quotas | None = None, kind: str = "image") -> dict[str, Any]:
    quotas = quotas or Quotas()
    if kind not in KINDS:
        raise InvalidInput(f"kind: {' or '.join(KINDS)}")
    sweep_expired(settings)
    sha256 = sha256.lower()
    if not SHA256.fullmatch(sha256):
        raise InvalidInput("sha256: 64 hexadecimal digits, the SHA-256 of the whole file")
    part_size = part_size or DEFAULT_PART
    if not MIN_PART <= part_size <= MAX_PART:
        raise InvalidInput(f"part_size: between {MIN_PART} and {MAX_PART} bytes")
    if size <= 0:
        raise InvalidInput("size: the file's length in bytes, more than 0")
    with session_scope(settings.database_url) as session:
        phase_row, rules = _phase_rules(session, challenge, phase)
        max_image_mb = rules.max_image_mb
        caller = access.require_participant(session, caller, phase_row.challenge)
        if kind == "model" and size > tarballs.MAX_TARBALL_BYTES:
            raise PayloadTooLarge(f"size: {size} bytes is over the {tarballs.MAX_TARBALL_BYTES} bytes accepted "
                                  "for a model tarball")
        if kind == "image" and size > max_image_mb << 20:
            raise PayloadTooLarge(f"size: {size} bytes is over the {max_image_mb} MB "
                                  f"that {challenge}/{phase} accepts for an image")
        # a spent compute budget refuses the image before its bytes travel (and again at submission)
        compute.check_budget(session, phase_row, rules, caller.username, caller.user_id)
        count, held = session.execute(select(func.count(Upload.id), func.coalesce(func.sum(Upload.size), 0)).where(
            Upload.user_id == caller.user_id, Upload.state.in_(HELD))).one()
        if count >= quotas.per_user_count:
            raise TooManyRequests(f"you have {count} unfinished or unsubmitted uploads, the most allowed; "
                                  "submit or let them expire first")
        if held + size > quotas.per_user_bytes:
            raise PayloadTooLarge(f"size: your uploads would hold {held + size} bytes, over your "
                                  f"{quotas.per_user_bytes} bytes")
        now = utcnow()
        upload = Upload(id=secrets.token_hex(16), user_id=caller.user_id, phase_id=phase_row.id,
                        filename=filename[:255], size=size, sha256=sha256, part_size=part_size,
                        state=transition(None, UploadState.OPEN),
                        kind=kind, created_at=now, expires_at=now + quotas.lifetime)
        folder = _folder(settings, upload.id)
        folder.mkdir(parents=True)
        (folder / "data").touch()
        session.add(upload)
        session.flush()
        return _describe(settings, upload)


def _phase_rules(session, challenge: str, phase: str) -> tuple[Phase, PhaseDefinition]:
    """A phase and its rules, read from its definition as stored: the platform stores a
    definition only once validated, with every default written out. Validating the whole
    definition again would import every evaluator (their settings are part of it), which a server
    taking uploads needs nowhere else; the phase's own part is validated alone."""
    row = session.scalar(select(Phase).join(Challenge).where(Challenge.slug == challenge, Phase.slug == phase))
    stored = next((p for p in (row.challenge.definition or {}).get("phases", ())
                   if isinstance(p, dict) and p.get("slug") == phase), None) if row is not None else None
    if stored is None:
        row, definition = find_phase(session, challenge, phase)  # says what is missing, or validates
        return row, definition.phase(phase)
    return row, PhaseDefinition.model_validate(stored)


def get_upload(settings: Settings, caller: Identity | None, upload_id: str) -> dict[str, Any]:
    with session_scope(settings.database_url) as session:
        upload = access.own_upload(session, caller, upload_id)
        _check_alive(upload)
        return _describe(settings, upload)


def _check_alive(upload: Upload) -> None:
    if upload.state == UploadState.OPEN and upload.expires_at <= utcnow():
        raise Conflict(f"upload {upload.id} has expired; start a new one")
    if upload.state in (UploadState.EXPIRED, UploadState.FAILED):
        raise Conflict(f"upload {upload.id} is {upload.state}; start a new one")


def _lock(folder: Path, what: str):
    handle = (folder / "lock").open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise Conflict(f"{what} is being received by another request") from None
    return handle


class PartWriter:
    """Receives one part: :meth:`write` its chunks, then :meth:`finish` (or :meth:`abort`). Nothing
    of a part that fails stays in the file."""

    def __init__(self, data: Path, offset: int, length: int, sha256: str, index: int, lock):
        self.index, self.length, self.expected_sha = index, length, sha256
        self.offset, self.received = offset, 0
        self._hash = hashlib.sha256()
        self._lock = lock
        self._file = data.open("r+b")
        self._file.seek(offset)
        self._data = data

    def write(self, chunk: bytes) -> None:
        if self.received + len(chunk) > self.length:
            self.abort()
            raise PayloadTooLarge(f"part {self.index}: more than its {self.length} bytes")
        self._file.write(chunk)
        self._hash.update(chunk)
        self.received += len(chunk)

    def write_all(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def finish(self) -> None:
        try:
            if self.received != self.length:
                raise InvalidInput(f"part {self.index}: {self.received} bytes received of its {self.length}")
            actual = self._hash.hexdigest()
            if actual != self.expected_sha:
                raise InvalidInput(f"part {self.index}: its SHA-256 is {actual}, not {self.expected_sha} as sent; "
                                   "send the part again")
            self._file.close()
            self._release()
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
            os.truncate(self._data, self.offset)
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def begin_part(settings: Settings, caller: Identity | None, upload_id: str, index: int, sha256: str | None,
               content_length: int | None) -> PartWriter:
    """Check that part ``index`` is the one expected next and open it for writing."""
    if not sha256 or not SHA256.fullmatch(sha256.lower()):
        raise InvalidInput("header X-Part-SHA256: the part's SHA-256, 64 hexadecimal digits")
    with session_scope(settings.database_url) as session:
        upload = access.own_upload(session, caller, upload_id)
        _check_alive(upload)
        if upload.state != UploadState.OPEN:
            raise Conflict(f"upload {upload_id} is {upload.state}; it takes no more parts")
        parts = _parts(upload)
        if not 0 <= index < parts:
            raise InvalidInput(f"part {index}: upload {upload_id} has parts 0 to {parts - 1}")
        length = _part_length(upload, index)
        if content_length is not None and content_length > length:
            raise PayloadTooLarge(f"part {index}: {content_length} bytes sent, the part has {length}")
        folder = _folder(settings, upload_id)
        lock = _lock(folder, f"upload {upload_id}")
        try:
            received = _received(upload, folder / "data", repair=True)
            if index < received:
                raise Conflict(f"part {index} of upload {upload_id} was received already; the next part is "
                               f"{received if received < parts else 'none (complete the upload)'}")
            if index > received:
                raise Conflict(f"part {index} of upload {upload_id} is out of order: parts go in order and "
                               f"the next part is {received}")
            return PartWriter(folder / "data", index * upload.part_size, length, sha256.lower(), index, lock)
        except BaseException:
            lock.close()
            raise


def complete_upload(settings: Settings, caller: Identity | None, upload_id: str) -> dict[str, Any]:
    """Check the whole file's SHA-256, then load it as an image (a `podman save`/`docker save`
    archive) and pin its digest, or check it as a model tarball and keep it in the store by its
    digest; the file is then removed (the image lives in the container store)."""
    with session_scope(settings.database_url) as session:
        upload = access.own_upload(session, caller, upload_id)
        _check_alive(upload)
        if upload.state != UploadState.OPEN:
            return _describe(settings, upload)
        folder = _folder(settings, upload_id)
        data = folder / "data"
    lock = _lock(folder, f"upload {upload_id}")
    try:
        received = _received(upload, data, repair=True)
        if received < _parts(upload):
            raise Conflict(f"upload {upload_id} has {received} of its {_parts(upload)} parts; send part {received}")
        digest = hashlib.sha256()
        with data.open("rb") as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() != upload.sha256:
            _fail(settings, upload_id)
            raise InvalidInput(f"upload {upload_id}: the file's SHA-256 is {digest.hexdigest()}, not "
                               f"{upload.sha256} as declared; upload it again")
        digest = _store_model(settings, upload, data) if upload.kind == "model" else _load_image(settings, upload,
                                                                                                    data)
    finally:
        lock.close()
    with session_scope(settings.database_url) as session:
        upload = session.get(Upload, upload_id)
        upload.state, upload.image_digest = transition(upload.state, UploadState.COMPLETE), digest
        shutil.rmtree(folder, ignore_errors=True)
        return _describe(settings, upload)


def _load_image(settings: Settings, upload: Upload, data: Path) -> str:
    try:
        return load_image(data).digest
    except ImageError:
        _fail(settings, upload.id)
        raise InvalidInput(f"upload {upload.id} ({upload.filename or 'unnamed'}): not an image archive as "
                           "`podman save` or `docker save` write it") from None


def _store_model(settings: Settings, upload: Upload, data: Path) -> str:
    """Check a model tarball as the one-laptop mode does (entries, links, caps) and keep it in
    the store under its digest, where the nodes fetch it."""
    try:
        tarball = tarballs.check_tarball(data, what="model tarball")
    except tarballs.TarballError as exc:
        _fail(settings, upload.id)
        # the message names the file as the participant knows it, never the server's path
        reason = str(exc).split(f"{data}: ", 1)[-1]
        if reason.startswith("not a readable tarball"):  # tarfile's own explanation spans lines
            reason = "not a readable tarball (.tar.gz; or .tar, .tar.xz, .tar.bz2)"
        raise InvalidInput(f"upload {upload.id} ({upload.filename or 'unnamed'}): model tarball: {reason}") from None
    from medarena.platform import layout  # brings zarr, which only this step needs here

    tarballs.store_tarball(tarball, layout.model_url(settings, tarball.digest))
    return tarball.digest


def _fail(settings: Settings, upload_id: str) -> None:
    with session_scope(settings.database_url) as session:
        upload = session.get(Upload, upload_id)
        upload.state = transition(upload.state, UploadState.FAILED)
    shutil.rmtree(_folder(settings, upload_id), ignore_errors=True)


def prepare_storage(settings: Settings) -> None:
    """Bring the database schema up to date (a server does this once, before its first request)."""
    with session_scope(settings.database_url):
        pass


def sweep_expired(settings: Settings, now: dt.datetime | None = None) -> int:
    """Expire the uploads past their time (never submitted) and free their space; also remove
    folders without an upload (left by a crash). Returns the uploads expired."""
    now = now or utcnow()
    with session_scope(settings.database_url) as session:
        expired = list(session.scalars(select(Upload).where(Upload.state.in_(HELD), Upload.expires_at <= now)))
        for upload in expired:
            upload.state = transition(upload.state, UploadState.EXPIRED)
        known = set(session.scalars(select(Upload.id).where(Upload.state == UploadState.OPEN)))
    root = uploads_root(settings)
    for upload in expired:
        shutil.rmtree(root / upload.id, ignore_errors=True)
    if root.is_dir():
        for folder in root.iterdir():
            if folder.name not in known and _older_than(folder, dt.timedelta(hours=1)):
                shutil.rmtree(folder, ignore_errors=True)
    return len(expired)


def _older_than(path: Path, age: dt.timedelta) -> bool:
    try:
        return dt.datetime.now().timestamp() - path.stat().st_mtime > age.total_seconds()
    except OSError:
        return False
