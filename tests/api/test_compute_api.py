"""Compute figures through the API: who sees them, a phase's totals for its organizers, and a
compute budget that refuses a participant's upload and submission (403, nothing written)."""

from __future__ import annotations

import pytest
import yaml
from sqlalchemy import func, select

from medarena.platform.account_tables import Upload
from medarena.platform.database import Submission, session_scope

MiB = 2**20
# per case of the world's finished submissions to phase test: (cpu s, peak bytes, gpu s); wall is 1.5 s each
ALICE = [(1.0, 10 * MiB, 0.0), (2.0, 30 * MiB, 1.5), (3.5, 20 * MiB, 1.5)]
BOB = [(5.0, 50 * MiB, None)] * 3


def _record(settings, submission_id: int, figures) -> None:
    with session_scope(settings.database_url) as session:
        jobs = sorted(session.get(Submission, submission_id).jobs, key=lambda j: j.case.name)
        for job, (cpu, peak, gpu) in zip(jobs, figures, strict=True):
            job.cpu_seconds, job.peak_memory_bytes, job.gpu_seconds = cpu, peak, gpu


def _bobs_submission(settings) -> int:
    with session_scope(settings.database_url) as session:
        return session.scalar(select(Submission.id).where(Submission.participant == "bob",
                                                          Submission.state == "succeeded"))


@pytest.fixture(scope="module")
def figures(world):
    """The world, with figures recorded for alice's and bob's finished submissions to phase test."""
    _, seeded = world
    _record(seeded.settings, seeded.finished["test"], ALICE)
    _record(seeded.settings, _bobs_submission(seeded.settings), BOB)
    return world


ALICE_TOTALS = {"cases": 3, "measured_cases": 3, "wall_seconds": 4.5, "cpu_seconds": 6.5, "gpu_seconds": 3.0,
                "peak_memory_bytes": 30 * MiB}
BOB_TOTALS = {"cases": 3, "measured_cases": 3, "wall_seconds": 4.5, "cpu_seconds": 15.0, "gpu_seconds": 0.0,
              "peak_memory_bytes": 50 * MiB}


def test_a_submission_s_figures_are_its_owner_s_and_the_organizers(figures):
    server, seeded = figures
    sid = seeded.finished["test"]  # public per-case results: everyone sees the submission itself
    for role in ("owner", "organizer", "admin"):
        with server.client(seeded.token(role)) as client:
            data = client.get(f"/api/v1/submissions/{sid}").json()
        assert data["compute"] == ALICE_TOTALS, role
        assert [(c["cpu_seconds"], c["peak_memory_bytes"], c["gpu_seconds"]) for c in data["cases"]] == ALICE
    for role in ("anonymous", "other", "other_organizer"):
        with server.client(seeded.token(role)) as client:
            response = client.get(f"/api/v1/submissions/{sid}")
        assert response.status_code == 200, role
        assert "compute" not in response.json(), role
        assert not any(key in case for case in response.json()["cases"] for key in ("cpu_seconds", "gpu_seconds",
                                                                                     "peak_memory_bytes")), role


def test_organizers_see_a_phase_s_totals_per_participant(figures):
    server, seeded = figures
    with server.client(seeded.token("organizer")) as client:
        data = client.get("/api/v1/challenges/toy/phases/test/compute").json()
    # alice's queued submissions hold figures of no run that ended: they are not counted
    assert data["participants"] == [{"participant": "alice", **ALICE_TOTALS},
                                    {"participant": "bob", **BOB_TOTALS}]
    assert data["totals"] == {"cases": 6, "measured_cases": 6, "wall_seconds": 9.0, "cpu_seconds": 21.5,
                              "gpu_seconds": 3.0, "peak_memory_bytes": 50 * MiB}
    assert data["budget"] == dict.fromkeys(("cpu_hours_per_participant", "gpu_hours_per_participant",
                                            "cpu_hours_per_challenge", "gpu_hours_per_challenge"))
    with server.client(seeded.token("owner")) as client:
        refused = client.get("/api/v1/challenges/toy/phases/test/compute")
    assert refused.status_code == 403 and refused.json() == {"detail": "only organizers of toy may do this"}


def _count(settings, participant: str) -> int:
    with session_scope(settings.database_url) as session:
        return session.scalar(select(func.count(Submission.id)).where(Submission.participant == participant))


def test_a_spent_budget_refuses_the_upload_and_the_submission(figures):
    server, seeded = figures
    definition = yaml.safe_load((seeded.settings.home / "toy.yaml").read_text())
    test = next(p for p in definition["phases"] if p["slug"] == "test")
    test["compute_budget"] = {"cpu_hours_per_participant": 0.003}  # 10.8 s: alice used 6.5 s, bob 15 s
    with server.client(seeded.token("organizer")) as client:
        updated = client.put("/api/v1/challenges/toy", json={"definition": yaml.safe_dump(definition)})
    assert updated.status_code == 200, updated.text
    expected = ("phase toy/test: participant 'bob' has used 0.004167 hours of the 0.003 CPU hours each "
                "participant may use (compute_budget.cpu_hours_per_participant)")
    upload = seeded.upload("bob", "complete")
    before = _count(seeded.settings, "bob")
    with server.client(seeded.token("other")) as client:
        started = client.post("/api/v1/challenges/toy/phases/test/uploads", json={"size": 10, "sha256": "0" * 64})
        submitted = client.post("/api/v1/challenges/toy/phases/test/submissions", json={"upload_id": upload})
    assert (started.status_code, started.json()) == (403, {"detail": expected})
    assert (submitted.status_code, submitted.json()) == (403, {"detail": expected})
    assert _count(seeded.settings, "bob") == before
    with session_scope(seeded.settings.database_url) as session:
        assert session.get(Upload, upload).state == "complete"  # still there to submit elsewhere
    with server.client(seeded.token("owner")) as client:  # alice is under the budget
        accepted = client.post("/api/v1/challenges/toy/phases/test/submissions",
                               json={"upload_id": seeded.upload("alice", "complete")})
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["compute"]["cases"] == 0

