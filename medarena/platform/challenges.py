"""Challenge definitions: the organizer's YAML, validated with pydantic.

Every validation error names the file and the field (``demo.yaml: phases.0.closes: ...``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

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
    slug: str = Field(pattern=SLUG)
    title: str = ""
    opens: dt.datetime | None = None
    closes: dt.datetime | None = None
    submission_limit: int = Field(default=5, ge=0, description="per participant per period; 0 = none")
    limit_period_days: float = Field(default=1.0, gt=0)
    leaderboard_public: bool = True
    case_results_public: bool = False

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
    same_grid_as: str | None = Field(
        default=None, description="input socket whose image grid this image must match")


GRID_BOUND_KINDS = ("segmentation", "heat-map", "displacement-field")


class Interface(Strict):
    inputs: list[Socket] = Field(min_length=1)
    outputs: list[GridSocket] = Field(min_length=1)
    references: list[GridSocket] = Field(default_factory=list)

    @model_validator(mode="after")
    def _default_grids(self) -> Interface:
        """With one input image, segmentations, heat maps and fields lie on its grid unless told;
        with several (fixed and moving...), each must say which grid it lies on, or none is checked."""
        images = [s.slug for s in self.inputs if s.is_image]
        for socket in [*self.outputs, *self.references]:
            if socket.same_grid_as is None and socket.kind in GRID_BOUND_KINDS and len(images) == 1:
                object.__setattr__(socket, "same_grid_as", images[0])
        return self


JSONPATH = r"^[^.\s]+(\.[^.\s]+)*$"  # the dotted subset of JSONPath that grand-challenge reads: keys only


class ResultsColumn(Strict):
    """One extra leaderboard column read from metrics.json (grand-challenge's extra_results_columns)."""

    title: str = Field(min_length=1, max_length=100)
    path: str = Field(pattern=JSONPATH, max_length=500)
    order: Literal["asc", "desc"] = "desc"
    error_path: str | None = Field(default=None, pattern=JSONPATH, max_length=500)
    exclude_from_ranking: bool = False


class EvaluationContainer(Strict):
    """The organizer's own evaluation image, run once per submission with grand-challenge's
    evaluation contract (see :mod:`medarena.platform.evaluation_container`)."""

    image: str = Field(min_length=1, description="an image tarball (podman/docker save) or a local image name")
    ground_truth: str | None = Field(default=None, description="a folder or .tar.gz, relative to the definition")
    score_jsonpath: str = Field(pattern=JSONPATH, max_length=500)
    score_title: str = Field(default="score", min_length=1, max_length=100)
    score_default_sort: Literal["asc", "desc"] = "desc"
    score_error_jsonpath: str | None = Field(default=None, pattern=JSONPATH, max_length=500)
    extra_results_columns: list[ResultsColumn] = Field(default_factory=list, max_length=50)
    limits: Limits = Field(default_factory=Limits)
    # pinned by `challenge create`, never written by the organizer
    image_digest: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")
    ground_truth_digest: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _distinct_titles(self) -> EvaluationContainer:
        titles = [self.score_title, *(c.title for c in self.extra_results_columns)]
        if len(set(titles)) != len(titles):
            raise ValueError("extra_results_columns: two columns share a title (the score's among them)")
        return self


class Evaluation(Strict):
    task: str | None = None
    container: EvaluationContainer | None = None
    # task role -> socket slug; roles of the reference side may name input or reference sockets
    reference: dict[str, str] = Field(default_factory=dict)
    prediction: dict[str, str] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str | None) -> str | None:
        if value is not None and value not in TASK_MODULES:
            raise ValueError(f"unknown task {value!r}; known: {', '.join(TASK_MODULES)}")
        return value

    def task_settings(self):
        return get_task(self.task).Settings.model_validate(self.settings)


class ChallengeDefinition(Strict):
    slug: str = Field(pattern=SLUG)
    title: str
    description: str = ""
    phases: list[PhaseDefinition] = Field(min_length=1)
    interface: Interface
    evaluation: Evaluation
    ranking: dict[str, Any] = Field(default_factory=dict)
    limits: Limits = Field(default_factory=Limits)

    @model_validator(mode="after")
    def _consistent(self) -> ChallengeDefinition:
        slugs = [p.slug for p in self.phases]
        if len(set(slugs)) != len(slugs):
            raise ValueError("phases: two phases share a slug")
        inputs = {s.slug for s in self.interface.inputs}
        outputs = {s.slug for s in self.interface.outputs}
        refs = {s.slug for s in self.interface.references}
        for socket in [*self.interface.outputs, *self.interface.references]:
            if socket.same_grid_as and socket.same_grid_as not in inputs:
                raise ValueError(f"interface: {socket.slug}.same_grid_as names no input {socket.same_grid_as!r}")
        ev = self.evaluation
        if ev.task is None:
            if ev.container is None:
                raise ValueError("evaluation: give a built-in task, an evaluation container, or both")
            if ev.reference or ev.prediction or ev.settings:
                raise ValueError("evaluation: reference, prediction and settings need a built-in task")
            return self._check_ranking(ev)
        task = get_task(ev.task)
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
        try:
            ev.task_settings()
        except ValidationError as exc:
            raise ValueError(f"evaluation.settings: {_first_error(exc)}") from None
        return self._check_ranking(ev)

    def _check_ranking(self, ev: Evaluation) -> ChallengeDefinition:
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


