"""The real backend: podman with the container contract's isolation (runc, catatonit as PID 1,
a fixed user-namespace map, no network, no capabilities, read-only root, limits and ulimits, a
capped /output). The podman command itself is built in one place,
:func:`medarena.platform.runner.container_command`; the run, its watchers and the image
operations are in :mod:`medarena.platform.runner`."""

from __future__ import annotations

from pathlib import Path

from medarena.platform import runner
from medarena.platform.containers.backend import ContainerSpec, RunResult


class PodmanBackend:
    name = "podman"

    def run(self, spec: ContainerSpec) -> RunResult:
        return runner.run_container(spec.image, spec.input_dir, spec.output_dir, spec.limits, gpu_ids=spec.gpu_ids,
                                    name=spec.name, log_tail_bytes=spec.log_tail_bytes, output=spec.output,
                                    read_only_mounts=spec.read_only_mounts)

    def load_image(self, ref: str | Path) -> runner.ImageRef:
        return runner.load_image(ref)

    def save_image(self, digest: str, destination: str) -> None:
        runner.save_image(digest, destination)

    def ensure_image(self, digest: str, archive: str) -> None:
        runner.ensure_image(digest, archive)

    def remove(self, name: str) -> None:
        runner.remove_container(name)
