"""What the command line needs of the local container engine."""

from medarena.platform.runner import podman_env

__all__ = ["podman_env"]
