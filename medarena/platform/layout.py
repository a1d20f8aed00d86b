"""Where everything lives in the store (``MEDARENA_STORE``, a folder or an fsspec URL): the one
place that names the store's paths.

- ``inputs/<challenge>/<phase>.zarr``: what algorithms receive;
- ``references/<challenge>/<phase>.zarr`` and ``references/<challenge>/ground-truth/<sha256>.tar.gz``:
  what scores them, never mounted into an algorithm's container;
- ``predictions/<challenge>/<phase>/<submission>.zarr``: what algorithms wrote;
- ``images/<sha256>.tar`` and ``models/<sha256>.tar.gz``: pinned images and model tarballs for
  the nodes of a cluster, one copy each however many submissions use them.
"""

from __future__ import annotations

import hashlib

from medarena.platform.casestore import store_path
from medarena.platform.settings import Settings


def inputs_url(settings: Settings, challenge: str, phase: str) -> str:
    return store_path(settings.store, "inputs", challenge, f"{phase}.zarr")


def references_url(settings: Settings, challenge: str, phase: str) -> str:
    return store_path(settings.store, "references", challenge, f"{phase}.zarr")


def predictions_url(settings: Settings, challenge: str, phase: str, submission_id: int) -> str:
    return store_path(settings.store, "predictions", challenge, phase, f"{submission_id}.zarr")


def namespace(settings: Settings) -> str:
    """A short tag of this platform instance, so two of them can share one podman."""
    return hashlib.sha256(settings.database_url.encode()).hexdigest()[:8]


def image_archive_url(settings: Settings, digest: str) -> str:
    return store_path(settings.store, "images", f"{digest.removeprefix('sha256:')}.tar")


def model_url(settings: Settings, digest: str) -> str:
    """A model tarball in the store, named by its sha256 (one copy however many submissions use it)."""
    return store_path(settings.store, "models", f"{digest.removeprefix('sha256:')}.tar.gz")


def ground_truth_url(settings: Settings, challenge: str, digest: str) -> str:
    """Ground truths live with the references: never mounted into an algorithm's container."""
    name = f"{digest.removeprefix('sha256:')}.tar.gz"
    return store_path(settings.store, "references", challenge, "ground-truth", name)
