"""Model and ground-truth tarballs: checked, stored by content, extracted once per node.

grand-challenge.org takes an algorithm's model (extracted at ``/opt/ml/model``) and an
evaluation's ground truth (at ``/opt/ml/input/data/ground_truth``) as ``.tar.gz`` files. Both
come from people, so a tarball is refused unless every entry is a regular file or a folder with
a relative path inside the archive, and its size, entry count and unpacked size are within the
caps. The store keeps one copy per sha256; each node extracts it once into a cache folder keyed
by that digest and mounts it read-only into every container that needs it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from medarena.errors import InvalidInput

MAX_TARBALL_BYTES = int(os.environ.get("MEDARENA_MAX_TARBALL_BYTES", 20 * 2**30))
MAX_UNPACKED_BYTES = int(os.environ.get("MEDARENA_MAX_UNPACKED_BYTES", 64 * 2**30))
MAX_ENTRIES = int(os.environ.get("MEDARENA_MAX_TARBALL_ENTRIES", 100_000))


class TarballError(InvalidInput, ValueError):
    """A model or ground-truth tarball that cannot be used; the message names the file and why."""


@dataclass(frozen=True)
class Tarball:
    path: Path  # a tarball (gzip, xz or bzip2 compressed, or plain)
    digest: str  # "sha256:<64 hex>" of the file's bytes
    size: int
    entries: int


def check_tarball(path: Path, *, what: str = "tarball", max_bytes: int | None = None,
                  max_entries: int | None = None, max_unpacked: int | None = None) -> Tarball:
    """Check a tarball without extracting it and return its digest; raise :class:`TarballError`."""
    path = Path(path)
    max_bytes = MAX_TARBALL_BYTES if max_bytes is None else max_bytes
    max_entries = MAX_ENTRIES if max_entries is None else max_entries
    max_unpacked = MAX_UNPACKED_BYTES if max_unpacked is None else max_unpacked
    if not path.is_file():
        raise TarballError(f"{what} {path}: no such file")
    size = path.stat().st_size
    if size > max_bytes:
        raise TarballError(f"{what} {path}: {size} bytes, more than the {max_bytes} accepted")
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    entries = unpacked = 0
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                entries += 1
                if entries > max_entries:
                    raise TarballError(f"{what} {path}: more than the {max_entries} entries accepted")
                _check_member(path, what, member)
                unpacked += member.size if member.isfile() else 0
                if unpacked > max_unpacked:
                    raise TarballError(f"{what} {path}: unpacks to more than the {max_unpacked} bytes accepted")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise TarballError(f"{what} {path}: not a readable tarball (.tar.gz) ({exc})") from None
    return Tarball(path=path, digest=f"sha256:{digest.hexdigest()}", size=size, entries=entries)


def _check_member(path: Path, what: str, member: tarfile.TarInfo) -> None:
    name = PurePosixPath(member.name)
    shown = repr(member.name[:200])
    if member.name.startswith("/") or name.is_absolute():
        raise TarballError(f"{what} {path}: entry {shown} has an absolute path")
    if ".." in name.parts:
        raise TarballError(f"{what} {path}: entry {shown} has a '..' in its path")
    if member.issym() or member.islnk():
        raise TarballError(f"{what} {path}: entry {shown} is a link; only files and folders are accepted")
    if not (member.isfile() or member.isdir()):
        raise TarballError(f"{what} {path}: entry {shown} is not a regular file or folder")


def store_tarball(tarball: Tarball, destination: str) -> None:
    """Copy a checked tarball to ``destination`` (a path or fsspec URL named after its digest),
    unless it is there already; written under a temporary name first, so never half-written."""
    import fsspec

    fs, _, (target,) = fsspec.get_fs_token_paths(destination)
    if fs.exists(target):
        return
    partial = f"{target}.partial-{os.getpid()}"
    fs.makedirs(str(PurePosixPath(target).parent), exist_ok=True)
    with tarball.path.open("rb") as source, fs.open(partial, "wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
    fs.mv(partial, target)


def ensure_extracted(digest: str, url: str, cache_root: Path) -> Path:
    """The folder holding the tarball ``digest`` extracted on this node: fetched from ``url`` and
    extracted once (under a lock, then renamed into place), checked again before extraction,
    readable by any container user and never written afterwards."""
    import fsspec

    hexdigest = digest.removeprefix("sha256:")
    cache_root = Path(cache_root)
    cache_root.mkdir(parents=True, exist_ok=True)
    target = cache_root / hexdigest
    if target.is_dir():
        return target
    with (cache_root / f"{hexdigest}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_dir():
            return target
        with tempfile.TemporaryDirectory(prefix=f"{hexdigest[:12]}-", dir=cache_root) as folder:
            local = Path(folder) / "archive"
            with fsspec.open(url, "rb") as source, local.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            tarball = check_tarball(local, what=f"tarball {digest}")
            if tarball.digest != f"sha256:{hexdigest}":
                raise TarballError(f"{url}: holds {tarball.digest}, not {digest}")
            unpacked = Path(folder) / "unpacked"
            extract(local, unpacked)
            os.replace(unpacked, target)
    return target


def extract(path: Path, destination: Path) -> None:
    """Extract a checked tarball: files 0644 and folders 0755 whatever the archive says.

    Entry by entry, each checked again by :func:`_check_member` (a file or a folder, a relative
    path without ``..``: it stays in ``destination``, where no link is ever made), rather than with
    ``tarfile``'s extraction filters, which Python 3.11 has only from 3.11.4 (Debian 12 ships
    3.11.2)."""
    destination.mkdir(parents=True)
    with tarfile.open(path, "r:*") as archive:
        for member in archive:
            _check_member(path, "tarball", member)
            target = destination / member.name
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.extractfile(member) as source, target.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
    os.chmod(destination, 0o755)
    for folder, dirs, files in os.walk(destination):
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)


def pack_folder(folder: Path, destination: Path, *, what: str = "folder") -> Path:
    """A folder as a .tar.gz (for a ground truth given as a folder); links are refused."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TarballError(f"{what} {folder}: no such folder")
    with tarfile.open(destination, "w:gz") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                raise TarballError(f"{what} {folder}: {path.relative_to(folder)} is a link or not a regular file")
            archive.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return destination
