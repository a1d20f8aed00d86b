"""Stores given as fsspec URLs (as object storage on a cluster): the same path works, and a
failed ingest removes what it wrote."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import zarr

from medarena.platform import organizer, scheduler
from medarena.platform.ingest import IngestError
from medarena.platform.settings import load_settings
from tests.platform.challenge_data import cube_case, to_sitk, write_definition, write_source


@pytest.fixture
def url_home(home, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDARENA_STORE", f"file://{tmp_path}/bucket/medarena")
    settings = load_settings()
    organizer.create_challenge(settings, write_definition(tmp_path / "toy.yaml"))
    return settings


@pytest.mark.podman
def test_run_and_reevaluate_with_a_url_store(url_home, tmp_path, example_images, ray_cluster):
    organizer.ingest_phase(url_home, "toy", "test", write_source(tmp_path / "src", n=2))
    sid, _ = organizer.submit(url_home, "toy", "test", "ann", "localhost/medarena-example-threshold:latest")
    scheduler.run(url_home, [sid])
    results = organizer.submission_results(url_home, sid)
    assert [c["state"] for c in results["cases"]] == ["succeeded", "succeeded"]
    stored = zarr.open_group(f"{tmp_path}/bucket/medarena/predictions/toy/test/{sid}.zarr", mode="r")
    _, mask = cube_case(0)
    predicted = stored["case0"]["segmentation"][...]
    dice = 2 * np.logical_and(predicted == 1, mask == 1).sum() / ((predicted == 1).sum() + mask.sum())
    assert results["cases"][0]["metrics"][0]["dice"] == pytest.approx(dice, abs=1e-12)
    scheduler.reevaluate(url_home, [sid])  # finds the stored predictions through the URL
    assert [c["state"] for c in organizer.submission_results(url_home, sid)["cases"]] == ["succeeded"] * 2


def test_failed_ingest_into_a_url_store_leaves_nothing(url_home, tmp_path):
    source = write_source(tmp_path / "src", n=3)
    scan, _ = cube_case(2)
    sitk.WriteImage(to_sitk(scan[:, :, :20]), str(source / "segmentation" / "case2.nii.gz"))
    with pytest.raises(IngestError, match="case 'case2'"):
        organizer.ingest_phase(url_home, "toy", "test", source)
    for side in ("inputs", "references"):
        store = tmp_path / "bucket" / "medarena" / side / "toy" / "test.zarr"
        assert not store.exists() or not any(p.is_dir() for p in store.iterdir()), f"{side}: cases left behind"
