"""The scheduler on the fake container backend: states, reasons, retries, fair dispatch and
re-evaluation in seconds, with no podman at all (a ``podman`` on the PATH that records any call
proves that none is made). The same paths with real containers: test_scheduler.py."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import SimpleITK as sitk
import yaml
import zarr
from sqlalchemy import select

from medarena.platform import organizer, outputfs, scheduler
from medarena.platform.challenges import ChallengeDefinition
from medarena.platform.containers import fake
from medarena.platform.containers.fake import FakeBackend, FakeContainer
from medarena.platform.database import Job, LeaderboardEntry, MetricValue, Submission, session_scope
from medarena.platform.runner import RunnerError
from medarena.platform.scheduler import InProcessAdapter
from medarena.platform.settings import load_settings
from tests.platform.challenge_data import cube_case, definition, write_definition, write_source

LIMITS = {"wall_time_seconds": 4, "memory_mb": 256, "cpus": 1, "output_mb": 1}


# ---------------------------------------------------------------------------------------------
# the "algorithms"


def _scan(box: FakeContainer) -> sitk.Image:
    (path,) = (box.input_dir / "images" / "scan").glob("*.mha")
    return sitk.ReadImage(str(path))


def _write_segmentation(box: FakeContainer, image: sitk.Image) -> None:
    folder = box.output_dir / "images" / "segmentation"
    folder.mkdir(parents=True)
    sitk.WriteImage(image, str(folder / "mask.mha"))


def threshold(box: FakeContainer) -> None:
    # the toy cases are a box of 250 on a background of 50 +- 5: 125 separates them exactly
    _write_segmentation(box, sitk.Cast(_scan(box) > 125, sitk.sitkUInt8))


def wrong_grid(box: FakeContainer) -> None:
    _write_segmentation(box, sitk.Image(2, 2, 2, sitk.sitkUInt8))


def too_much_output(box: FakeContainer) -> None:
    (box.output_dir / "big.bin").write_bytes(b"\1" * (2 * 2**20))  # the phase allows 1 MB


_faults: dict[str, int] = {}


def fails_once(box: FakeContainer) -> None:
    _faults[box.name] = _faults.get(box.name, 0) + 1
    if _faults[box.name] == 1:
        raise RunnerError("podman could not start the container (simulated)")
    threshold(box)


for _program in (threshold, wrong_grid, too_much_output, fails_once):
    fake.register(f"test/{_program.__name__.replace('_', '-')}", _program)


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture
def no_podman(tmp_path, monkeypatch):
    """A PATH whose only podman writes down that it was called, and fails."""
    folder = tmp_path / "tripwire"
    folder.mkdir()
    calls = tmp_path / "podman-calls"
    script = folder / "podman"
    script.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\nexit 125\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    yield calls
    assert not calls.exists(), f"podman was called: {calls.read_text()}"


@pytest.fixture
def toy(home, tmp_path, monkeypatch, no_podman):
    monkeypatch.setenv("MEDARENA_CONTAINER_BACKEND", "fake")
    # /output as a plain watched folder: no loop mount per case (the capped one: test_output_safety.py)
    monkeypatch.setattr(outputfs, "loop_mount_available", lambda: False)
    settings = load_settings()
    assert settings.container_backend == "fake"
    organizer.create_challenge(settings, write_definition(tmp_path / "toy.yaml", limits=LIMITS))
    organizer.ingest_phase(settings, "toy", "test", write_source(tmp_path / "src", n=2))
    FakeBackend.runs.clear()
    return settings


def _run(settings, ids=None, slots=2, **kwargs) -> list[int]:
    return scheduler.run(settings, ids, executor=InProcessAdapter(slots=slots), **kwargs)


def _jobs(settings, submission_id) -> list[Job]:
    with session_scope(settings.database_url) as session:
        return sorted(session.get(Submission, submission_id).jobs, key=lambda j: j.case.name)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


# ---------------------------------------------------------------------------------------------
# tests


def test_every_way_a_case_ends_gets_its_state_and_reason(toy):
    images = {"good": "test/threshold", "crash": "fake/crash", "slow": "fake/timeout", "greedy": "fake/oom",
              "silent": "fake/noop", "sloppy": "test/wrong-grid", "chatty": "test/too-much-output",
              "broken": "fake/image-error"}
    ids = {who: organizer.submit(toy, "toy", "test", who, image)[0] for who, image in images.items()}
    progress = []
    assert sorted(_run(toy, on_progress=lambda d, t, o: progress.append((d, t)))) == sorted(ids.values())
    assert progress[0] == (0, 16) and progress[-1] == (16, 16)

    ended = {who: [(j.state, j.reason) for j in _jobs(toy, sid)] for who, sid in ids.items()}
    assert ended["good"] == [("succeeded", None)] * 2
    for who, reason in (("crash", "exit_code"), ("slow", "timeout"), ("greedy", "out_of_memory"),
                        ("silent", "missing_output"), ("sloppy", "invalid_output"),
                        ("chatty", "output_too_large"), ("broken", "image_error")):
        assert ended[who] == [("failed", reason)] * 2, who
    crash = _jobs(toy, ids["crash"])[0]
    assert crash.detail == "the algorithm exited with code 3: crashing on purpose"
    assert crash.stderr_tail == "crashing on purpose\n" and crash.attempts == 1
    assert _jobs(toy, ids["slow"])[0].detail == "stopped after the wall-time limit of 4 s"
    assert _jobs(toy, ids["greedy"])[0].detail == "killed for exceeding the memory limit of 256 MB"
    assert _jobs(toy, ids["chatty"])[0].detail == "stopped: wrote more than the output limit of 1 MB"
    assert _jobs(toy, ids["silent"])[0].stdout_tail == "doing nothing\n"

    predictions = zarr.open_group(scheduler.predictions_url(toy, "toy", "test", ids["good"]), mode="r")
    with session_scope(toy.database_url) as session:
        states = {s.participant: s.state for s in session.scalars(select(Submission))}
        assert states == {"good": "succeeded", **{who: "failed" for who in images if who != "good"}}
        for job in _jobs(toy, ids["good"]):
            _, mask = cube_case(int(job.case.name[-1]))
            assert np.array_equal(predictions[job.case.name]["segmentation"][...], mask)
            dice = session.scalar(select(MetricValue.value).where(
                MetricValue.job_id == job.id, MetricValue.metric == "dice", MetricValue.label == "fg"))
            assert dice == _dice(mask == 1, mask == 1) == 1.0
        board = session.scalars(select(LeaderboardEntry).order_by(LeaderboardEntry.rank)).all()
        assert board[0].submission_id == ids["good"] and board[0].columns["cases succeeded"] == "2/2"
    assert len(FakeBackend.runs) == 16  # one container run per case, none for the evaluations
    assert _run(toy) == [] and len(FakeBackend.runs) == 16  # nothing left to do: nothing runs again


def test_a_platform_fault_is_retried_and_never_charged(toy):
    sid, _ = organizer.submit(toy, "toy", "test", "ann", "test/fails-once")
    assert _run(toy) == [sid]
    for job in _jobs(toy, sid):
        assert (job.state, job.reason, job.attempts) == ("succeeded", None, 2)
        assert "RunnerError: podman could not start the container (simulated)" in job.platform_log
        assert "simulated" not in job.detail


def test_a_fault_that_persists_leaves_the_cases_queued_for_a_later_run(toy):
    sid, _ = organizer.submit(toy, "toy", "test", "ann", "fake/platform-fault")
    notices = []
    assert _run(toy, on_notice=notices.append) == []
    assert [(j.state, j.attempts) for j in _jobs(toy, sid)] == [("queued", scheduler.MAX_PLATFORM_ATTEMPTS)] * 2
    assert any("2 case(s) stay queued after 3 platform faults" in n for n in notices)
    with session_scope(toy.database_url) as session:
        assert session.get(Submission, sid).state == "running"


def test_two_participants_take_the_slots_by_turns_not_in_submission_order(toy, tmp_path):
    organizer.ingest_phase(toy, "toy", "test", write_source(tmp_path / "more", n=5))
    first, _ = organizer.submit(toy, "toy", "test", "ann", "test/threshold")
    second, _ = organizer.submit(toy, "toy", "test", "bob", "test/threshold")
    _run(toy)
    job_of = {j.id: sid for sid in (first, second) for j in _jobs(toy, sid)}
    order = [job_of[int(spec.name.rsplit("-j", 1)[1])] for spec in FakeBackend.runs]
    # two slots: ann's first case, bob's first case; each freed slot goes to the participant
    # served longest ago (in submission order, bob would wait for all five of ann's cases)
    assert order == [first, second] * 5


class CountingAdapter(InProcessAdapter):
    """The in-process executor, writing down how many cases each task it is handed holds."""

    def __init__(self, slots: int = 2) -> None:
        super().__init__(slots=slots)
        self.tasks: list[int] = []

    def submit(self, stage, job, resources):
        self.tasks.append(1)
        return super().submit(stage, job, resources)

    def submit_many(self, stage, jobs, resources):
        self.tasks.append(len(jobs))
        return super().submit_many(stage, jobs, resources)


@pytest.mark.parametrize("cap, largest", [(0, scheduler.SERVED_CASES_PER_TASK), (3, 3)])
def test_a_served_phase_hands_a_slot_its_cases_a_few_at_a_time(home, tmp_path, monkeypatch, no_podman, cap,
                                                                 largest):
    monkeypatch.setenv("MEDARENA_CONTAINER_BACKEND", "fake")
    monkeypatch.setattr(outputfs, "loop_mount_available", lambda: False)
    settings = load_settings()
    phase = {"slug": "test", "opens": "2020-01-01T00:00:00Z", "many_cases_per_start": True,
             "max_jobs_in_flight_per_participant": cap}
    organizer.create_challenge(settings, write_definition(tmp_path / "toy.yaml", limits=LIMITS, phases=[phase]))
    organizer.ingest_phase(settings, "toy", "test", write_source(tmp_path / "src", n=20))
    served, _ = organizer.submit(settings, "toy", "test", "ann", "test/threshold")
    crashing, _ = organizer.submit(settings, "toy", "test", "bob", "fake/crash")
    executor = CountingAdapter(slots=2)
    assert sorted(scheduler.run(settings, None, executor=executor)) == [served, crashing]
    assert sum(executor.tasks) == 40 and max(executor.tasks) == largest and len(executor.tasks) < 40
    with session_scope(settings.database_url) as session:  # each case recorded as its own, with its own metrics
        jobs = session.get(Submission, served).jobs
        assert [(j.state, j.reason, j.attempts) for j in jobs] == [("succeeded", None, 1)] * 20
        assert [[(m.metric, m.value) for m in j.metrics if m.metric == "dice"] for j in jobs] == [[("dice", 1.0)]] * 20
    assert {(j.state, j.reason) for j in _jobs(settings, crashing)} == {("failed", "exit_code")}


def test_an_outcome_that_cannot_be_written_costs_only_its_own_case_of_a_batch(home, tmp_path, monkeypatch,
                                                                             no_podman):
    from medarena.platform.scheduling import recorder

    monkeypatch.setenv("MEDARENA_CONTAINER_BACKEND", "fake")
    monkeypatch.setattr(outputfs, "loop_mount_available", lambda: False)
    settings = load_settings()
    phase = {"slug": "test", "opens": "2020-01-01T00:00:00Z", "many_cases_per_start": True}
    organizer.create_challenge(settings, write_definition(tmp_path / "toy.yaml", limits=LIMITS, phases=[phase]))
    organizer.ingest_phase(settings, "toy", "test", write_source(tmp_path / "src", n=6))
    sid, _ = organizer.submit(settings, "toy", "test", "ann", "test/threshold")
    real_apply, failed = recorder._apply, []

    def apply_failing_for_case3s_first_outcome(session, job, stage, outcome):
        # the batch's transaction, then case3's own: case3's first outcome cannot be written
        if outcome.case == "case3" and stage == "run" and not outcome.platform_error and len(failed) < 2:
            failed.append(job.id)
            raise ValueError("a value the database refuses (simulated)")
        return real_apply(session, job, stage, outcome)

    monkeypatch.setattr(recorder, "_apply", apply_failing_for_case3s_first_outcome)
    executor = CountingAdapter(slots=2)
    assert scheduler.run(settings, [sid], executor=executor) == [sid]
    assert max(executor.tasks) > 1  # the six cases went in batches
    by_case = {j.case.name: j for j in _jobs(settings, sid)}
    assert {name: (j.state, j.attempts) for name, j in by_case.items()} == {
        f"case{i}": ("succeeded", 2 if i == 3 else 1) for i in range(6)}
    assert "recording the outcome failed" in by_case["case3"].platform_log
    assert "simulated" in by_case["case3"].platform_log and "simulated" not in by_case["case3"].detail


def test_reevaluation_scores_stored_predictions_without_running_a_container(toy, tmp_path):
    sid, _ = organizer.submit(toy, "toy", "test", "ann", "test/threshold")
    _run(toy)
    before = [(j.started_at, j.attempts) for j in _jobs(toy, sid)]
    changed = yaml.safe_load((tmp_path / "toy.yaml").read_text())
    changed["evaluation"]["settings"]["metrics"] = ["dice", "assd"]
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(changed))
    organizer.create_challenge(toy, tmp_path / "toy.yaml")
    runs = len(FakeBackend.runs)
    assert scheduler.reevaluate(toy, [sid], executor=InProcessAdapter()) == [sid]
    assert len(FakeBackend.runs) == runs
    assert [(j.started_at, j.attempts) for j in _jobs(toy, sid)] == before
    with session_scope(toy.database_url) as session:
        rows = session.execute(select(MetricValue.metric, MetricValue.value).join(Job)
                               .where(Job.submission_id == sid)).all()
    assert sorted(rows) == [("assd", 0.0), ("assd", 0.0), ("dice", 1.0), ("dice", 1.0)]  # exact masks


def test_a_phase_definition_is_validated_once_per_run_not_once_per_case(toy, tmp_path, monkeypatch):
    calls = []
    validate = ChallengeDefinition.model_validate.__func__

    def counting(cls, *args, **kwargs):
        calls.append(1)
        return validate(cls, *args, **kwargs)

    monkeypatch.setattr(ChallengeDefinition, "model_validate", classmethod(counting))
    counts = []
    for n in (1, 6):
        home = tmp_path / f"home{n}"
        monkeypatch.setenv("MEDARENA_HOME", str(home))
        settings = load_settings()
        organizer.create_challenge(settings, tmp_path / "toy.yaml")
        organizer.ingest_phase(settings, "toy", "test", write_source(tmp_path / f"src{n}", n=n))
        sid, _ = organizer.submit(settings, "toy", "test", "ann", "test/threshold")
        calls.clear()
        assert _run(settings) == [sid]
        assert [j.state for j in _jobs(settings, sid)] == ["succeeded"] * n
        counts.append(len(calls))
    assert counts[0] == counts[1], counts  # the same for 1 case as for 6: nothing per case
    assert counts[0] <= 4  # the run, and closing the submission (summary, ranking, evaluation container)


def test_on_ray_the_workers_use_the_backend_of_the_settings(toy, ray_cluster):
    sid, _ = organizer.submit(toy, "toy", "test", "ann", "fake/crash")
    assert scheduler.run(toy, [sid]) == [sid]  # the Ray adapter: each case in a Ray worker
    jobs = _jobs(toy, sid)
    assert [(j.state, j.reason) for j in jobs] == [("failed", "exit_code")] * 2
    assert jobs[0].stderr_tail == "crashing on purpose\n"


def count_voxels(box: FakeContainer) -> None:
    """An organizer's evaluation container: foreground voxels of each job's segmentation."""
    rows = []
    for job in json.loads((box.input_dir / "predictions.json").read_text()):
        (path,) = (box.input_dir / job["pk"] / "output" / "images" / "segmentation").glob("*.mha")
        rows.append({"pk": job["pk"], "voxels": int(sitk.GetArrayFromImage(sitk.ReadImage(str(path))).sum())})
    mean = sum(r["voxels"] for r in rows) / len(rows)
    (box.output_dir / "metrics.json").write_text(json.dumps({"aggregates": {"voxels": {"mean": mean}},
                                                             "cases": rows}))


fake.register("test/count-voxels", count_voxels)


def test_the_evaluation_container_runs_through_the_same_backend(home, tmp_path, monkeypatch, no_podman):
    monkeypatch.setenv("MEDARENA_CONTAINER_BACKEND", "fake")
    monkeypatch.setattr(outputfs, "loop_mount_available", lambda: False)
    settings = load_settings()
    container = {"image": "test/count-voxels", "score_jsonpath": "aggregates.voxels.mean",
                 "score_title": "Mean voxels"}
    data = definition(limits=LIMITS, evaluation={"container": container})
    del data["ranking"]  # ranked on the container's score
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(data))
    organizer.create_challenge(settings, tmp_path / "toy.yaml")
    organizer.ingest_phase(settings, "toy", "test", write_source(tmp_path / "src", n=2))
    sid, _ = organizer.submit(settings, "toy", "test", "ann", "test/threshold")
    FakeBackend.runs.clear()
    assert _run(settings) == [sid]
    assert [spec.image for spec in FakeBackend.runs] == ([fake.digest_of("test/threshold")] * 2
                                                         + [fake.digest_of("test/count-voxels")])
    boxes = [int(cube_case(i)[1].sum()) for i in range(2)]  # 5 x 10 x 9 voxels each
    with session_scope(settings.database_url) as session:
        submission = session.get(Submission, sid)
        assert (submission.state, submission.evaluation_state) == ("succeeded", "succeeded")
        assert submission.metrics_json["aggregates"]["voxels"]["mean"] == sum(boxes) / 2 == 450
        assert {j.case.name: {m.metric: m.value for m in j.metrics} for j in submission.jobs} == {
            "case0": {"voxels": boxes[0]}, "case1": {"voxels": boxes[1]}}
        assert session.scalars(select(LeaderboardEntry)).one().rank == 1
