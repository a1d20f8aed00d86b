"""Fixtures for the platform tests."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from medarena.platform.runner import podman_available, podman_env

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def example_images() -> str:
    """Build the base and example images when missing (idempotent); returns the name prefix of
    the example images (``localhost/medarena-example-``)."""
    if not podman_available():
        pytest.skip("podman is not installed")
    build = subprocess.run(["bash", str(REPO / "infra" / "build-images.sh")], capture_output=True, text=True,
                           env=podman_env(), timeout=900)
    assert build.returncode == 0, f"infra/build-images.sh failed:\n{build.stdout}\n{build.stderr}"
    return "localhost/medarena-example-"


def podman(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], capture_output=True, text=True, env=podman_env())


@pytest.fixture
def private_image(example_images, tmp_path):
    """A threshold image with an ID of its own, so removing it touches no other test's image:
    (its tag, its ID)."""
    tag = f"localhost/medarena-test-private-{uuid.uuid4().hex[:8]}:latest"
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Containerfile").write_text(
        f"FROM {example_images}threshold:latest\nLABEL medarena.test={uuid.uuid4().hex}\n")
    assert podman("build", "-q", "-t", tag, str(tmp_path / "ctx")).returncode == 0
    digest = "sha256:" + podman("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()
    yield tag, digest
    podman("rmi", "--force", digest)
