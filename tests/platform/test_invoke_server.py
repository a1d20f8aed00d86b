"""Many cases per container start (grand-challenge's invoke API), with real podman: the server
starts once, serves case after case with fresh /input and /output, and a case that crashes,
hangs, fills /output, eats memory or answers anything but 201 fails alone while the next case
gets a freshly started server."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from medarena.platform.containers.invoke import CaseServer, invoke_available, serves_invoke
from medarena.platform.runner import Limits, inspect_image, podman_env

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "submissions" / "threshold"))
import mha  # noqa: E402  - the examples' own .mha writer, as the algorithm reads it

PROBE = "localhost/medarena-test-invoke-probe:latest"
pytestmark = pytest.mark.skipif(not invoke_available(), reason="entering a container's network needs root")


@pytest.fixture(scope="module")
def probe_image(example_images) -> str:
    build = subprocess.run(["podman", "build", "-q", "--network=none", "-t", PROBE,
                            str(REPO / "tests" / "data" / "invoke-probe")],
                           capture_output=True, text=True, env=podman_env(), timeout=600)
    assert build.returncode == 0, build.stderr
    return PROBE


def case(cube: int, behaviour: str = ""):
    """A 32³ image with a bright cube of side ``cube`` (what threshold labels), as the contract
    lays it out in /input."""
    def fill(folder: Path) -> None:
        (folder / "images" / "ct").mkdir(parents=True)
        image = np.zeros((32, 32, 32), np.int16)
        image[:cube, :cube, :cube] = 100
        header = {"ObjectType": "Image", "NDims": "3", "DimSize": "32 32 32", "ElementType": "MET_SHORT",
                  "ElementDataFile": "LOCAL"}
        mha.write(folder / "images" / "ct" / "ct.mha", image, like=header)
        (folder / "inputs.json").write_text(json.dumps([{"interface": {"relative_path": "images/ct"},
                                                          "value": None}]))
        if behaviour:
            (folder / "behaviour").write_text(behaviour)
    return fill


def labelled(server: CaseServer) -> int:
    [result] = list((server.output.path / "images" / "segmentation").glob("*.mha"))
    return int(mha.read(result)[0].sum())


@pytest.fixture
def server(probe_image, tmp_path):
    limits = Limits(wall_time_seconds=20, memory_mb=256, output_mb=16)
    served = CaseServer(probe_image, limits, folder=tmp_path / "slot", name=f"medarena-test-{uuid.uuid4().hex[:8]}")
    yield served
    served.close()
    gone = subprocess.run(["podman", "container", "exists", served.name], env=podman_env())
    assert gone.returncode == 1, "the server container is left behind"
    assert not (tmp_path / "slot").exists(), "the slot folder is left behind"


def test_the_label_says_which_images_serve_invoke(example_images):
    assert serves_invoke({"org.grand-challenge.api-method": "invoke"})
    assert not serves_invoke({"org.grand-challenge.api-method": "exec"})
    assert not serves_invoke({})
    assert inspect_image(f"{example_images}threshold-server").name.endswith("threshold-server:latest")


def test_one_start_serves_many_cases_each_with_its_own_input_and_output(server):
    for cube in (4, 6, 8, 5):
        result = server.run_case(case(cube))
        assert result.status == "ok", result.message
        assert labelled(server) == cube**3  # this case's input, and only this case's output
        stdout, _ = server.case_logs()
        assert f"{cube**3} voxels" in stdout
        assert f"{(cube - 1)**3} voxels" not in stdout  # the log is this case's own
    assert server.starts == 1


def test_state_is_kept_between_cases_of_one_start(server):
    server.run_case(case(4, "remember"))
    first = (server.output.path / "started").read_text()
    server.run_case(case(4, "remember"))
    assert (server.output.path / "started").read_text() == first


@pytest.mark.parametrize(("behaviour", "status", "words"), [
    ("crash", "exit_code", "exited while serving the case"),
    ("status-500", "exit_code", "returned status 500, expected 201"),
    ("hang", "timeout", "wall-time limit of 4 s"),
    ("fill-output", "output_too_large", "stopped"),
    ("oom", "out_of_memory", "memory limit of 256 MB"),
])
def test_a_failing_case_fails_alone_and_the_next_gets_a_fresh_server(probe_image, tmp_path, behaviour, status, words):
    limits = Limits(wall_time_seconds=4 if behaviour == "hang" else 30, memory_mb=256, output_mb=16)
    server = CaseServer(probe_image, limits, folder=tmp_path / "slot", name=f"medarena-test-{uuid.uuid4().hex[:8]}")
    try:
        assert server.run_case(case(4)).status == "ok"
        failed = server.run_case(case(4, behaviour))
        assert (failed.status, words in failed.message) == (status, True), failed.message
        assert f"behaviour {behaviour}" in failed.stdout_tail
        after = server.run_case(case(6))
        assert after.status == "ok", after.message
        assert labelled(server) == 216
        assert server.starts == 2
    finally:
        server.close()


def test_a_program_that_is_no_server_fails_its_first_case_with_a_reason(example_images, tmp_path):
    server = CaseServer(f"{example_images}noop", Limits(wall_time_seconds=10), folder=tmp_path / "slot",
                        name=f"medarena-test-{uuid.uuid4().hex[:8]}")
    try:
        result = server.run_case(case(4))
        assert result.status == "exit_code"
        assert "exited before /health answered" in result.message
    finally:
        server.close()
