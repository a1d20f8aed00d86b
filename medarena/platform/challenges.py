"""Challenge definitions: the organizer's YAML, validated with pydantic.

Every validation error names the file and the field (``demo.yaml: phases.0.closes: ...``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medarena.evaluators.tasks import TASK_MODULES, get_task
from medarena.platform.contract import Socket
from medarena.platform.runner import Limits

SLUG = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class DefinitionError(ValueError):
    """A challenge definition that cannot be used; the message names the file and the field."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PhaseDefinition(Strict):
    """A phase: a test set with its own submission window, limits and visibility."""

    slug: str = Field(pattern=SLUG, description="the phase's name in commands and URLs, unique in the challenge")
    title: str = ""
    opens: dt.datetime | None = Field(default=None, description="first moment submissions are accepted; "
                                      "null: already open")
    closes: dt.datetime | None = Field(default=None, description="submissions are refused from then on "
                                       "(later than opens); null: never closes")
    submission_limit: int = Field(default=5, ge=0, description="per participant per period; 0 = none")
    limit_period_days: float = Field(default=1.0, gt=0, description="the period of submission_limit, in days")
    failed_submissions_count: bool = Field(
        default=False, description="a submission none of whose cases succeeded counts against "
        "submission_limit; one whose cases all failed for platform faults never counts")
    max_jobs_in_flight_per_participant: int = Field(
        default=0, ge=0, description="cases of one participant that run at once, over all their "
        "submissions; the others wait while other participants' cases take the free slots; 0 = no cap")
    leaderboard_public: bool = Field(default=True, description="anyone may see the leaderboard")
    case_results_public: bool = Field(default=False, description="anyone may see the per-case results")

    @field_validator("opens", "closes")
    @classmethod
    def _as_utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value

    @model_validator(mode="after")
    def _closes_after_opens(self) -> PhaseDefinition:
        if self.opens and self.closes and self.closes <= self.opens:
            raise ValueError("closes must be later than opens")
        return self

    def is_open(self, now: dt.datetime) -> bool:
        return (self.opens is None or now >= self.opens) and (self.closes is None or now < self.closes)


class GridSocket(Socket):
    """An output or reference socket: a Socket that may be tied to an input image's grid."""

    same_grid_as: str | None = Field(
        default=None, description="input socket whose image grid this image must match")


GRID_BOUND_KINDS = ("segmentation", "heat-map", "displacement-field")


class Interface(Strict):
    """The sockets of the phase's algorithms, as grand-challenge.org names them.

    With one input image, every segmentation, heat-map and displacement-field output or reference
    lies on that image's grid unless its ``same_grid_as`` says otherwise; with several input images
    (fixed and moving), each such socket must name its grid or none is checked.
    """

    inputs: list[Socket] = Field(min_length=1, description="what a container receives under /input")
    outputs: list[GridSocket] = Field(min_length=1, description="what a container must write under /output")
    references: list[GridSocket] = Field(default_factory=list, description="the ground truth: ingested "
                                         "with the inputs, never mounted into a container")

    @model_validator(mode="after")
    def _default_grids(self) -> Interface:
        """With one input image, segmentations, heat maps and fields lie on its grid unless told;
        with several (fixed and moving...), each must say which grid it lies on, or none is checked."""
        images = [s.slug for s in self.inputs if s.is_image]
        for socket in [*self.outputs, *self.references]:
            if socket.same_grid_as is None and socket.kind in GRID_BOUND_KINDS and len(images) == 1:
                object.__setattr__(socket, "same_grid_as", images[0])
        return self


class Evaluation(Strict):
    """How each case is scored: a built-in task, which socket plays which of its roles, its settings.

    A role named like a socket maps to it, and a task's only role maps to the only candidate
    socket, so simple definitions can leave ``reference`` and ``prediction`` out.
    """

    task: str = Field(description="segmentation, detection, classification, registration or fusion")
    # task role -> socket slug; roles of the reference side may name input or reference sockets
    reference: dict[str, str] = Field(default_factory=dict, description="task role -> input or reference "
                                      "socket (e.g. mask: segmentation)")
    prediction: dict[str, str] = Field(default_factory=dict, description="task role -> output socket")
    settings: dict[str, Any] = Field(default_factory=dict, description="the task's settings (below)")

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        if value not in TASK_MODULES:
            raise ValueError(f"unknown task {value!r}; known: {', '.join(TASK_MODULES)}")
        return value

    def task_settings(self):
        return get_task(self.task).Settings.model_validate(self.settings)


class ChallengeDefinition(Strict):
    """The top level of a challenge YAML."""

    slug: str = Field(pattern=SLUG, description="the challenge's name in commands and URLs")
    title: str
    description: str = Field(default="", description="shown on the challenge's page (Markdown)")
    phases: list[PhaseDefinition] = Field(min_length=1)
    interface: Interface
    evaluation: Evaluation
    ranking: dict[str, Any] = Field(default_factory=dict, description="a RankingRecipe; empty: "
                                    "aggregate-then-rank on the mean of every metric the evaluation computes")
    limits: Limits = Field(default_factory=Limits, description="per container run, for every case")

    @model_validator(mode="after")
    def _consistent(self) -> ChallengeDefinition:
        slugs = [p.slug for p in self.phases]
        if len(set(slugs)) != len(slugs):
            raise ValueError("phases: two phases share a slug")
        inputs = {s.slug for s in self.interface.inputs}
        outputs = {s.slug for s in self.interface.outputs}
        refs = {s.slug for s in self.interface.references}
        task = get_task(self.evaluation.task)
        ev = self.evaluation
        ev.reference = {**_infer_roles(task.reference_roles, inputs | refs, refs), **ev.reference}
        ev.prediction = {**_infer_roles(task.prediction_roles, outputs, outputs), **ev.prediction}
        for role, slug in ev.reference.items():
            if slug not in inputs | refs:
                raise ValueError(f"evaluation.reference.{role}: no input or reference socket {slug!r}")
        for role, slug in ev.prediction.items():
            if slug not in outputs:
                raise ValueError(f"evaluation.prediction.{role}: no output socket {slug!r}")
        for side, roles, mapping in (("prediction", task.prediction_roles, ev.prediction),
                                     ("reference", task.reference_roles, ev.reference)):
            if len(roles) == 1 and roles[0] not in mapping:
                raise ValueError(f"evaluation.{side}: the {ev.task} task needs its role {roles[0]!r} "
                                 f"mapped to a socket (e.g. {side}: {{{roles[0]}: SOCKET}})")
        for socket in [*self.interface.outputs, *self.interface.references]:
            if socket.same_grid_as and socket.same_grid_as not in inputs:
                raise ValueError(f"interface: {socket.slug}.same_grid_as names no input {socket.same_grid_as!r}")
        try:
            ev.task_settings()
        except ValidationError as exc:
            raise ValueError(f"evaluation.settings: {_first_error(exc)}") from None
        if self.ranking:
            from medarena.evaluators.ranking import RankingRecipe

            try:
                recipe = RankingRecipe.model_validate(self.ranking)
            except ValidationError as exc:
                raise ValueError(f"ranking: {_first_error(exc)}") from None
            scored = ev.settings.get("metrics")
            for i, item in enumerate(recipe.metrics):
                if scored and item.metric not in scored:
                    raise ValueError(f"ranking.metrics.{i}: {item.metric!r} is not among the metrics the "
                                     f"evaluation computes ({', '.join(scored)})")
        return self

    def phase(self, slug: str) -> PhaseDefinition:
        for phase in self.phases:
            if phase.slug == slug:
                return phase
        raise DefinitionError(f"challenge {self.slug!r} has no phase {slug!r}; phases: "
                              f"{', '.join(p.slug for p in self.phases)}")


def _infer_roles(roles: tuple[str, ...], sockets: set[str], candidates: set[str]) -> dict[str, str]:
    """Roles named like a socket map to it; a task's only role maps to the only candidate socket."""
    mapping = {role: role for role in roles if role in sockets}
    if len(roles) == 1 and not mapping and len(candidates) == 1:
        mapping = {roles[0]: next(iter(candidates))}
    return mapping


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    message = err["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def load_definition(path: Path) -> ChallengeDefinition:
    """Read and validate a challenge YAML; raise DefinitionError naming the file and field."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise DefinitionError(f"{path}: no such file") from None
    except OSError as exc:
        raise DefinitionError(f"{path}: cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise DefinitionError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise DefinitionError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise DefinitionError(f"{path}: expected a mapping of fields at the top level")
    return parse_definition(data, source=str(path))


def parse_definition(data: dict[str, Any], source: str = "<definition>") -> ChallengeDefinition:
    try:
        return ChallengeDefinition.model_validate(data)
    except ValidationError as exc:
        raise DefinitionError(f"{source}: {_first_error(exc)}") from None


