"""Fair scheduling end to end: real podman containers on a real local Ray (2 slots), SQLite."""

from __future__ import annotations

import threading
import time

import pytest

from medarena.platform import organizer, scheduler
from medarena.platform.database import Job, Submission, session_scope
from tests.platform.challenge_data import write_definition, write_source

pytestmark = pytest.mark.podman
NOOP = "localhost/medarena-example-noop:latest"


def _started(settings, submission_id) -> list:
    with session_scope(settings.database_url) as session:
        jobs = session.get(Submission, submission_id).jobs
        return sorted(j.started_at for j in jobs if j.started_at is not None)


def test_a_small_submission_queued_during_a_long_run_starts_before_the_long_one_ends(
        home, tmp_path, example_images, ray_cluster):
    phases = [{"slug": "long", "opens": "2020-01-01T00:00:00Z"}, {"slug": "short", "opens": "2020-01-01T00:00:00Z"}]
    organizer.create_challenge(home, write_definition(
        tmp_path / "toy.yaml", phases=phases, limits={"wall_time_seconds": 60, "memory_mb": 256, "cpus": 1}))
    organizer.ingest_phase(home, "toy", "long", write_source(tmp_path / "long", n=20))
    organizer.ingest_phase(home, "toy", "short", write_source(tmp_path / "short", n=3))
    big, _ = organizer.submit(home, "toy", "long", "ann", NOOP)
    finished: list[int] = []
    worker = threading.Thread(target=lambda: finished.extend(scheduler.run(home)))
    worker.start()
    deadline = time.monotonic() + 120
    while not _started(home, big):  # the long run is under way
        assert time.monotonic() < deadline, "the first case never started"
        time.sleep(0.1)
    small, _ = organizer.submit(home, "toy", "short", "bob", NOOP)
    worker.join(timeout=600)
    assert not worker.is_alive()

    assert sorted(finished) == [big, small]  # the same run picked the small one up
    with session_scope(home.database_url) as session:
        states = {s.id: {j.state for j in s.jobs} for s in session.query(Submission)}
        assert states == {big: {"succeeded"}, small: {"succeeded"}}, {j.reason: j.detail for j in session.query(Job)}
        assert session.query(Job).count() == 23
    big_starts, small_starts = _started(home, big), _started(home, small)
    assert len(big_starts) == 20 and len(small_starts) == 3
    # round robin: the small one's cases take every other free slot, long before the big one ends
    assert small_starts[0] < big_starts[-4]
    assert small_starts[-1] < big_starts[-3]
