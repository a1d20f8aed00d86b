"""Bad input at the command line ends in one line naming the file or field, never a traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from medarena.cli import app
from medarena.platform import organizer
from tests.platform.challenge_data import write_definition

runner = CliRunner()


def fails_in_one_line(args: list[str], home: Path, *expected: str) -> None:
    result = runner.invoke(app, args, env={"MEDARENA_HOME": str(home), "COLUMNS": "300"})
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for text in expected:
        assert text in lines[0], lines[0]


def write_mask(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6), np.uint8)), str(path))
    return path


def test_submit_without_podman(home, tmp_path, monkeypatch):
    organizer.create_challenge(home, write_definition(tmp_path / "toy.yaml"))
    monkeypatch.setattr("medarena.platform.runner.podman_available", lambda: False)
    fails_in_one_line(["submit", "localhost/some-algorithm:latest", "-c", "toy", "-p", "test", "-u", "alice"],
                      home.home, "podman is not installed")


@pytest.mark.parametrize("make, reason", [
    (lambda path: path.mkdir(), "cannot be read (Is a directory)"),
    (lambda path: path.write_bytes(b"slug: toy\ntitle: \xff\xfe caf\xe9\n"), "not UTF-8 text"),
])
def test_challenge_create_with_an_unreadable_definition(home, tmp_path, make, reason):
    path = tmp_path / "challenge.yaml"
    make(path)
    fails_in_one_line(["challenge", "create", str(path)], home.home, f"{path}: {reason}")


def test_evaluate_an_unknown_task(home, tmp_path):
    fails_in_one_line(["evaluate", "bogus", "--reference", str(tmp_path), "--prediction", str(tmp_path)],
                      home.home, "unknown task 'bogus'")


def test_evaluate_with_a_config_that_is_not_a_mapping(home, tmp_path):
    config = tmp_path / "settings.yaml"
    config.write_text("- dice\n- hd95\n")
    fails_in_one_line(["evaluate", "segmentation", "--reference", str(tmp_path), "--prediction", str(tmp_path),
                       "--config", str(config)], home.home, f"{config}: expected a mapping of settings")


def test_evaluate_a_folder_with_two_files_for_one_case(home, tmp_path):
    write_mask(tmp_path / "ref" / "case1.nii.gz")
    write_mask(tmp_path / "ref" / "case1.mha")
    write_mask(tmp_path / "pred" / "case1.nii.gz")
    fails_in_one_line(["evaluate", "segmentation", "--reference", str(tmp_path / "ref"),
                       "--prediction", str(tmp_path / "pred")],
                      home.home, f"{tmp_path / 'ref'}: two files for case 'case1': case1.mha and case1.nii.gz")
