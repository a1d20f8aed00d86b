"""The one interface through which the platform runs a container: algorithm jobs and organizers'
evaluation containers alike. A backend takes a :class:`ContainerSpec` and returns a
:class:`RunResult`; it also makes pinned images available and removes leftover containers.

Faults of the container are results (a status the participant or organizer can act on); faults
of the platform raise :class:`~medarena.platform.runner.RunnerError`, so that the caller retries
them without charging anyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from medarena.platform.outputfs import OutputFolder
from medarena.platform.runner import DEFAULT_LOG_TAIL_BYTES, ImageRef, Limits, RunResult, RunStatus

__all__ = ["ContainerBackend", "ContainerSpec", "RunResult", "RunStatus"]


@dataclass(frozen=True)
class ContainerSpec:
    """One run of ``image`` on the folder ``input_dir`` (read-only at /input), writing into the
    empty folder ``output_dir`` (/output). ``name`` identifies the run, so that a leftover of a
    lost worker can be found; ``output`` is the capped folder mounted at ``output_dir``."""

    image: str
    input_dir: Path
    output_dir: Path
    limits: Limits
    name: str | None = None
    gpu_ids: Sequence[str] = ()
    read_only_mounts: Sequence[tuple[Path, str]] = ()
    output: OutputFolder | None = None
    log_tail_bytes: int = DEFAULT_LOG_TAIL_BYTES


class ContainerBackend(Protocol):
    name: str

    def run(self, spec: ContainerSpec) -> RunResult:
        """Run the container to its end (or its limits) and remove it."""

    def load_image(self, ref: str | Path) -> ImageRef:
        """Make an image (a local name or an archive) available and pin it by its ID."""

    def save_image(self, digest: str, destination: str) -> None:
        """Write a pinned image to the shared store, for the other nodes of a cluster."""

    def ensure_image(self, digest: str, archive: str) -> None:
        """Make sure this node has the pinned image, loading it from ``archive`` when not."""

    def remove(self, name: str) -> None:
        """Stop and remove the container of this name, if one is left over."""
