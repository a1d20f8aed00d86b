"""A database and case store filled through the models, for the dashboard tests.

Challenge ``lungs`` (segmentation, input ``ct``, output ``mask``, reference ``reference``):

- phase ``validation`` (leaderboard and case results public), cases case001..case003:
  #1 alice succeeded (rank 2), #2 bob succeeded with case002 failed by timeout (rank 1),
  #3 carol running (one job each succeeded, running, queued); case images stored for case001.
- phase ``test`` (nothing public): #4 alice succeeded, ranked, case003 failed with logs.
- phase ``live`` (public, not ranked yet): #5 dave succeeded with aggregates.

Accounts (password ``PASSWORDS[name]``): participants alice, bob, carol and dave, each the submitter
of their submissions; olga, organizer of ``lungs``; root, site admin. Failed cases carry an
organizer-only platform log.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medarena.accounts import users
from medarena.evaluators.image import Image
from medarena.platform import casestore
from medarena.platform.challenges import parse_definition
from medarena.platform.database import (
    Case,
    Challenge,
    Job,
    LeaderboardEntry,
    MetricValue,
    Phase,
    Submission,
    session_scope,
)

T0 = dt.datetime(2025, 3, 1, 9, 0)
CASES = ("case001", "case002", "case003")
DICE = {  # submission -> case -> dice of label "nodule"
    "alice": {"case001": 0.81, "case002": 0.72, "case003": 0.64},
    "bob": {"case001": 0.93, "case003": 0.88},
}
HD95 = {"alice": {"case001": 3.5, "case002": 4.25, "case003": 6.0}, "bob": {"case001": 1.5, "case003": 2.0}}
TIMEOUT_DETAIL = "the algorithm ran longer than the phase's wall time of 300 s"
TEST_STDERR = "Traceback: secret test data path /input/images/ct/abc.mha"
PLATFORM_LOG = "node worker-3: podman exit 137, cgroup memory.max reached"
TEST_PLATFORM_LOG = "node worker-1: retried after a store timeout"
PARTICIPANTS = ("alice", "bob", "carol", "dave")
PASSWORDS = {name: f"{name}-password-1" for name in (*PARTICIPANTS, "olga", "root")}

BOOTSTRAP = 400

DEFINITION = {
    "slug": "lungs", "title": "Lung Nodule Segmentation", "description": "Segment every **nodule**.",
    "phases": [
        {"slug": "validation", "title": "Validation",
         "leaderboard_public": True, "case_results_public": True},
        {"slug": "test", "title": "Final test", "leaderboard_public": False, "case_results_public": False,
         "closes": "2025-04-01T00:00:00"},
        {"slug": "live", "title": "Live", "leaderboard_public": True, "case_results_public": True},
    ],
    "interface": {
        "inputs": [{"slug": "ct", "kind": "image", "relative_path": "images/ct"}],
        "outputs": [{"slug": "mask", "kind": "segmentation", "relative_path": "images/mask"}],
        "references": [{"slug": "reference", "kind": "segmentation", "relative_path": "images/reference",
                        "same_grid_as": "ct"}],
    },
    "evaluation": {"task": "segmentation", "reference": {"mask": "reference"},
                   "prediction": {"mask": "mask"}},
    "ranking": {"method": "aggregate-then-rank", "bootstrap": BOOTSTRAP, "seed": 3,
                "metrics": [{"metric": "dice", "label": "nodule", "higher_is_better": True}]},
}

# The stored case001: a 6x20x24 volume, reference a box, prediction a shifted box.
VOLUME = np.arange(6 * 20 * 24, dtype=np.int16).reshape(6, 20, 24)
REFERENCE = np.zeros((6, 20, 24), np.uint8)
REFERENCE[2:5, 5:12, 6:14] = 1
PREDICTION = np.zeros((6, 20, 24), np.uint8)
PREDICTION[2:5, 7:14, 8:16] = 1
SPACING = (2.5, 0.8, 0.8)


# bob's validation cases: (CPU seconds, peak memory bytes, GPU seconds); each ran 12.5 s
BOB_COMPUTE = {"case001": (8.0, 300 * 2**20, 12.5), "case002": (20.0, 500 * 2**20, 12.5),
               "case003": (4.5, 100 * 2**20, 12.5)}


@dataclass(frozen=True)
class Filled:
    url: str
    home: Path
    store: str
    ids: dict[str, int]  # "alice", "bob", "carol", "alice-test", "dave" -> submission id


def _jobs(submission: Submission, cases: dict[str, Case], states: dict[str, str]) -> dict[str, Job]:
    jobs = {}
    for name, state in states.items():
        job = Job(submission=submission, case=cases[name], state=state,
                  attempts=1 if state != "queued" else 0,
                  runtime_seconds=12.5 if state in ("succeeded", "failed") else None)
        jobs[name] = job
    return jobs


def _metrics(job: Job, dice: float, hd95: float) -> None:
    job.metrics = [MetricValue(label="nodule", metric="dice", value=dice),
                   MetricValue(label="nodule", metric="hd95", value=hd95),
                   MetricValue(label="", metric="volume_difference_ml", value=None)]


def fill(url: str) -> dict[str, int]:
    definition = parse_definition(DEFINITION).model_dump(mode="json")
    with session_scope(url) as s:
        challenge = Challenge(slug="lungs", title=DEFINITION["title"], description=DEFINITION["description"],
                              definition=definition, created_at=T0)
        phases = {p["slug"]: Phase(challenge=challenge, slug=p["slug"], title=p["title"])
                  for p in DEFINITION["phases"]}
        cases = {slug: {n: Case(phase=phase, name=n, checksum="0" * 64) for n in CASES}
                 for slug, phase in phases.items()}
        s.add(challenge)
        s.flush()
        people = {name: users.add_user(s, name, PASSWORDS[name]) for name in (*PARTICIPANTS, "olga")}
        users.add_user(s, "root", PASSWORDS["root"], is_admin=True)
        for name in PARTICIPANTS:
            users.grant(s, people[name], challenge.id, "participant")
        users.grant(s, people["olga"], challenge.id, "organizer")

        alice = Submission(phase=phases["validation"], participant="alice", image="alice/seg:1",
                           image_digest="sha256:aaaa", state="succeeded", created_at=T0,
                           started_at=T0, finished_at=T0 + dt.timedelta(minutes=3))
        for name, job in _jobs(alice, cases["validation"], dict.fromkeys(CASES, "succeeded")).items():
            _metrics(job, DICE["alice"][name], HD95["alice"][name])
        hour = T0 + dt.timedelta(hours=1)
        bob = Submission(phase=phases["validation"], participant="bob", image="bob/unet:7",
                         image_digest="sha256:bbbb", state="succeeded", created_at=hour,
                         started_at=hour, finished_at=hour + dt.timedelta(minutes=9),
                         dataset_metrics={"auroc": 0.91,
                                          "roc": {"fpr": [0.0, 0.25, 1.0], "tpr": [0.0, 0.8, 1.0]},
                                          "froc": {"fp_per_case": [0.5, 1.0, 2.0],
                                                   "sensitivity": [0.6, 0.7, 0.9]}},
                         aggregates={"nodule": {"dice": {"mean": 0.905, "n": 2}}})
        bob_jobs = _jobs(bob, cases["validation"],
                         {"case001": "succeeded", "case002": "failed", "case003": "succeeded"})
        for name in ("case001", "case003"):
            _metrics(bob_jobs[name], DICE["bob"][name], HD95["bob"][name])
        for name, (cpu, peak, gpu) in BOB_COMPUTE.items():
            job = bob_jobs[name]
            job.cpu_seconds, job.peak_memory_bytes, job.gpu_seconds = cpu, peak, gpu
        failed = bob_jobs["case002"]
        failed.reason, failed.detail = "timeout", TIMEOUT_DETAIL + "\nsecond line of detail"
        failed.stdout_tail, failed.stderr_tail = "loading weights\npredicting", "Killed after 300 s"
        failed.platform_log = PLATFORM_LOG
        carol = Submission(phase=phases["validation"], participant="carol", image="carol/x:1",
                           image_digest="sha256:cccc", state="running", created_at=T0 + dt.timedelta(hours=2))
        _jobs(carol, cases["validation"], {"case001": "succeeded", "case002": "running", "case003": "queued"})
        s.add_all([alice, bob, carol])
        s.flush()
        # bob ranks first although alice was inserted (and submitted) first
        validation = phases["validation"].id
        s.add_all([
            LeaderboardEntry(phase_id=validation, submission_id=alice.id, rank=2, score=1.75, rank_low=1.0,
                             rank_high=2.0, columns={"dice (nodule) mean": 0.7233, "auroc": 0.75}),
            LeaderboardEntry(phase_id=validation, submission_id=bob.id, rank=1, score=1.25, rank_low=1.0,
                             rank_high=2.0, columns={"dice (nodule) mean": 0.905, "auroc": 0.91}),
        ])

        alice_test = Submission(phase=phases["test"], participant="alice", image="alice/seg:1",
                                image_digest="sha256:aaaa", state="succeeded", created_at=T0,
                                dataset_metrics={"auroc": 0.5},
                                aggregates={"nodule": {"dice": {"mean": 0.5}}})
        test_jobs = _jobs(alice_test, cases["test"],
                          {"case001": "succeeded", "case002": "succeeded", "case003": "failed"})
        _metrics(test_jobs["case001"], 0.55, 7.0)
        _metrics(test_jobs["case002"], 0.45, 9.0)
        crashed = test_jobs["case003"]
        crashed.reason, crashed.detail = "exit_code", "the algorithm exited with code 1"
        crashed.stderr_tail = TEST_STDERR
        crashed.platform_log = TEST_PLATFORM_LOG
        dave = Submission(phase=phases["live"], participant="dave", image="dave/a:1",
                          image_digest="sha256:dddd",
                          state="succeeded", created_at=T0, finished_at=T0 + dt.timedelta(minutes=5),
                          aggregates={"nodule": {"dice": {"mean": 0.66, "std": 0.1}},
                                      "all": {"volume_difference_ml": {"mean": 1.5}}})
        s.add_all([alice_test, dave])
        s.flush()
        for submission in (alice, bob, carol, alice_test, dave):
            submission.submitter_id = people[submission.participant].id
        s.add(LeaderboardEntry(phase_id=phases["test"].id, submission_id=alice_test.id, rank=1, score=1.0,
                               columns={"dice (nodule) mean": 0.5}))
        return {"alice": alice.id, "bob": bob.id, "carol": carol.id, "alice-test": alice_test.id,
                "dave": dave.id}


def store_case_images(store: str, submission_id: int) -> None:
    def image(array: np.ndarray) -> Image:
        return Image(array=array, spacing=SPACING, modality="CT")

    casestore.write_case(f"{store}/inputs/lungs/validation.zarr", "case001", {"ct": image(VOLUME)})
    casestore.write_case(f"{store}/references/lungs/validation.zarr", "case001",
                         {"reference": image(REFERENCE)})
    casestore.write_case(f"{store}/predictions/lungs/validation/{submission_id}.zarr", "case001",
                         {"mask": image(PREDICTION)})
