"""The whole path against a real S3-protocol server on loopback (moto's server, in a process of
its own, with IAM authentication on): ingest, the image archive a bare node loads, predictions,
evaluation, re-evaluation, ranking and the dashboard's case images, all through s3fs with
``MEDARENA_STORE=s3://...`` and the credentials and endpoint from the environment."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from medarena.cli import app
from medarena.dashboard import images
from medarena.platform import organizer, scheduler
from medarena.platform.ingest import IngestError
from medarena.platform.objectstore import StoreError, check_store, worker_env
from medarena.platform.settings import load_settings
from tests.platform.challenge_data import cube_case, to_sitk, write_definition, write_source
from tests.platform.conftest import podman

REPO = Path(__file__).resolve().parents[2]
BUCKET = "medarena-test"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    key_id: str
    secret: str

    def client(self, secret: str | None = None):
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.key_id, aws_secret_access_key=secret or self.secret)

    def keys(self, prefix: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """moto's S3 server with authentication: the first three requests (unauthenticated) create a
    user with an S3 policy and its access key; every request after them must be signed with it."""
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "server.log").open("w")
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              env=dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3"), stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert server.poll() is None and time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.2)
        endpoint = f"http://127.0.0.1:{port}"
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        iam.create_user(UserName="medarena")
        iam.put_user_policy(UserName="medarena", PolicyName="store", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="medarena")["AccessKey"]
        s3 = S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
        s3.client().create_bucket(Bucket=BUCKET)
        yield s3
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture(autouse=True)
def fresh_s3_clients():
    """s3fs keeps one client per set of arguments, made with the environment of its time; each
    test here sets its own credentials and endpoint."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    yield
    s3fs.S3FileSystem.clear_instance_cache()


def s3_environment(s3: S3Server, prefix: str, secret: str | None = None) -> dict[str, str]:
    return {"MEDARENA_STORE": f"s3://{BUCKET}/{prefix}", "AWS_ACCESS_KEY_ID": s3.key_id,
            "AWS_SECRET_ACCESS_KEY": secret or s3.secret, "AWS_ENDPOINT_URL": s3.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def s3_home(s3_server, tmp_path, monkeypatch):
    """Settings with a fresh prefix of the bucket as the store; returns (settings, prefix)."""
    prefix = f"run-{uuid.uuid4().hex[:8]}/medarena"
    monkeypatch.setenv("MEDARENA_HOME", str(tmp_path / "s3-home"))
    monkeypatch.delenv("MEDARENA_DATABASE_URL", raising=False)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_environment(s3_server, prefix).items():
        monkeypatch.setenv(name, value)
    return load_settings(), prefix



def scores(settings, submission_id: int) -> dict[str, list[dict]]:
    return {c["case"]: c["metrics"] for c in organizer.submission_results(settings, submission_id)["cases"]}


@pytest.mark.podman
def test_the_whole_path_on_an_s3_server_scores_as_on_local_disk(
        s3_home, s3_server, tmp_path, monkeypatch, example_images, private_image, ray_cluster):
    tag, digest = private_image
    source = write_source(tmp_path / "src", n=2)
    # a generous wall time: this is about the store, not the limits, on a machine that may be busy
    definition = write_definition(tmp_path / "toy.yaml", limits={"wall_time_seconds": 120, "memory_mb": 256, "cpus": 1})

    # the same phase on local disk first
    with monkeypatch.context() as local:
        local.setenv("MEDARENA_HOME", str(tmp_path / "local-home"))
        local.delenv("MEDARENA_STORE")
        on_disk = load_settings()
        organizer.create_challenge(on_disk, definition)
        organizer.ingest_phase(on_disk, "toy", "test", source)
        local_sid, _ = organizer.submit(on_disk, "toy", "test", "ann", f"{example_images}threshold:latest")
        scheduler.run(on_disk, [local_sid])
        local_scores = scores(on_disk, local_sid)
        assert [c["state"] for c in organizer.submission_results(on_disk, local_sid)["cases"]] == ["succeeded"] * 2

    # as on a cluster: the submission ships its image through the bucket, and the node that runs
    # the cases does not have it (the Ray of the tests is already up, so no cluster is joined)
    monkeypatch.setenv("MEDARENA_RAY_ADDRESS", "127.0.0.1:1")
    settings, prefix = load_settings(), s3_home[1]
    assert settings.store == f"s3://{BUCKET}/{prefix}"
    organizer.create_challenge(settings, definition)
    assert organizer.ingest_phase(settings, "toy", "test", source) == 2
    sid, pinned = organizer.submit(settings, "toy", "test", "ann", tag)
    assert pinned == digest
    assert podman("rmi", "--force", digest).returncode == 0
    scheduler.run(settings, [sid])
    results = organizer.submission_results(settings, sid)
    assert [c["state"] for c in results["cases"]] == ["succeeded", "succeeded"], results["cases"]
    assert podman("image", "exists", digest).returncode == 0, "the worker did not load the image from the bucket"

    keys = s3_server.keys(prefix + "/")
    archive = f"{prefix}/images/{digest.removeprefix('sha256:')}.tar"
    assert archive in keys
    for case in ("case0", "case1"):
        assert f"{prefix}/inputs/toy/test.zarr/{case}/scan/zarr.json" in keys
        assert f"{prefix}/references/toy/test.zarr/{case}/segmentation/zarr.json" in keys
        assert f"{prefix}/predictions/toy/test/{sid}.zarr/{case}/segmentation/zarr.json" in keys
        assert any(k.startswith(f"{prefix}/predictions/toy/test/{sid}.zarr/{case}/segmentation/c/") for k in keys)
    assert not (tmp_path / "s3-home" / "store").exists(), "the store was written to local disk"

    # the scores: as on local disk, and as computed here from the prediction in the bucket
    assert scores(settings, sid) == local_scores
    stored = images.read_slice(images.open_volume(scheduler.predictions_url(settings, "toy", "test", sid),
                                                  "case0", "segmentation"), axis=0, index=6)
    _, mask = cube_case(0)
    assert np.array_equal(stored, stored.astype(bool)) and stored.any()
    full = np.stack([images.read_slice(images.open_volume(scheduler.predictions_url(settings, "toy", "test", sid),
                                                          "case0", "segmentation"), axis=0, index=z)
                     for z in range(mask.shape[0])])
    dice = 2 * np.logical_and(full == 1, mask == 1).sum() / ((full == 1).sum() + mask.sum())
    assert local_scores["case0"][0]["dice"] == pytest.approx(dice, abs=1e-12)

    # the dashboard's case image: a slice of the input as ingested
    scan, _ = cube_case(1)
    volume = images.open_volume(scheduler.inputs_url(settings, "toy", "test"), "case1", "scan")
    assert volume.shape == scan.shape
    assert np.array_equal(images.read_slice(volume, axis=1, index=5), scan[:, 5, :])

    # re-evaluation reads the predictions back from the bucket; the ranking works from the database
    scheduler.reevaluate(settings, [sid])
    assert scores(settings, sid) == local_scores
    ranked = CliRunner().invoke(app, ["rank", "-c", "toy", "-p", "test", "--output", str(tmp_path / "report")])
    assert ranked.exit_code == 0, ranked.output
    table = pd.read_csv(tmp_path / "report" / "ranking.csv")
    assert list(table["submission"]) == [sid] and list(table["rank"]) == [1]
    aggregates = [c for c in table.columns if c.endswith("_aggregate")]  # the recipe ranks on mean dice alone
    mean_dice = np.mean([local_scores[case][0]["dice"] for case in ("case0", "case1")])
    assert len(aggregates) == 1 and table[aggregates[0]].iloc[0] == pytest.approx(mean_dice, abs=1e-12)


def test_a_refused_credential_is_one_line_and_writes_nothing(s3_home, s3_server, tmp_path):
    settings, prefix = s3_home
    organizer.create_challenge(settings, write_definition(tmp_path / "toy.yaml"))
    source = write_source(tmp_path / "src", n=1)
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="300",
               **s3_environment(s3_server, prefix, secret="not-the-secret"))
    result = subprocess.run([sys.executable, "-m", "medarena.cli", "data", "ingest", str(source),
                             "-c", "toy", "-p", "test"], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: MEDARENA_STORE s3://{BUCKET}/{prefix}: access denied")
    assert "SignatureDoesNotMatch" in lines[0] or "signature" in lines[0].lower()
    assert "AWS_SECRET_ACCESS_KEY" in lines[0]
    assert s3_server.keys(prefix + "/") == []
    assert organizer.show_challenge(settings, "toy")["cases"] == {"test": []}


@pytest.mark.podman
def test_a_run_with_a_refused_credential_stops_before_any_case_runs(s3_home, tmp_path, monkeypatch, example_images):
    settings, _ = s3_home
    organizer.create_challenge(settings, write_definition(tmp_path / "toy.yaml"))
    organizer.ingest_phase(settings, "toy", "test", write_source(tmp_path / "src", n=1))
    sid, _ = organizer.submit(settings, "toy", "test", "ann", f"{example_images}threshold:latest")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    with pytest.raises(StoreError, match="access denied"):
        scheduler.run(settings, [sid])
    assert [c["state"] for c in organizer.submission_results(settings, sid)["cases"]] == ["queued"]


def test_a_failed_ingest_into_the_bucket_leaves_no_object(s3_home, s3_server, tmp_path):
    settings, prefix = s3_home
    organizer.create_challenge(settings, write_definition(tmp_path / "toy.yaml"))
    source = write_source(tmp_path / "src", n=3)
    scan, _ = cube_case(2)
    sitk.WriteImage(to_sitk(scan[:, :, :20]), str(source / "segmentation" / "case2.nii.gz"))  # off the scan's grid
    with pytest.raises(IngestError, match="case 'case2'"):
        organizer.ingest_phase(settings, "toy", "test", source)
    roots = {f"{prefix}/{side}/toy/test.zarr/zarr.json" for side in ("inputs", "references")}  # empty stores
    assert set(s3_server.keys(prefix + "/")) <= roots, "case objects left behind"
    assert organizer.show_challenge(settings, "toy")["cases"] == {"test": []}


def test_a_missing_bucket_and_a_missing_server_are_named(s3_server, monkeypatch):
    import s3fs

    for name, value in s3_environment(s3_server, "x").items():
        monkeypatch.setenv(name, value)
    with pytest.raises(StoreError, match="the bucket 'no-such-bucket' does not exist"):
        check_store("s3://no-such-bucket/medarena")
    check_store(f"s3://{BUCKET}/not-written-yet/medarena")  # an empty prefix of a bucket is a store to be
    check_store("/any/local/folder")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    s3fs.S3FileSystem.clear_instance_cache()  # a client made now reads the new endpoint
    with pytest.raises(StoreError, match="cannot reach the store .*EndpointConnectionError.*check AWS_ENDPOINT_URL"):
        check_store(f"s3://{BUCKET}/elsewhere/medarena")


def test_the_dashboard_says_when_the_store_refuses_access(s3_home, s3_server, monkeypatch):
    settings, _ = s3_home
    url = scheduler.inputs_url(settings, "toy", "test")
    with pytest.raises(images.MissingStore, match="no 'scan' for case 'case0'"):
        images.open_volume(url, "case0", "scan")  # nothing ingested yet
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    with pytest.raises(images.MissingStore, match="the store refused access"):
        images.open_volume(url, "case0", "scan")


def test_tasks_get_the_object_store_settings_of_the_driver():
    environ = {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_ENDPOINT_URL": "http://h:1",
               "HOME": "/root", "AWS_SESSION_TOKEN": ""}
    assert worker_env("s3://bucket/medarena", environ) == {
        "AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_ENDPOINT_URL": "http://h:1"}
    assert worker_env("/srv/medarena", environ) == {}
    assert worker_env("file:///srv/medarena", environ) == {}
