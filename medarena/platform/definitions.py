"""The definitions a challenge is made of that say what to run, not how: a container run's
resource limits and the sockets (inputs and outputs) of an algorithm. Plain pydantic models: this
module knows nothing of podman, files or the store (an import contract keeps it so), and the
runner, the container contract and the challenge definition all use it.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from medarena.platform import gc_compat

IMAGE_KINDS = ("image", "segmentation", "heat-map", "displacement-field")
JSON_KINDS = ("json", "boxes", "points", "probability")
SocketKind = Literal["image", "segmentation", "heat-map", "displacement-field",
                     "json", "boxes", "points", "probability"]

# Image files accepted as outputs, longest suffix first so that ".nii.gz" wins over ".gz". No
# ".mhd": its data file is named in the header, so the container could point it at a host file.
OUTPUT_IMAGE_SUFFIXES = (".nii.gz", ".tiff", ".mha", ".tif")


class Limits(BaseModel):
    """Resource limits of one container run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wall_time_seconds: float = Field(default=300, gt=0)
    memory_mb: int = Field(default=2048, ge=16)
    cpus: float = Field(default=1.0, gt=0)
    pids: int = Field(default=256, ge=8)
    gpus: int = Field(default=0, ge=0)
    output_mb: int = Field(default=4096, ge=1, description="what one run may leave in /output, enforced "
                                                           "while it runs")


class Socket(BaseModel):
    """One input or output of an algorithm, as grand-challenge.org names them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    kind: SocketKind
    relative_path: str = Field(description="image kinds: a folder (images/ct); JSON kinds: a file (x.json)")
    # what grand-challenge.org also tells a container about a socket (inputs.json)
    gc_kind: str | None = Field(default=None, description="grand-challenge's name of the kind (Float, Image...)")
    title: str = Field(default="", max_length=255)
    description: str = Field(default="", max_length=10_000)
    default_value: Any = None
    overlay_segments: list[dict[str, Any]] = Field(default_factory=list, max_length=256)
    look_up_table: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _grand_challenge_kind(cls, data: Any) -> Any:
        """Accept grand-challenge's kind names (``Heat Map``, ``Multiple points``...) as well."""
        if isinstance(data, dict) and isinstance(data.get("kind"), str):
            data = dict(data)
            data["kind"], data["gc_kind"] = gc_compat.resolve_kind(data["kind"], data.get("gc_kind"))
        return data

    @field_validator("relative_path")
    @classmethod
    def _inside_the_mount(cls, value: str) -> str:
        path = PurePosixPath(value)
        if not value or path.is_absolute() or ".." in path.parts or "\\" in value:
            raise ValueError(f"relative_path {value!r} must be a relative path without '..'")
        if path.parts == ("inputs.json",):
            raise ValueError("relative_path 'inputs.json' is reserved")
        return str(path)

    @model_validator(mode="after")
    def _path_fits_kind(self) -> Socket:
        if self.is_json and not self.relative_path.endswith(".json"):
            raise ValueError(f"relative_path of the {self.kind} socket {self.slug!r} must end with .json")
        if self.is_image and self.relative_path.endswith((".json", *OUTPUT_IMAGE_SUFFIXES)):
            raise ValueError(f"relative_path of the {self.kind} socket {self.slug!r} must be a folder, "
                             f"not a file name ({self.relative_path})")
        return self

    @property
    def is_image(self) -> bool:
        return self.kind in IMAGE_KINDS

    @property
    def is_json(self) -> bool:
        return self.kind in JSON_KINDS

    def interface(self) -> dict[str, Any]:
        """The socket as grand-challenge's ComponentInterfaceSerializer writes it."""
        return gc_compat.serialize_socket(self)
