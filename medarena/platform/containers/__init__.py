"""Running containers: one backend interface (:mod:`.backend`), podman for real runs
(:mod:`.podman`) and an in-process fake for fast tests (:mod:`.fake`)."""

from __future__ import annotations

from medarena.platform.containers.backend import ContainerBackend, ContainerSpec, RunResult, RunStatus

BACKENDS = ("podman", "fake")

__all__ = ["BACKENDS", "ContainerBackend", "ContainerSpec", "RunResult", "RunStatus", "get_backend"]


def get_backend(name: str = "podman") -> ContainerBackend:
    """The backend called ``name`` (``MEDARENA_CONTAINER_BACKEND``; podman by default)."""
    if name == "podman":
        from medarena.platform.containers.podman import PodmanBackend

        return PodmanBackend()
    if name == "fake":
        from medarena.platform.containers.fake import FakeBackend

        return FakeBackend()
    raise ValueError(f"MEDARENA_CONTAINER_BACKEND: unknown container backend {name!r} "
                     f"(one of {', '.join(BACKENDS)})")
