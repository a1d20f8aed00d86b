"""Fixtures for the platform tests."""

from __future__ import annotations

import subprocess
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
