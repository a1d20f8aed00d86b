"""`medarena submit IMAGE --model MODEL.tar.gz` against a served API and a worker: the model goes
up in parts beside the image, and every case's container reads it at /opt/ml/model."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from medarena.platform import casestore, organizer, scheduler
from medarena.services import accounts
from tests.api.conftest import REPO, settings_for, start_server, stop_server
from tests.api.test_participant_cli import medarena
from tests.platform import gc_phase


@pytest.fixture(scope="module")
def probe_service(tmp_path_factory, example_images):
    gc_phase.build_probe(example_images)
    home = tmp_path_factory.mktemp("model-home")
    settings = settings_for(home)
    organizer.create_challenge(settings, gc_phase.definition(home))
    organizer.ingest_phase(settings, "gcprobe", "test", gc_phase.write_cases(home / "source"))
    accounts.add_user(settings, "ann", "ann-password")
    accounts.grant_role(settings, "ann", "gcprobe", "participant")
    server = start_server(settings, home / "server.log")
    worker_log = (home / "worker.log").open("w")
    worker = subprocess.Popen([sys.executable, "-m", "medarena.cli", "worker", "--poll", "1"], env=server.env,
                              stdout=worker_log, stderr=subprocess.STDOUT, cwd=str(REPO))
    config = home / "config"
    assert medarena(config, "login", server.url, "-u", "ann", "--password-stdin",
                    stdin="ann-password\n").returncode == 0
    yield server, config
    worker.terminate()
    worker.wait(60)
    stop_server(server)


@pytest.mark.podman
def test_submit_with_a_model_through_the_server(probe_service, tmp_path):
    server, config = probe_service
    model = gc_phase.model_tarball(tmp_path / "model.tar.gz", 0.25)
    digest = "sha256:" + hashlib.sha256(model.read_bytes()).hexdigest()
    submitted = medarena(config, "submit", gc_phase.PROBE, "-c", "gcprobe", "-p", "test", "--model", str(model),
                         "--follow")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    out = " ".join(submitted.stdout.split())
    assert f"with model {digest[:19]}" in out
    assert all(f"{case}: succeeded" in out for case in gc_phase.CASES), out
    submission = int(out.split("submission ", 1)[1].split()[0])
    for case in gc_phase.CASES:  # what the probe read from /opt/ml/model/weights.json, and saw there
        values = casestore.read_case(scheduler.predictions_url(server.settings, "gcprobe", "test", submission), case)
        assert values["probability"] == 0.25
        assert values["report"]["model_files"] == ["sub", "sub/readme.txt", "weights.json"]
        assert values["report"]["writable"]["/opt/ml/model"] is False
    assert (server.settings.home / "store" / "models" / f"{digest.removeprefix('sha256:')}.tar.gz").read_bytes() \
        == model.read_bytes()


@pytest.mark.podman
@pytest.mark.parametrize("bad", ["not-a-tarball", "missing"])
def test_a_bad_model_is_refused_before_the_image_goes_up(probe_service, tmp_path, bad):
    server, config = probe_service
    model = tmp_path / "model.tar.gz"
    if bad == "not-a-tarball":
        model.write_text("plain text\n")
    before = medarena(config, "status").stdout
    result = medarena(config, "submit", gc_phase.PROBE, "-c", "gcprobe", "-p", "test", "--model", str(model))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    if bad == "missing":
        assert lines[-1] == f"error: model tarball {model}: no such file"
    else:
        assert lines[-1].startswith("error: upload ")
        assert lines[-1].endswith("(model.tar.gz): model tarball: not a readable tarball (.tar.gz; or .tar, "
                                  ".tar.xz, .tar.bz2)")
    assert "image upload" not in result.stderr  # the image was never sent
    assert medarena(config, "status").stdout == before  # nothing submitted
