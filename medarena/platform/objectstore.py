"""Stores in object storage (``MEDARENA_STORE=s3://bucket/prefix``): checking that the store is
reachable before anything is written, and the settings Ray tasks need to reach it.

s3fs (through botocore) reads its settings from the environment: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``), ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, and
``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``) for an S3 server other than Amazon's; an
instance profile or ``~/.aws`` works as well. medarena adds nothing of its own on top.
"""

from __future__ import annotations

from medarena.errors import PlatformFault

# what s3fs/botocore read from the environment; handed to Ray tasks (see worker_env)
S3_ENVIRONMENT = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                  "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


class StoreError(PlatformFault, RuntimeError):
    """The store cannot be used (refused credentials, no such bucket, no server): one line that
    names the store and what to check."""


def is_remote(url: str) -> bool:
    return "://" in url and not url.startswith("file://")


def check_store(url: str) -> None:
    """Raise :class:`StoreError` unless the store at ``url`` answers with these credentials.

    Local folders and ``file://`` URLs pass without a look. A store that does not exist yet
    under an existing bucket is fine: it is created on the first write.
    """
    if not is_remote(url):
        return
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise StoreError(f"MEDARENA_STORE {url}: {_one_line(exc)}") from None
    fs.invalidate_cache()
    try:
        try:
            fs.ls(path, detail=False)
        except FileNotFoundError:  # nothing written under the prefix yet; the bucket must exist
            fs.ls(path.split("/", 1)[0], detail=False)
    except FileNotFoundError:
        raise StoreError(f"MEDARENA_STORE {url}: the bucket {path.split('/', 1)[0]!r} does not exist") from None
    except PermissionError as exc:
        raise StoreError(f"MEDARENA_STORE {url}: access denied ({_one_line(exc)}); check AWS_ACCESS_KEY_ID and "
                         "AWS_SECRET_ACCESS_KEY") from None
    except Exception as exc:  # noqa: BLE001 - no credentials, no server, a bad endpoint: each its own type
        raise StoreError(f"MEDARENA_STORE {url}: cannot reach the store ({type(exc).__name__}: "
                         f"{_one_line(exc)}); check AWS_ENDPOINT_URL and the credentials") from None


def worker_env(url: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The object-store settings of this process, for the Ray tasks that read and write the store
    (so that worker nodes reach the store exactly as the driver does); empty for local stores."""
    import os

    environ = os.environ if environ is None else environ
    if not is_remote(url):
        return {}
    return {name: environ[name] for name in S3_ENVIRONMENT if environ.get(name)}


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(exc).__name__
