"""Leaderboards and submission states are answered from a cache while nothing they show has
changed: a new result written by another process shows at once, and what each caller may see
is still decided per request, after the cache (an organizer's answer never reaches anyone else)."""

from __future__ import annotations

from medarena.platform import leaderboard
from medarena.platform.database import MetricValue, Submission, session_scope, utcnow
from medarena.platform.submissions import find_phase
from tests.api.world import _ids, _submission


def get(server, role_token, path: str):
    with server.client(role_token) as client:
        return client.get(path)


def rank(settings, phase: str) -> None:
    with session_scope(settings.database_url) as session:
        leaderboard.rank_phase(session, find_phase(session, "toy", phase)[0])


def test_a_new_result_shows_on_the_leaderboard_at_once(world):
    server, seeded = world
    path = "/api/v1/challenges/toy/phases/test/leaderboard"
    first = get(server, None, path)
    assert first.status_code == 200
    assert get(server, None, path).content == first.content  # answered again the same way
    before = [(e["participant"], e["rank"]) for e in first.json()["entries"]]
    assert ("alice", 1) in before and ("bob", 2) in before

    bob = _ids(seeded.settings, ["bob"])[0]
    newest = _submission(seeded.settings, "test", bob, "succeeded", score=0.99, participant="bob")
    rank(seeded.settings, "test")  # written by this process, not the server's
    entries = get(server, None, path).json()["entries"]
    assert (entries[0]["submission"], entries[0]["rank"]) == (newest, 1)
    assert len(entries) == len(before) + 1
    # the submission's own answer has its rank among all of them, from the same new ranking
    owner = get(server, seeded.token("other"), f"/api/v1/submissions/{newest}").json()
    assert owner["rank"]["rank"] == 1 and owner["rank"]["of"] == len(entries)


def test_a_hidden_leaderboard_read_by_an_organizer_stays_hidden(world):
    server, seeded = world
    path = "/api/v1/challenges/toy/phases/final/leaderboard"
    assert get(server, seeded.token("organizer"), path).status_code == 200  # now cached
    for role in ("anonymous", "other", "owner", "other_organizer"):
        response = get(server, seeded.token(role), path)
        assert response.status_code == 404 and response.json() == {"detail": "no leaderboard for toy/final"}


def test_each_caller_sees_their_own_view_of_a_cached_submission(world):
    server, seeded = world
    hidden = f"/api/v1/submissions/{seeded.finished['final']}"  # leaderboard and case results hidden
    organizer = get(server, seeded.token("organizer"), hidden).json()  # the whole of it, now cached
    assert organizer["rank"]["rank"] == 1 and organizer["aggregates"]
    assert organizer["image"] == "img" and all("detail" in c and c["metrics"] for c in organizer["cases"])
    owner = get(server, seeded.token("owner"), hidden).json()
    assert owner["image"] == "img" and all("detail" in c for c in owner["cases"])  # their own details
    assert not {"aggregates", "dataset", "rank"} & set(owner)  # but no scores of a hidden phase
    assert all("metrics" not in c for c in owner["cases"])
    for role in ("anonymous", "other", "other_organizer"):
        response = get(server, seeded.token(role), hidden)
        assert response.status_code == 404, role

    public = f"/api/v1/submissions/{seeded.finished['test']}"  # case results public
    assert "image" in get(server, seeded.token("owner"), public).json()
    anonymous = get(server, None, public).json()
    assert not {"image", "image_digest", "comment", "model", "model_digest"} & set(anonymous)
    assert all("detail" not in c and c["metrics"] for c in anonymous["cases"])
    assert anonymous["rank"]["rank"] >= 1


def test_a_running_submission_shows_each_new_state(world):
    server, seeded = world
    alice = _ids(seeded.settings, ["alice"])[0]
    sid = _submission(seeded.settings, "test", alice, "queued")
    path = f"/api/v1/submissions/{sid}"
    token = seeded.token("owner")
    first = get(server, token, path).json()
    assert first["state"] == "queued" and first["case_counts"] == {"queued": 3} and "rank" not in first

    with session_scope(seeded.settings.database_url) as session:
        submission = session.get(Submission, sid)
        submission.state, submission.started_at = "running", utcnow()
        jobs = sorted(submission.jobs, key=lambda j: j.case.name)
        jobs[0].state = "running"
    assert get(server, token, path).json()["case_counts"] == {"queued": 2, "running": 1}

    with session_scope(seeded.settings.database_url) as session:
        job = sorted(session.get(Submission, sid).jobs, key=lambda j: j.case.name)[0]
        job.state = "evaluating"  # nothing else of the job changes
    assert get(server, token, path).json()["case_counts"] == {"queued": 2, "evaluating": 1}

    with session_scope(seeded.settings.database_url) as session:
        job = sorted(session.get(Submission, sid).jobs, key=lambda j: j.case.name)[0]
        job.state, job.finished_at, job.runtime_seconds = "succeeded", utcnow(), 2.0
        job.metrics.append(MetricValue(label="fg", metric="dice", value=0.75))
    data = get(server, token, path).json()
    case = next(c for c in data["cases"] if c["state"] == "succeeded")
    assert case["metrics"] == [{"label": "fg", "dice": 0.75}] and case["runtime_seconds"] == 2.0

    with session_scope(seeded.settings.database_url) as session:
        job = sorted(session.get(Submission, sid).jobs, key=lambda j: j.case.name)[0]
        job.metrics[0].value = 0.5  # re-scored in place: same rows, another value
    case = next(c for c in get(server, token, path).json()["cases"] if c["state"] == "succeeded")
    assert case["metrics"] == [{"label": "fg", "dice": 0.5}]
