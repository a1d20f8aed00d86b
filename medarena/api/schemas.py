"""Request bodies: strict (unknown fields are errors) and bounded."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChallengeCreate(Strict):
    definition: str = Field(description="the challenge definition, YAML text", max_length=1 << 20)
    organizers: list[str] = Field(default_factory=list, max_length=100, description="user names")


class ChallengeUpdate(Strict):
    definition: str = Field(description="the challenge definition, YAML text", max_length=1 << 20)


class OrganizerAdd(Strict):
    username: str = Field(max_length=64)


class UploadCreate(Strict):
    size: int = Field(gt=0, description="the file's length in bytes")
    sha256: str = Field(min_length=64, max_length=64, description="SHA-256 of the whole file, hexadecimal")
    part_size: int | None = Field(default=None, description="bytes per part (the last part may be shorter)")
    filename: str = Field(default="", max_length=255)
    kind: Literal["image", "model"] = Field(default="image", description="an algorithm image (`podman save`) "
                                            "or its model tarball (.tar.gz, extracted at /opt/ml/model)")


class SubmissionCreate(Strict):
    upload_id: str = Field(min_length=1, max_length=32)
    model_upload_id: str | None = Field(default=None, min_length=1, max_length=32,
                                        description="a completed model upload that goes with the image")
    comment: str = Field(default="", max_length=2000)


class TokenCreate(Strict):
    name: str = Field(min_length=1, max_length=100)
    expires_in_days: float | None = Field(default=90, gt=0, le=3650)


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
