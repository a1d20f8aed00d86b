"""Ingest: every format into zarr v3 with geometry; PHI never copied; bad input leaves nothing."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import numpy as np
import pytest
import SimpleITK as sitk
import zarr
from typer.testing import CliRunner

from medarena.cli import app
from medarena.platform import organizer
from medarena.platform.database import Case, session_scope
from medarena.platform.ingest import IngestError
from medarena.platform.scheduler import inputs_url, references_url
from tests.platform.challenge_data import SPACING_ZYX, cube_case, to_sitk, write_definition, write_source

runner = CliRunner()
PATIENT = "Doe^Jane^Secret"


@pytest.fixture
def toy(home, tmp_path):
    organizer.create_challenge(home, write_definition(tmp_path / "toy.yaml"))
    return home


@pytest.mark.parametrize("suffix", [".nii.gz", ".mha", ".mhd", ".nrrd"])
def test_3d_formats_land_in_zarr_with_geometry(toy, tmp_path, suffix):
    source = write_source(tmp_path / "src", n=2, suffix=suffix)
    assert organizer.ingest_phase(toy, "toy", "test", source) == 2
    group = zarr.open_group(inputs_url(toy, "toy", "test"), mode="r")
    scan, mask = cube_case(1)
    node = group["case1"]["scan"]
    assert node.metadata.zarr_format == 3
    np.testing.assert_array_equal(node[...], scan)
    assert tuple(node.attrs["spacing"]) == SPACING_ZYX  # array order (z, y, x)
    assert tuple(node.attrs["origin"]) == (10.0, -5.0, 3.0)
    assert node.chunks == (12, 24, 24)  # smaller than one chunk edge: a single chunk
    assert node.metadata.codecs[-1].to_dict()["configuration"]["cname"] == "zstd"
    expected = hashlib.sha256()
    expected.update(f"{scan.dtype.str}{scan.shape}{SPACING_ZYX}{(10.0, -5.0, 3.0)}"
                    f"{(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)}".encode())
    expected.update(scan.tobytes())
    assert node.attrs["checksum"] == expected.hexdigest()
    refs = zarr.open_group(references_url(toy, "toy", "test"), mode="r")
    np.testing.assert_array_equal(refs["case1"]["segmentation"][...], mask)
    assert "segmentation" not in group["case1"]  # references live apart from the inputs


def test_large_volume_is_chunked(toy, tmp_path):
    source = tmp_path / "src"
    (source / "scan").mkdir(parents=True)
    (source / "segmentation").mkdir()
    arr = np.zeros((70, 130, 130), np.uint8)
    sitk.WriteImage(to_sitk(arr), str(source / "scan" / "big.mha"))
    sitk.WriteImage(to_sitk(arr), str(source / "segmentation" / "big.mha"))
    organizer.ingest_phase(toy, "toy", "test", source)
    node = zarr.open_group(inputs_url(toy, "toy", "test"), mode="r")["big"]["scan"]
    assert node.chunks == (64, 64, 64)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_2d_images(home, tmp_path, suffix):
    organizer.create_challenge(home, write_definition(tmp_path / "toy.yaml"))
    source = tmp_path / "src"
    (source / "scan").mkdir(parents=True)
    (source / "segmentation").mkdir()
    image = (np.arange(40 * 30).reshape(40, 30) % 251).astype(np.uint8)
    sitk.WriteImage(sitk.GetImageFromArray(image), str(source / "scan" / f"slide{suffix}"))
    sitk.WriteImage(sitk.GetImageFromArray((image > 100).astype(np.uint8)),
                    str(source / "segmentation" / f"slide{suffix}"))
    organizer.ingest_phase(home, "toy", "test", source)
    node = zarr.open_group(inputs_url(home, "toy", "test"), mode="r")["slide"]["scan"]
    assert node.shape == (40, 30)
    np.testing.assert_array_equal(node[...], image)
    assert len(node.attrs["spacing"]) == 2


def test_dicom_series_is_read_and_patient_data_stays_out(home, tmp_path):
    organizer.create_challenge(home, write_definition(tmp_path / "toy.yaml"))
    source = tmp_path / "src"
    series = source / "scan" / "patient1"
    series.mkdir(parents=True)
    (source / "segmentation").mkdir()
    scan, mask = cube_case(0)
    for z in range(scan.shape[0]):
        sl = sitk.GetImageFromArray(scan[z:z + 1])
        sl.SetSpacing((0.5, 1.0, 2.0))
        sl.SetOrigin((10.0, -5.0, 3.0 + 2.0 * z))
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        for tag, value in {"0010|0010": PATIENT, "0010|0020": "ID-424242", "0008|0060": "CT",
                           "0020|000e": "1.2.826.0.1.3680043.2.1125.1", "0020|0013": str(z),
                           "0020|0032": f"10\\-5\\{3.0 + 2.0 * z}", "0020|0037": "1\\0\\0\\0\\1\\0"}.items():
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(series / f"{z:03d}.dcm"))
        writer.Execute(sl)
    sitk.WriteImage(to_sitk(mask), str(source / "segmentation" / "patient1.nii.gz"))
    organizer.ingest_phase(home, "toy", "test", source)
    node = zarr.open_group(inputs_url(home, "toy", "test"), mode="r")["patient1"]["scan"]
    np.testing.assert_array_equal(node[...], scan)
    assert node.attrs["modality"] == "CT"
    np.testing.assert_allclose(node.attrs["spacing"], SPACING_ZYX)
    # no identifier anywhere: neither in the stores nor in the database file
    found = subprocess.run(["grep", "-rla", "-e", "Doe", "-e", "424242", str(home.home)],
                           capture_output=True, text=True)
    assert found.stdout == "", f"patient data found in {found.stdout}"


def test_geometry_mismatch_is_refused_and_nothing_is_written(toy, tmp_path):
    source = write_source(tmp_path / "src", n=3)
    scan, mask = cube_case(2)
    sitk.WriteImage(to_sitk(mask, spacing_zyx=(2.0, 1.0, 0.6)), str(source / "segmentation" / "case2.nii.gz"))
    result = runner.invoke(app, ["data", "ingest", str(source), "-c", "toy", "-p", "test"],
                           env={"MEDARENA_HOME": str(toy.home)})
    assert result.exit_code == 1
    assert "case 'case2': reference 'segmentation'" in result.output
    assert "does not match the grid of input 'scan'" in result.output
    store = toy.home / "store"
    assert not any(p.name.startswith(("case0", "case1")) for p in store.rglob("*")), "half-written cases"
    with session_scope(toy.database_url) as session:
        assert session.query(Case).count() == 0


@pytest.mark.parametrize("damage, message", [
    (lambda src: shutil.rmtree(src / "segmentation"), "missing folder for socket 'segmentation'"),
    (lambda src: [p.unlink() for p in (src / "scan").iterdir()], "empty folder for socket 'scan'"),
    (lambda src: (src / "scan" / "case0.nii.gz").unlink(), "case 'case0': no file for socket(s) scan"),
    (lambda src: (src / "scan" / "case1.nii.gz").write_bytes(b"not an image"), "case1.nii.gz: cannot read image"),
    (lambda src: sitk.WriteImage(to_sitk(cube_case(1)[0]), str(src / "scan" / "case1.mha")),
     "/scan: two files for case 'case1': case1.mha and case1.nii.gz"),
])
def test_bad_sources_get_one_line_errors(toy, tmp_path, damage, message):
    source = write_source(tmp_path / "src", n=2)
    damage(source)
    with pytest.raises(IngestError) as exc:
        organizer.ingest_phase(toy, "toy", "test", source)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_missing_data_folder(toy, tmp_path):
    result = runner.invoke(app, ["data", "ingest", str(tmp_path / "nowhere[v2]"), "-c", "toy", "-p", "test"],
                           env={"MEDARENA_HOME": str(toy.home), "COLUMNS": "300"})
    assert result.exit_code == 1 and "nowhere[v2]: not a folder" in result.output  # brackets are not markup
