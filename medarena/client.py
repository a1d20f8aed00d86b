"""A participant's client of a medarena server: credentials, HTTP calls, uploads in parts.

The server's errors come back as the same :mod:`medarena.errors` classes, with its message.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from medarena import errors

READ_BLOCK = 1 << 20
SEND_BLOCK = 1 << 20  # progress is reported per block sent
_BY_STATUS = {cls.http_status: cls for cls in (errors.InvalidInput, errors.NotFound, errors.Conflict,
                                               errors.PermissionDenied, errors.Unauthenticated,
                                               errors.TooManyRequests, errors.PayloadTooLarge,
                                               errors.PlatformFault)}
_BY_STATUS[400] = errors.UserError


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "medarena"


def credentials_path() -> Path:
    return config_dir() / "credentials.json"


@dataclass(frozen=True)
class Credentials:
    url: str
    token: str
    username: str = ""


def load_credentials() -> Credentials | None:
    """MEDARENA_URL and MEDARENA_TOKEN, or what `medarena login` kept; None: the one-laptop mode."""
    if os.environ.get("MEDARENA_URL") and os.environ.get("MEDARENA_TOKEN"):
        return Credentials(os.environ["MEDARENA_URL"], os.environ["MEDARENA_TOKEN"])
    path = credentials_path()
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return Credentials(data["url"], data["token"], data.get("username", ""))
    except (OSError, ValueError, KeyError, TypeError):
        raise errors.InvalidInput(f"{path}: not a medarena login; `medarena logout`, then log in again") from None


def save_credentials(credentials: Credentials) -> Path:
    """Write the token to a file only its owner reads (0600, in a 0700 folder)."""
    folder = config_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = credentials_path()
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump({"url": credentials.url, "token": credentials.token, "username": credentials.username}, file)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def forget_credentials() -> bool:
    path = credentials_path()
    if path.exists():
        path.unlink()
        return True
    return False


class Client:
    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kwargs) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise errors.PlatformFault(f"cannot reach {self.url}: {exc}") from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = None
            cls = _BY_STATUS.get(response.status_code, errors.PlatformFault)
            raise cls(str(detail or f"{method} {path}: HTTP {response.status_code}"))
        return response.json() if response.content else None

    @classmethod
    def login(cls, url: str, username: str, password: str) -> str:
        client = cls(url)
        try:
            return client.call("POST", "/api/v1/auth/token", data={"username": username, "password": password})[
                "access_token"]
        finally:
            client.close()


def file_sha256(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(READ_BLOCK):
            digest.update(block)
            if on_bytes:
                on_bytes(len(block))
    return digest.hexdigest()


def _read_part(path: Path, offset: int, length: int) -> tuple[bytes, str]:
    """A part's bytes and SHA-256, read once (a part is at most 64 MiB)."""
    with path.open("rb") as file:
        file.seek(offset)
        data = file.read(length)
    if len(data) != length:
        raise errors.InvalidInput(f"{path}: the file shrank while it was uploaded")
    return data, hashlib.sha256(data).hexdigest()


def _blocks(data: bytes, on_bytes: Callable[[int], None] | None) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), SEND_BLOCK):
        yield view[start:start + SEND_BLOCK]
        if on_bytes:
            on_bytes(min(SEND_BLOCK, len(data) - start))


def send_parts(client: Client, path: Path, upload: dict[str, Any], on_bytes: Callable[[int], None] | None = None,
               attempts: int = 5) -> dict[str, Any]:
    """Send the parts the server does not have yet, in order; after a dropped connection, ask
    the server where it stands and go on from there. The next part is read and hashed in a
    thread while one is sent (hashing releases the GIL), so the client keeps the link busy."""
    size, part_size = upload["size"], upload["part_size"]
    failures = 0

    def read(index: int) -> Future:
        offset = index * part_size
        return reader.submit(_read_part, path, offset, min(part_size, size - offset))

    with ThreadPoolExecutor(1, thread_name_prefix="medarena-read") as reader:
        ahead: dict[int, Future] = {}
        while upload["next_part"] is not None:
            index = upload["next_part"]
            current = ahead.pop(index, None) or read(index)
            ahead.clear()  # a part read for a position the server moved away from is dropped
            if index + 1 < upload["parts"]:
                ahead[index + 1] = read(index + 1)
            data, sha = current.result()
            try:
                upload = client.call("PUT", f"/api/v1/uploads/{upload['id']}/parts/{index}",
                                     content=_blocks(data, on_bytes),
                                     headers={"X-Part-SHA256": sha, "Content-Length": str(len(data))})
                failures = 0
            except (errors.PlatformFault, errors.Conflict) as exc:
                failures += 1
                if failures >= attempts:
                    raise
                time.sleep(min(2 ** failures, 10))
                upload = client.call("GET", f"/api/v1/uploads/{upload['id']}")
                if isinstance(exc, errors.Conflict) and upload["next_part"] == index:
                    raise
            finally:
                del data
    return upload
