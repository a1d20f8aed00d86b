"""Challenge definitions: the organizer's YAML, validated with pydantic.

Every validation error names the file and the field (``demo.yaml: phases.0.closes: ...``). The
rules, with their messages, are listed in the README ("Challenge definition rules").
"""

from __future__ import annotations

import datetime as dt
import re
import stat
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medarena.errors import InvalidInput
from medarena.evaluators.tasks import TASK_MODULES, get_task
from medarena.platform.definitions import Limits, Socket

SLUG = r"^[a-z0-9][a-z0-9_-]{0,63}$"
MAX_DEFINITION_BYTES = 1 << 20
MAX_DEPTH = 20  # nesting of mappings and lists
MAX_VALUES = 10_000  # scalars, mappings and lists, an alias counted each time it is used
MAX_TITLE = 200
MAX_DESCRIPTION = 20_000
MAX_PHASES = 20
MAX_SOCKETS = 32  # per side: inputs, outputs, references
MAX_SUBMISSION_LIMIT = 10_000
MAX_LIMIT_PERIOD_DAYS = 3650
MAX_BOOTSTRAP = 100_000
# Upper bounds of a container run's limits (the lower ones are in definitions.Limits).
LIMIT_BOUNDS = {"wall_time_seconds": 86_400, "memory_mb": 1_048_576, "cpus": 256, "pids": 65_536, "gpus": 16}
PATH_PART = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
MAX_RELATIVE_PATH = 255


class DefinitionError(InvalidInput, ValueError):
    """A challenge definition that cannot be used; the message names the file and the field."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def check_line(value: str, what: str, limit: int, *, required: bool = False) -> str:
    """A title-like text: one line of printable characters, at most ``limit`` long."""
    if required and not value.strip():
        raise ValueError(f"{what} must not be empty or only spaces")
    if len(value) > limit:
        raise ValueError(f"{what} has {len(value)} characters; at most {limit} are allowed")
    bad = next((c for c in value if not c.isprintable()), None)
    if bad is not None:
        raise ValueError(f"{what} must be one line of printable characters; found {bad!r}")
    return value


MAX_BUDGET_HOURS = 1_000_000


class ComputeBudget(Strict):
    """What a phase's algorithm containers may use, counted from the figures recorded for every
    case that ran (a case that failed for a fault of the platform never counts). Once a budget
    is spent, the phase refuses new submissions to it; a submission already queued still runs.
    Leave a field out for no budget of that kind."""

    cpu_hours_per_participant: float | None = Field(
        default=None, gt=0, le=MAX_BUDGET_HOURS, description="CPU hours one participant's submissions to "
        "this phase may use in all")
    gpu_hours_per_participant: float | None = Field(
        default=None, gt=0, le=MAX_BUDGET_HOURS, description="GPU hours (a case's wall time times its GPUs) one "
        "participant's submissions to this phase may use in all")
    cpu_hours_per_challenge: float | None = Field(
        default=None, gt=0, le=MAX_BUDGET_HOURS, description="CPU hours every submission to every phase of the "
        "challenge may use together; checked when submitting to this phase")
    gpu_hours_per_challenge: float | None = Field(
        default=None, gt=0, le=MAX_BUDGET_HOURS, description="GPU hours every submission to every phase of the "
        "challenge may use together; checked when submitting to this phase")


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
    compute_budget: ComputeBudget = Field(default_factory=ComputeBudget, description="CPU and GPU hours the "
                                          "phase's submissions may use; none by default")
    leaderboard_public: bool = Field(default=True, description="anyone may see the leaderboard")
    case_results_public: bool = Field(default=False, description="anyone may see the per-case results")

    @field_validator("title")
    @classmethod
    def _title_line(cls, value: str) -> str:
        return check_line(value, "the title", MAX_TITLE)

    @field_validator("submission_limit")
    @classmethod
    def _limit_bounded(cls, value: int) -> int:
        if value > MAX_SUBMISSION_LIMIT:
            raise ValueError(f"at most {MAX_SUBMISSION_LIMIT} (0 means no limit)")
        return value

    @field_validator("limit_period_days")
    @classmethod
    def _period_bounded(cls, value: float) -> float:
        if value > MAX_LIMIT_PERIOD_DAYS:
            raise ValueError(f"at most {MAX_LIMIT_PERIOD_DAYS} days")
        return value
    # whether participants read the logs of their own cases; logs of a hidden test set leak it
    participant_logs: Literal["none", "own"] | None = Field(
        default=None, description="whether participants read the logs of their own failed cases; "
        "default: own where the leaderboard is public, none where it is hidden (logs leak a hidden test set)")
    max_image_mb: int = Field(default=20_480, gt=0, description="largest image tarball a participant may upload")
    many_cases_per_start: bool = Field(
        default=False, description="an algorithm image labelled org.grand-challenge.api-method=invoke is "
        "started once per worker slot and serves case after case (grand-challenge's invoke API); other "
        "images still run one case per start")

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
        if self.participant_logs is None:
            self.participant_logs = "own" if self.leaderboard_public else "none"
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

    inputs: list[Socket] = Field(min_length=1, max_length=MAX_SOCKETS,
                                 description="what a container receives under /input")
    outputs: list[GridSocket] = Field(min_length=1, max_length=MAX_SOCKETS,
                                      description="what a container must write under /output")
    references: list[GridSocket] = Field(default_factory=list, max_length=MAX_SOCKETS,
                                         description="the ground truth: ingested with the inputs, "
                                         "never mounted into a container")

    @model_validator(mode="after")
    def _distinct_sockets(self) -> Interface:
        """Slugs name the ingest source folders (inputs and references) and the prediction store
        (outputs); relative paths name what a container reads and writes: neither may collide."""
        for side in ("inputs", "outputs", "references"):
            for i, socket in enumerate(getattr(self, side)):
                _check_relative_path(f"interface.{side}.{i}.relative_path", socket.relative_path)
        _distinct_slugs([("inputs", self.inputs), ("references", self.references)])
        _distinct_slugs([("outputs", self.outputs)])
        for side in ("inputs", "outputs"):
            _separate_paths(side, getattr(self, side))
        return self

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
    """How each case is scored: a built-in task (which socket plays which of its roles, its
    settings), or the organizer's own evaluation container, or both.

    A role named like a socket maps to it, and a task's only role maps to the only candidate
    socket, so simple definitions can leave ``reference`` and ``prediction`` out.
    """

    task: str | None = Field(default=None, description="segmentation, detection, classification, registration "
                             "or fusion; may be left out when an evaluation container scores the phase")
    container: EvaluationContainer | None = Field(default=None, description="the organizer's evaluation "
                                                  "container, as on grand-challenge.org")
    # task role -> socket slug; roles of the reference side may name input or reference sockets
    reference: dict[str, str] = Field(default_factory=dict, description="task role -> input or reference "
                                      "socket (e.g. mask: segmentation)")
    prediction: dict[str, str] = Field(default_factory=dict, description="task role -> output socket")
    settings: dict[str, Any] = Field(default_factory=dict, description="the task's settings (below)")

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str | None) -> str | None:
        if value is not None and value not in TASK_MODULES:
            raise ValueError(f"unknown task {value!r}; known: {', '.join(TASK_MODULES)}")
        return value

    def task_settings(self):
        return get_task(self.task).Settings.model_validate(self.settings)


class ChallengeDefinition(Strict):
    """The top level of a challenge YAML."""

    slug: str = Field(pattern=SLUG, description="the challenge's name in commands and URLs")
    title: str
    description: str = Field(default="", description="shown on the challenge's page (as plain text)")
    phases: list[PhaseDefinition] = Field(min_length=1, max_length=MAX_PHASES)
    interface: Interface
    evaluation: Evaluation
    ranking: dict[str, Any] = Field(default_factory=dict, description="a RankingRecipe; empty: "
                                    "aggregate-then-rank on the mean of every metric the evaluation computes")
    limits: Limits = Field(default_factory=Limits, description="per container run, for every case")
    registration_needs_approval: bool = Field(default=False, description="a participant's registration "
                                              "waits for an organizer's approval")

    @field_validator("title")
    @classmethod
    def _title_line(cls, value: str) -> str:
        return check_line(value, "the title", MAX_TITLE, required=True)

    @field_validator("description")
    @classmethod
    def _description_text(cls, value: str) -> str:
        if len(value) > MAX_DESCRIPTION:
            raise ValueError(f"the description has {len(value)} characters; at most {MAX_DESCRIPTION} are allowed")
        bad = next((c for c in value if not c.isprintable() and c not in "\n\t"), None)
        if bad is not None:
            raise ValueError(f"the description must be printable text (line breaks and tabs allowed); found {bad!r}")
        return value

    @model_validator(mode="after")
    def _bounded_limits(self) -> ChallengeDefinition:
        for name, bound in LIMIT_BOUNDS.items():
            value = getattr(self.limits, name, None)
            if value is not None and value > bound:
                raise ValueError(f"limits.{name}: {value} is more than the largest allowed, {bound}")
        return self

    @model_validator(mode="after")
    def _consistent(self) -> ChallengeDefinition:
        slugs = [p.slug for p in self.phases]
        for i, slug in enumerate(slugs):
            if slug in slugs[:i]:
                raise ValueError(f"phases.{i}.slug: {slug!r} is already the slug of phases.{slugs.index(slug)}; "
                                 f"phase slugs must be unique")
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
        for side, roles, mapping in (("reference", task.reference_roles, ev.reference),
                                     ("prediction", task.prediction_roles, ev.prediction)):
            for role in mapping:
                if role not in roles:
                    raise ValueError(f"evaluation.{side}.{role}: the {ev.task} task has no {side} role {role!r}; "
                                     f"its roles: {', '.join(roles)}")
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
            if recipe.bootstrap > MAX_BOOTSTRAP:
                raise ValueError(f"ranking.bootstrap: at most {MAX_BOOTSTRAP} resamples")
            scored = ev.settings.get("metrics")
            # segmentation rows are named by the declared labels (registration adds landmark rows)
            labels = getattr(ev.task_settings(), "labels", None) if ev.task == "segmentation" else None
            for i, item in enumerate(recipe.metrics):
                if scored and item.metric not in scored:
                    raise ValueError(f"ranking.metrics.{i}: {item.metric!r} is not among the metrics the "
                                     f"evaluation computes ({', '.join(scored)})")
                if isinstance(labels, dict) and item.label is not None and item.label not in labels:
                    raise ValueError(f"ranking.metrics.{i}.label: {item.label!r} is not among the labels of "
                                     f"evaluation.settings.labels ({', '.join(labels)})")
        return self

    def phase(self, slug: str) -> PhaseDefinition:
        for phase in self.phases:
            if phase.slug == slug:
                return phase
        raise DefinitionError(f"challenge {self.slug!r} has no phase {slug!r}; phases: "
                              f"{', '.join(p.slug for p in self.phases)}")


def _check_relative_path(where: str, value: str) -> None:
    if len(value) > MAX_RELATIVE_PATH:
        raise ValueError(f"{where}: {len(value)} characters; at most {MAX_RELATIVE_PATH} are allowed")
    for part in PurePosixPath(value).parts:
        if not PATH_PART.match(part):
            raise ValueError(f"{where}: {value!r} has the part {part!r}; each part must be letters, digits, "
                             f"'-', '_' or '.', not starting with '.'")


def _distinct_slugs(sides: list[tuple[str, list[Socket]]]) -> None:
    scope = " across inputs and references (they name the ingest source folders)" if len(sides) > 1 else ""
    seen: dict[str, str] = {}
    for side, sockets in sides:
        for i, socket in enumerate(sockets):
            if socket.slug in seen:
                raise ValueError(f"interface.{side}.{i}.slug: {socket.slug!r} is already the slug of "
                                 f"{seen[socket.slug]}; socket slugs must be unique{scope}")
            seen[socket.slug] = f"interface.{side}.{i}"


def _separate_paths(side: str, sockets: list[Socket]) -> None:
    """No two sockets of a side at the same relative path, nor one inside another's folder."""
    paths = [PurePosixPath(s.relative_path) for s in sockets]
    for i, path in enumerate(paths):
        for j, other in enumerate(paths[:i]):
            if path == other or path.is_relative_to(other) or other.is_relative_to(path):
                raise ValueError(f"interface.{side}.{i}.relative_path: {str(path)!r} is the same as or overlaps "
                                 f"{str(other)!r} of interface.{side}.{j}; each socket needs its own path")


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
    if not where or message.startswith((f"{where}.", f"{where}:")):  # the message names the field itself
        return message
    return f"{where}: {message}"


def load_definition(path: Path) -> ChallengeDefinition:
    """Read and validate a challenge YAML; raise DefinitionError naming the file and field."""
    path = Path(path)
    return load_definition_text(_read_definition(path), str(path))


def load_definition_text(text: str, source: str) -> ChallengeDefinition:
    """Validate a challenge definition given as YAML text; ``source`` names it in errors."""
    if len(text.encode()) > MAX_DEFINITION_BYTES:
        raise DefinitionError(f"{source}: larger than {MAX_DEFINITION_BYTES} bytes, the most a definition may be")
    try:
        _check_shape(yaml.parse(text, Loader=_LOADER), source)
        data = yaml.load(text, Loader=_DefinitionLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise DefinitionError(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    _check_expanded(data, source)
    if not isinstance(data, dict):
        raise DefinitionError(f"{source}: expected a mapping of fields at the top level")
    return parse_definition(data, source=source)


def _read_definition(path: Path) -> str:
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(21, "Is a directory")
        if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
            raise DefinitionError(f"{path}: not a regular file")
        with path.open("rb") as file:
            raw = file.read(MAX_DEFINITION_BYTES + 1)
    except FileNotFoundError:
        raise DefinitionError(f"{path}: no such file") from None
    except OSError as exc:
        raise DefinitionError(f"{path}: cannot be read ({exc.strerror})") from None
    if len(raw) > MAX_DEFINITION_BYTES:
        raise DefinitionError(f"{path}: larger than {MAX_DEFINITION_BYTES} bytes, the most a definition may be")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DefinitionError(f"{path}: not UTF-8 text (byte {exc.start})") from None


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _DefinitionLoader(_LOADER):
    """The safe loader, refusing a key given twice in one mapping (PyYAML would keep the last)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    repeated = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: the base class reports it
                    continue
                if repeated:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key!r} appears twice in one mapping", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _check_shape(events, path: Path | str) -> None:
    """Refuse deep nesting and too many values while parsing, before anything is built."""
    depth = count = 0
    for event in events:
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise DefinitionError(f"{path}: line {event.start_mark.line + 1}: nested more than {MAX_DEPTH} "
                                      f"levels deep")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        if isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            count += 1
            if count > MAX_VALUES:
                raise DefinitionError(f"{path}: more than {MAX_VALUES} values")


def _check_expanded(data: Any, path: Path | str) -> None:
    """The same bounds once aliases are expanded (a few anchors can stand for millions of values)."""
    stack, count = [(data, 0)], 0
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise DefinitionError(f"{path}: more than {MAX_VALUES} values once aliases are expanded")
        if depth > MAX_DEPTH:
            raise DefinitionError(f"{path}: nested more than {MAX_DEPTH} levels deep once aliases are expanded")
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for pair in value.items() for item in pair)
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)


def parse_definition(data: dict[str, Any], source: str = "<definition>") -> ChallengeDefinition:
    try:
        return ChallengeDefinition.model_validate(data)
    except ValidationError as exc:
        raise DefinitionError(f"{source}: {_first_error(exc)}") from None


