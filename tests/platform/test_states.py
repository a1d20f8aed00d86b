"""The one table of state moves: legal moves pass, illegal ones are refused, the package writes
no state without it, and the design page shows the same table."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from medarena.errors import Conflict
from medarena.platform import states
from medarena.platform.states import (
    EVALUATIONS,
    JOBS,
    ROLES,
    SUBMISSIONS,
    UPLOADS,
    EvaluationState,
    IllegalTransition,
    JobState,
    RoleState,
    SubmissionState,
    UploadState,
    transition,
)

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "medarena"
MACHINES = [JOBS, SUBMISSIONS, EVALUATIONS, UPLOADS, ROLES]

J, S, E, U, R = JobState, SubmissionState, EvaluationState, UploadState, RoleState


def test_stored_values_are_unchanged():
    """Rows written before the enums read back as the same states (no migration)."""
    assert [s.value for s in JobState] == ["queued", "running", "evaluating", "succeeded", "failed", "cancelled"]
    assert [s.value for s in SubmissionState] == ["queued", "running", "succeeded", "failed", "cancelled"]
    assert [s.value for s in EvaluationState] == ["succeeded", "failed"]
    assert [s.value for s in UploadState] == ["open", "complete", "used", "expired", "failed"]
    assert [s.value for s in RoleState] == ["pending", "approved"]
    assert JobState.QUEUED == "queued" and f"{JobState.FAILED}" == "failed"


# the moves the platform makes, read off the design (docs/design.md, "Job and submission states")
LEGAL = [
    (None, J.QUEUED), (J.QUEUED, J.RUNNING), (J.RUNNING, J.EVALUATING), (J.EVALUATING, J.SUCCEEDED),
    (J.RUNNING, J.FAILED), (J.EVALUATING, J.FAILED),
    (J.QUEUED, J.CANCELLED), (J.RUNNING, J.CANCELLED), (J.EVALUATING, J.CANCELLED),
    (J.RUNNING, J.QUEUED), (J.EVALUATING, J.QUEUED),  # a platform fault: the job waits again
    (J.QUEUED, J.EVALUATING),  # ... and, its outputs stored, is only evaluated
    (J.RUNNING, J.RUNNING), (J.EVALUATING, J.EVALUATING),  # a new driver resumes a stopped one's jobs
    (J.SUCCEEDED, J.EVALUATING), (J.FAILED, J.EVALUATING),  # re-evaluation
    (None, S.QUEUED), (S.QUEUED, S.RUNNING), (S.RUNNING, S.SUCCEEDED), (S.RUNNING, S.FAILED),
    (S.QUEUED, S.CANCELLED), (S.RUNNING, S.CANCELLED), (S.SUCCEEDED, S.RUNNING), (S.FAILED, S.RUNNING),
    (None, E.SUCCEEDED), (None, E.FAILED),
    (None, U.OPEN), (U.OPEN, U.COMPLETE), (U.OPEN, U.FAILED), (U.OPEN, U.EXPIRED), (U.COMPLETE, U.USED),
    (U.COMPLETE, U.EXPIRED),
    (None, R.PENDING), (None, R.APPROVED), (R.PENDING, R.APPROVED), (R.APPROVED, R.APPROVED),
]

ILLEGAL = [
    (None, J.RUNNING), (J.QUEUED, J.SUCCEEDED), (J.QUEUED, J.FAILED), (J.RUNNING, J.SUCCEEDED),
    (J.SUCCEEDED, J.RUNNING), (J.SUCCEEDED, J.FAILED), (J.FAILED, J.SUCCEEDED), (J.FAILED, J.QUEUED),
    (J.SUCCEEDED, J.CANCELLED), (J.CANCELLED, J.RUNNING), (J.CANCELLED, J.QUEUED), (J.CANCELLED, J.EVALUATING),
    (J.QUEUED, J.QUEUED),
    (None, S.RUNNING), (S.QUEUED, S.SUCCEEDED), (S.QUEUED, S.FAILED), (S.SUCCEEDED, S.FAILED),
    (S.SUCCEEDED, S.CANCELLED), (S.FAILED, S.CANCELLED), (S.CANCELLED, S.RUNNING), (S.CANCELLED, S.QUEUED),
    (E.SUCCEEDED, E.FAILED), (E.FAILED, E.SUCCEEDED), (E.SUCCEEDED, E.SUCCEEDED),
    (None, U.COMPLETE), (U.OPEN, U.USED), (U.EXPIRED, U.COMPLETE), (U.FAILED, U.OPEN), (U.USED, U.OPEN),
    (U.USED, U.EXPIRED), (U.EXPIRED, U.OPEN),
    (R.APPROVED, R.PENDING), (R.PENDING, R.PENDING),
]


@pytest.mark.parametrize(("current", "new"), LEGAL, ids=str)
def test_a_legal_move_is_accepted(current, new):
    assert transition(current, new) is new
    assert transition(None if current is None else current.value, new) is new  # as read from the database


def test_the_table_holds_exactly_the_legal_moves():
    table = {(now, then) for machine in MACHINES for now, then in machine.legal()}
    resets = {(E.SUCCEEDED, None), (E.FAILED, None), (None, None)}  # re-evaluation; never run stays so
    assert table == set(LEGAL) | resets


def test_every_move_off_the_table_is_refused():
    for machine in MACHINES:
        every = [None, *machine.states]
        for now in every:
            for then in every:
                if (now, then) in machine.legal():
                    continue
                with pytest.raises(IllegalTransition):
                    machine.move(now, then)


@pytest.mark.parametrize(("current", "new"), ILLEGAL, ids=str)
def test_an_illegal_move_is_refused_with_a_conflict(current, new):
    with pytest.raises(IllegalTransition) as caught:
        transition(current, new)
    assert isinstance(caught.value, Conflict) and caught.value.http_status == 409
    kind = {J: "job", S: "submission", E: "evaluation", U: "upload", R: "role"}[type(new)]
    assert str(caught.value) == f"a {kind} cannot go from {current or '(none)'} to {new}"


def test_resetting_an_evaluation():
    assert EVALUATIONS.move("succeeded", None) is None
    assert EVALUATIONS.move("failed", None) is None
    assert EVALUATIONS.move(None, None) is None


def test_the_new_state_must_be_an_enum_member():
    with pytest.raises(TypeError, match="not 'running'"):
        transition("queued", "running")


def test_a_stored_value_that_is_no_state_is_refused():
    with pytest.raises(IllegalTransition, match=r"'finished' is not a job state \(one of queued, running"):
        transition("finished", J.RUNNING)
    with pytest.raises(IllegalTransition, match="'evaluating' is not a submission state"):
        transition("evaluating", S.RUNNING)


# ------------------------------------------------------------------ the package writes through it

STATE_FIELDS = {"state", "evaluation_state"}
STATE_LITERALS = {s.value for machine in MACHINES for s in machine.states}
# in-memory values named "state" that are no database column: a case's outcome on its way back
# from a Ray worker (the driver records it through the table)
NOT_COLUMNS = {"outcome"}
WRITERS = {"transition", "move"}


def _is_writer(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Name) and node.func.id in WRITERS)
        or (isinstance(node.func, ast.Attribute) and node.func.attr in WRITERS))


def _targets(target: ast.expr, value: ast.expr):
    """(target, value) pairs of an assignment, tuple assignments taken apart."""
    if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
        for t, v in zip(target.elts, value.elts, strict=True):
            yield from _targets(t, v)
    else:
        yield target, value


def _is_state_field(node: ast.expr) -> bool:
    if isinstance(node, ast.Attribute):
        return node.attr in STATE_FIELDS and not (isinstance(node.value, ast.Name) and node.value.id in NOT_COLUMNS)
    return (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
            and node.slice.value in STATE_FIELDS)


def _literals(node: ast.expr) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value} & STATE_LITERALS
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return set().union(*(_literals(e) for e in node.elts)) if node.elts else set()
    return set()


def bypasses(source: str) -> list[str]:
    """Writes of a state that skip :func:`transition`, and state literals compared with a state."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                for t, v in _targets(target, node.value):
                    if not (isinstance(t, ast.Attribute) and t.attr in STATE_FIELDS):
                        continue
                    if _literals(v) or (_is_state_field(t) and not _is_writer(v)):
                        found.append(f"line {node.lineno}: {ast.unparse(t)} = {ast.unparse(v)}")
        elif isinstance(node, ast.Call):  # Job(state=...), update(...).values(state=...)
            for keyword in node.keywords:
                if keyword.arg in STATE_FIELDS and not _is_writer(keyword.value) and (
                        _literals(keyword.value) or _model_call(node)):
                    found.append(f"line {node.lineno}: {ast.unparse(node.func)}({keyword.arg}="
                                 f"{ast.unparse(keyword.value)})")
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_is_state_field(s) for s in sides) and any(_literals(s) for s in sides):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "in_"
                and _is_state_field(node.func.value) and any(_literals(a) for a in node.args)):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


MODELS = {"Job", "Submission", "Upload", "ChallengeRole", "values"}


def _model_call(node: ast.Call) -> bool:
    func = node.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    return name in MODELS


def test_the_package_writes_and_reads_states_only_through_the_table():
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts or path.name == "states.py" or "evaluators" in path.parts:
            continue
        if problems := bypasses(path.read_text(encoding="utf-8")):
            found[str(path.relative_to(REPO))] = problems
    assert not found, found


@pytest.mark.parametrize("line", [
    'job.state = "failed"',
    "job.state = JobState.FAILED",
    'job.state, job.finished_at = "cancelled", now',
    'submission.evaluation_state = "succeeded" if ok else "failed"',
    'Job(case=case, state="queued")',
    "Submission(phase=phase, state=SubmissionState.QUEUED)",
    'session.execute(update(Job).where(Job.id == 1).values(state="running"))',
    'session.execute(update(Job).values(state=JobState.RUNNING))',
    'if job.state == "succeeded": pass',
    'if submission.state in ("succeeded", "failed"): pass',
    'select(Job).where(Job.state.in_(("queued", "running")))',
    'ok = data["evaluation_state"] != "failed"',
    'outcome.state = "evaluating"',
    'CaseOutcome(case="a", state="failed")',
])
def test_the_scan_finds_a_bypass(line):
    assert bypasses(line), line


@pytest.mark.parametrize("line", [
    "job.state = transition(job.state, JobState.FAILED)",
    "job.state, job.finished_at = transition(job.state, JobState.CANCELLED), now",
    "submission.evaluation_state = EVALUATIONS.move(submission.evaluation_state, None)",
    "Job(case=case, state=transition(None, JobState.QUEUED))",
    "if job.state == JobState.SUCCEEDED: pass",
    'outcome.state = JobState.EVALUATING',
    'CaseOutcome(case="a", state=JobState.FAILED)',
])
def test_the_scan_passes_what_goes_through_the_table(line):
    assert not bypasses(line), line


# ------------------------------------------------------------------ the design page

def test_the_design_page_shows_the_table():
    page = (REPO / "docs" / "design.md").read_text(encoding="utf-8")
    for machine in MACHINES:
        assert states.markdown_table(machine) in page, machine.kind


# ------------------------------------------------------------------ in the database

def _submission_with_jobs(home, job_states: list[str], state: str = "running") -> tuple[int, list[int]]:
    from medarena.platform.database import Case, Challenge, Job, Phase, Submission, session_scope
    from tests.platform.challenge_data import definition

    with session_scope(home.database_url) as session:
        phase = Phase(slug="test", challenge=Challenge(slug="toy", title="Toy", definition=definition()))
        submission = Submission(phase=phase, participant="ann", image="i", image_digest="d", state=state)
        for i, job_state in enumerate(job_states):
            submission.jobs.append(Job(case=Case(phase=phase, name=f"case{i}", checksum="0"), state=job_state))
        session.add(submission)
        session.flush()
        return submission.id, [j.id for j in submission.jobs]


def test_states_are_stored_as_their_plain_values(home):
    from sqlalchemy import text

    from medarena.platform.database import session_scope

    sid, _ = _submission_with_jobs(home, [JobState.EVALUATING], state=SubmissionState.RUNNING)
    with session_scope(home.database_url) as session:
        assert session.execute(text("SELECT state FROM submissions WHERE id = :i"), {"i": sid}).scalar() == "running"
        assert session.execute(text("SELECT state FROM jobs")).scalars().all() == ["evaluating"]


def test_a_job_cancelled_while_it_waits_to_be_dispatched_stays_cancelled(home):
    from medarena.platform import scheduler
    from medarena.platform.database import Job, Submission, session_scope
    from medarena.platform.scheduling import recorder

    sid, (job_id,) = _submission_with_jobs(home, ["queued"])
    assert scheduler.cancel(home, sid) == 1
    recorder.set_jobs(home, [job_id], JobState.RUNNING, started=True)
    with session_scope(home.database_url) as session:
        job = session.get(Job, job_id)
        assert (job.state, job.attempts, job.started_at) == ("cancelled", 0, None)
        assert session.get(Submission, sid).state == "cancelled"


def test_an_outcome_for_a_job_that_ended_is_refused_and_nothing_is_written(home):
    from medarena.platform import scheduler
    from medarena.platform.casejob import CaseOutcome
    from medarena.platform.database import Job, session_scope

    sid, (job_id,) = _submission_with_jobs(home, ["succeeded"])
    item = scheduler.Pending(job_id, sid, None, "evaluate", {})
    outcome = CaseOutcome(case="case0", state=JobState.FAILED, reason="invalid_output", detail="late")
    with pytest.raises(IllegalTransition, match="a job cannot go from succeeded to failed"):
        scheduler._record(home, item, outcome)
    with session_scope(home.database_url) as session:
        job = session.get(Job, job_id)
        assert (job.state, job.reason, job.detail) == ("succeeded", None, "")


def test_reevaluation_moves_ended_submissions_through_the_table(home):
    from medarena.platform import scheduler
    from medarena.platform.database import Submission, session_scope

    sid, _ = _submission_with_jobs(home, ["succeeded", "failed"], state="succeeded")
    with session_scope(home.database_url) as session:
        session.get(Submission, sid).evaluation_state = EVALUATIONS.move(None, EvaluationState.FAILED)
    assert scheduler.prepare_reevaluation(home, [sid]) == [sid]
    with session_scope(home.database_url) as session:
        submission = session.get(Submission, sid)
        assert (submission.state, submission.evaluation_state) == ("running", None)
        assert [j.state for j in submission.jobs] == ["evaluating", "failed"]  # no stored output: kept
