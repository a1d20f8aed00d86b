"""A phase whose algorithms serve many cases per start, through the scheduler on a local Ray with
real podman: an image labelled for grand-challenge's invoke API scores exactly as the same
algorithm run one case per start, its container is reused across cases, and an image without
the label still runs one case per start."""

from __future__ import annotations

import re
import subprocess
import time

import pytest
from sqlalchemy import select

from medarena.platform import organizer, scheduler
from medarena.platform.containers.invoke import invoke_available
from medarena.platform.database import Job, MetricValue, Submission, session_scope
from tests.platform.challenge_data import write_definition, write_source

pytestmark = [pytest.mark.podman,
              pytest.mark.skipif(not invoke_available(), reason="entering a container's network needs root")]
IMAGE = "localhost/medarena-example-{}:latest"
PHASE = {"slug": "test", "opens": "2020-01-01T00:00:00Z", "submission_limit": 0, "many_cases_per_start": True}


def _metrics(settings, submission_id) -> dict[str, float]:
    with session_scope(settings.database_url) as session:
        rows = session.execute(select(Job.id, MetricValue.metric, MetricValue.value).join(
            MetricValue, MetricValue.job_id == Job.id).where(Job.submission_id == submission_id)).all()
        names = {job.id: job.case.name for job in session.get(Submission, submission_id).jobs}
    return {f"{names[job]}/{metric}": value for job, metric, value in rows}


def _jobs(settings, submission_id) -> list[Job]:
    with session_scope(settings.database_url) as session:
        return list(session.get(Submission, submission_id).jobs)


def test_served_cases_score_as_one_case_per_start_and_reuse_the_container(home, tmp_path, example_images,
                                                                          ray_cluster):
    definition = write_definition(tmp_path / "toy.yaml", phases=[PHASE],
                                  limits={"wall_time_seconds": 20, "memory_mb": 256, "cpus": 1})
    organizer.create_challenge(home, definition)
    organizer.ingest_phase(home, "toy", "test", write_source(tmp_path / "src", n=6))
    served, _ = organizer.submit(home, "toy", "test", "server", IMAGE.format("threshold-server"))
    single, _ = organizer.submit(home, "toy", "test", "single", IMAGE.format("threshold"))
    scheduler.run(home)

    for sid in (served, single):
        assert {job.state for job in _jobs(home, sid)} == {"succeeded"}, [j.detail for j in _jobs(home, sid)]
    assert _metrics(home, served) == _metrics(home, single)  # the same algorithm, the same numbers
    assert len(_metrics(home, served)) == 12
    # each served case says how many cases its server had served: some server served several
    counts = [int(found.group(1)) for job in _jobs(home, served)
              if (found := re.search(r"case (\d+) since the start", job.stdout_tail))]
    assert counts and max(counts) >= 2, counts
    # the one-case image printed no server line: it ran one case per start
    assert all("since the start" not in job.stdout_tail for job in _jobs(home, single))
    # no server is left running once the run is over
    names = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True).stdout
    assert f"medarena-{scheduler.namespace(home)}-" not in names
    # and the workers close theirs (unmounting their /output) within a few seconds
    deadline = time.monotonic() + 20
    while list(home.scratch.glob("server-*")) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not list(home.scratch.glob("server-*"))
