"""The container contract: the input layout, output checks, and the examples' MetaImage module."""

from __future__ import annotations

import filecmp
import importlib.util
import json
import os
import stat
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from pydantic import ValidationError

from medarena.evaluators.image import Image
from medarena.platform.contract import (
    InvalidOutput,
    MissingOutput,
    OutputTooLarge,
    Socket,
    image_to_sitk,
    read_outputs,
    write_inputs,
)
from medarena.platform.runner import Limits, podman_env, run_container

REPO = Path(__file__).resolve().parents[2]
CT = Socket(slug="ct-image", kind="image", relative_path="images/ct")
SEGMENTATION = Socket(slug="segmentation", kind="segmentation", relative_path="images/segmentation")
FIELD = Socket(slug="displacement", kind="displacement-field", relative_path="images/displacement-field")
LANDMARKS = Socket(slug="fixed-landmarks", kind="points", relative_path="fixed-landmarks.json")

# a rotated, anisotropic grid: any axis mix-up shows
DIRECTION = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)


def ct(shape=(4, 5, 6), dtype=np.int16) -> Image:
    array = np.arange(np.prod(shape)).reshape(shape).astype(dtype)
    return Image(array=array, spacing=(3.0, 0.7, 0.5), origin=(-10.0, 20.5, 7.25), direction=DIRECTION)


def only_file(folder: Path) -> Path:
    files = list(folder.iterdir())
    assert len(files) == 1, files
    return files[0]


def put(output: Path, socket: Socket, image: Image, name: str = "result.mha") -> Path:
    folder = output / socket.relative_path
    folder.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image_to_sitk(image), str(folder / name))
    return folder / name


# --- sockets -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fields", [
    {"slug": "x", "kind": "points", "relative_path": "points"},  # JSON needs a .json file
    {"slug": "x", "kind": "image", "relative_path": "images/x.mha"},  # images need a folder
    {"slug": "x", "kind": "image", "relative_path": "../outside"},
    {"slug": "x", "kind": "image", "relative_path": "/images/x"},
    {"slug": "X Y", "kind": "image", "relative_path": "images/x"},
    {"slug": "x", "kind": "video", "relative_path": "videos/x"},
])
def test_socket_rejects_paths_and_kinds_that_break_the_layout(fields):
    with pytest.raises(ValidationError):
        Socket(**fields)


# --- inputs --------------------------------------------------------------------------------------


def test_write_inputs_lays_out_images_and_json_as_grand_challenge_does(tmp_path):
    image = ct()
    field = Image(array=np.random.default_rng(0).normal(size=(4, 5, 6, 3)).astype(np.float32),
                  spacing=image.spacing, origin=image.origin, direction=image.direction)
    landmarks = [[1.0, 2.0, 3.0], [4.5, 5.5, 6.5]]
    write_inputs(tmp_path / "input", [CT, FIELD, LANDMARKS],
                 {"ct-image": image, "displacement": field, "fixed-landmarks": landmarks})

    entries = json.loads((tmp_path / "input" / "inputs.json").read_text())
    # grand-challenge's order (values, then images, each by slug) and its kind names
    assert [(e["socket"]["slug"], e["socket"]["kind"], e["socket"]["relative_path"], e["value"]) for e in entries] == [
        ("fixed-landmarks", "Multiple points", "fixed-landmarks.json", landmarks),
        ("ct-image", "Image", "images/ct", None),
        ("displacement", "Displacement field", "images/displacement-field", None),
    ]
    assert all(e["interface"] == e["socket"] for e in entries)
    assert json.loads((tmp_path / "input" / "fixed-landmarks.json").read_text()) == landmarks

    written = only_file(tmp_path / "input" / "images" / "ct")
    assert written.suffix == ".mha" and written.stem == entries[1]["image"]["pk"]  # <image pk>.mha
    back = sitk.ReadImage(str(written))
    assert back.GetSpacing() == (0.5, 0.7, 3.0)  # ITK order (x, y, z)
    assert back.GetOrigin() == image.origin
    assert back.GetDirection() == DIRECTION
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), image.array)

    vector = sitk.ReadImage(str(only_file(tmp_path / "input" / "images" / "displacement-field")))
    assert vector.GetNumberOfComponentsPerPixel() == 3 and vector.GetSize() == (6, 5, 4)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(vector), field.array)


def test_write_inputs_makes_everything_readable_for_another_user(tmp_path):
    folder = tmp_path / "input"
    folder.mkdir(mode=0o700)
    write_inputs(folder, [CT, LANDMARKS], {"ct-image": ct(), "fixed-landmarks": []})
    for path in [folder, *folder.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o004, f"{path} is not world-readable ({oct(mode)})"
        if path.is_dir():
            assert mode & 0o001, f"{path} cannot be entered by others ({oct(mode)})"


def test_write_inputs_names_the_socket_of_a_missing_or_wrong_value(tmp_path):
    with pytest.raises(ValueError, match="'ct-image': no value"):
        write_inputs(tmp_path, [CT], {})
    with pytest.raises(ValueError, match="'ct-image': expected an Image"):
        write_inputs(tmp_path, [CT], {"ct-image": [1, 2]})
    with pytest.raises(ValueError, match="'fixed-landmarks': value is not JSON"):
        write_inputs(tmp_path, [LANDMARKS], {"fixed-landmarks": [float("nan")]})


def test_write_inputs_writes_2d_images_and_boolean_masks(tmp_path):
    mask = Image(array=np.eye(5, dtype=bool), spacing=(0.5, 0.25))
    write_inputs(tmp_path, [CT], {"ct-image": mask})
    back = sitk.ReadImage(str(only_file(tmp_path / "images" / "ct")))
    assert back.GetDimension() == 2 and back.GetSpacing() == (0.25, 0.5)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), np.eye(5, dtype=np.uint8))


# --- outputs -------------------------------------------------------------------------------------


def test_read_outputs_returns_images_and_json_values(tmp_path):
    grid = ct()
    mask = Image(array=(grid.array > 50).astype(np.uint8), spacing=grid.spacing, origin=grid.origin,
                 direction=grid.direction)
    put(tmp_path, SEGMENTATION, mask)
    (tmp_path / "fixed-landmarks.json").write_text('[[1, 2, 3]]')
    values = read_outputs(tmp_path, [SEGMENTATION, LANDMARKS], expected_geometry=grid)
    assert values["fixed-landmarks"] == [[1, 2, 3]]
    assert values["segmentation"].same_geometry(grid)
    np.testing.assert_array_equal(values["segmentation"].array, mask.array)


@pytest.mark.parametrize("name", ["seg.nii.gz", "seg.tif", "seg.tiff"])
def test_read_outputs_accepts_other_image_formats(tmp_path, name):
    image = Image(array=np.ones((6, 7), np.uint8), spacing=(1.0, 1.0))
    put(tmp_path, SEGMENTATION, image, name)
    assert read_outputs(tmp_path, [SEGMENTATION])["segmentation"].shape == (6, 7)


def test_missing_outputs_name_the_socket_and_the_path(tmp_path):
    with pytest.raises(MissingOutput, match=r"'segmentation': /output/images/segmentation/ missing"):
        read_outputs(tmp_path, [SEGMENTATION])
    (tmp_path / "images" / "segmentation").mkdir(parents=True)
    with pytest.raises(MissingOutput, match="no image file"):
        read_outputs(tmp_path, [SEGMENTATION])
    (tmp_path / "images" / "segmentation" / "notes.txt").write_text("done")
    with pytest.raises(MissingOutput, match=r"found only: notes\.txt"):
        read_outputs(tmp_path, [SEGMENTATION])
    with pytest.raises(MissingOutput, match=r"'fixed-landmarks': /output/fixed-landmarks\.json: missing"):
        read_outputs(tmp_path, [LANDMARKS])


def test_two_images_where_one_is_expected_are_invalid(tmp_path):
    put(tmp_path, SEGMENTATION, ct(), "a.mha")
    put(tmp_path, SEGMENTATION, ct(), "b.mha")
    with pytest.raises(InvalidOutput, match=r"exactly one image file .* found 2: a\.mha, b\.mha"):
        read_outputs(tmp_path, [SEGMENTATION])


def test_an_unreadable_image_is_invalid_without_showing_host_paths(tmp_path):
    folder = tmp_path / "images" / "segmentation"
    folder.mkdir(parents=True)
    (folder / "broken.mha").write_bytes(b"not a MetaImage at all")
    with pytest.raises(InvalidOutput, match=r"/output/images/segmentation/broken\.mha") as error:
        read_outputs(tmp_path, [SEGMENTATION])
    assert str(tmp_path) not in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("text, reason", [
    ('[[1, 2, 3]', "not valid JSON"),
    ('[NaN]', "NaN is not a valid JSON value"),
    (b'\xff\xfe\x00', "not valid JSON"),
])
def test_bad_json_is_invalid(tmp_path, text, reason):
    path = tmp_path / "fixed-landmarks.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(InvalidOutput, match=reason):
        read_outputs(tmp_path, [LANDMARKS])


def test_an_image_off_the_input_grid_is_invalid_and_the_message_says_how(tmp_path):
    grid = ct()
    put(tmp_path, SEGMENTATION, Image(array=np.zeros((4, 5, 6), np.uint8), spacing=(3.0, 0.7, 0.6),
                                      origin=grid.origin, direction=grid.direction))
    with pytest.raises(InvalidOutput, match=r"not on the input's grid: spacing \(3, 0\.7, 0\.6\) instead of "
                                            r"\(3, 0\.7, 0\.5\)$"):
        read_outputs(tmp_path, [SEGMENTATION], expected_geometry={"segmentation": grid})


@pytest.mark.parametrize("socket, array, reason", [
    (SEGMENTATION, np.full((4, 5, 6), np.nan, np.float32), "120 voxels are NaN or infinite"),
    (SEGMENTATION, np.full((4, 5, 6), 0.5, np.float32), "integer labels"),
    (SEGMENTATION, np.zeros((4, 5, 6, 2), np.uint8), "expected a scalar image"),
    (FIELD, np.zeros((4, 5, 6), np.float32), "needs 3 components"),
])
def test_voxel_values_that_cannot_be_scored_are_invalid(tmp_path, socket, array, reason):
    put(tmp_path, socket, Image(array=array, spacing=(1.0, 1.0, 1.0)))
    with pytest.raises(InvalidOutput, match=reason):
        read_outputs(tmp_path, [socket])


def huge_compressed_mha(path: Path) -> None:
    """A 4000^3 header with a few compressed bytes: loading it would need 64 GB."""
    data = zlib.compress(b"\0" * 1024)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"ObjectType = Image\nNDims = 3\nDimSize = 4000 4000 4000\nElementType = MET_UCHAR\n"
                     b"CompressedData = True\nCompressedDataSize = %d\nElementDataFile = LOCAL\n" % len(data)
                     + data)


@pytest.mark.parametrize("with_grid, reason", [
    (False, r"shape \(4000, 4000, 4000\) has more than the 2147483648 voxels accepted"),
    (True, r"not on the input's grid: shape \(4000, 4000, 4000\) instead of \(4, 5, 6\)"),
])
def test_a_huge_declared_grid_is_refused_from_the_header_alone(tmp_path, monkeypatch, with_grid, reason):
    huge_compressed_mha(tmp_path / "images" / "segmentation" / "seg.mha")

    def no_voxels(path, **kwargs):
        raise AssertionError("the voxels were read")

    monkeypatch.setattr("medarena.platform.contract.read_image", no_voxels)
    with pytest.raises(InvalidOutput, match=reason):
        read_outputs(tmp_path, [SEGMENTATION], expected_geometry=ct() if with_grid else None)


def test_an_output_file_over_the_size_limit_is_refused(tmp_path):
    (tmp_path / "fixed-landmarks.json").write_text(json.dumps([[1.0, 2.0, 3.0]] * 20))
    with pytest.raises(OutputTooLarge, match=r"^/output/fixed-landmarks\.json: 340 bytes, more than the output "
                                             r"limit of 100 bytes$"):
        read_outputs(tmp_path, [LANDMARKS], max_bytes=100)


# --- outputs that point outside the output folder ----------------------------------------------------

SECRET = "host-secret-4f1c"
MODE = Socket(slug="mode", kind="json", relative_path="mode.json")
RESULT = Socket(slug="result", kind="json", relative_path="result.json")
# each mode makes the container leave outputs that name a host path (baked into the image)
ESCAPES = {
    "file-link": 'ln -s "$HOST/secret.json" /output/result.json',
    "folder-link": 'mkdir -p /output/images && ln -s "$HOST/folder" /output/images/segmentation',
    "nested-link": 'mkdir -p /output/images/segmentation/deep && ln -s "$HOST/secret.json" '
                   '/output/images/segmentation/deep/x.mha',
    "mhd": 'mkdir -p /output/images/segmentation && printf "ObjectType = Image\\nNDims = 3\\n'
           'DimSize = 2 2 2\\nElementType = MET_UCHAR\\nElementDataFile = $HOST/secret.raw\\n" '
           '> /output/images/segmentation/seg.mhd',
    "mha": 'mkdir -p /output/images/segmentation && printf "ObjectType = Image\\nNDims = 3\\n'
           'DimSize = 2 2 2\\nElementType = MET_UCHAR\\nElementDataFile = $HOST/secret.raw\\n" '
           '> /output/images/segmentation/seg.mha',
    "fifo": 'mkfifo /output/result.json',
}


def write_host_secrets(host: Path) -> None:
    host.mkdir(parents=True, exist_ok=True)
    (host / "secret.json").write_text(json.dumps({SECRET: SECRET}))
    (host / "secret.raw").write_bytes(bytes(range(8)))
    (host / "folder").mkdir(exist_ok=True)
    (host / "folder" / f"{SECRET}.mha").write_bytes(b"")


@pytest.fixture(scope="module")
def escaping_image(example_images, tmp_path_factory):
    """A throwaway image that does ESCAPES[mode] (mode read from /input/mode.json), and the host
    folder whose paths it names."""
    host = tmp_path_factory.mktemp("host")
    write_host_secrets(host)
    context = tmp_path_factory.mktemp("context")
    cases = "\n".join(f'  \'"{mode}"\') {command} ;;' for mode, command in ESCAPES.items())
    (context / "escape.sh").write_text(f'#!/bin/sh\nHOST={host}\ncase "$(cat /input/mode.json)" in\n{cases}\nesac\n')
    (context / "Containerfile").write_text("FROM localhost/medarena-base:latest\n"
                                           "COPY --chmod=755 escape.sh /escape.sh\n"
                                           'ENTRYPOINT ["/escape.sh"]\n')
    name = "localhost/medarena-test-escape:latest"
    built = subprocess.run(["podman", "build", "-q", "-t", name, str(context)], capture_output=True, text=True,
                           env=podman_env(), timeout=300)
    assert built.returncode == 0, built.stderr
    yield name, host
    subprocess.run(["podman", "rmi", "--force", name], capture_output=True, env=podman_env(), timeout=120)


@pytest.mark.podman
@pytest.mark.parametrize("mode, shown", [
    ("file-link", "/output/result.json: a symbolic link"),
    ("folder-link", "/output/images/segmentation: a symbolic link"),
    ("nested-link", "/output/images/segmentation/deep/x.mha: a symbolic link"),
    ("mhd", "/output/images/segmentation/seg.mhd: .mhd is not accepted"),
    ("mha", "/output/images/segmentation/seg.mha: a MetaImage must hold its voxels itself"),
    ("fifo", "/output/result.json: not a regular file or folder"),
])
def test_outputs_naming_host_paths_are_invalid_and_never_read(escaping_image, tmp_path, mode, shown):
    image, host = escaping_image
    write_inputs(tmp_path / "input", [MODE], {"mode": mode})
    result = run_container(image, tmp_path / "input", tmp_path / "output",
                           Limits(wall_time_seconds=30, memory_mb=256, cpus=1, pids=64))
    assert result.status == "ok", result
    with pytest.raises(InvalidOutput) as error:
        read_outputs(tmp_path / "output", [RESULT, SEGMENTATION] if "link" in mode or mode == "fifo"
                     else [SEGMENTATION])
    message = str(error.value)
    assert message.startswith(shown) or shown in message, message
    assert "\n" not in message and SECRET not in message and str(host) not in message


def test_a_symlinked_output_is_refused_before_it_is_read(tmp_path):
    secret = tmp_path / "host.json"
    secret.write_text(json.dumps({SECRET: 1}))
    (tmp_path / "out").mkdir()
    os.symlink(secret, tmp_path / "out" / "result.json")
    with pytest.raises(InvalidOutput, match=r"^/output/result\.json: a symbolic link") as error:
        read_outputs(tmp_path / "out", [RESULT])
    assert SECRET not in str(error.value)


# --- the examples' pure-NumPy MetaImage module ------------------------------------------------------


def example_mha():
    path = REPO / "submissions" / "threshold" / "mha.py"
    spec = importlib.util.spec_from_file_location("example_mha", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_carries_the_same_mha_module():
    copies = sorted((REPO / "submissions").glob("*/mha.py"))
    assert len(copies) >= 3
    for copy in copies:
        assert filecmp.cmp(copy, copies[0], shallow=False), f"{copy} differs from {copies[0]}"


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32, np.float32, np.float64])
def test_example_mha_module_reads_and_writes_what_simpleitk_does(tmp_path, compress, dtype):
    mha = example_mha()
    image = ct(dtype=dtype)
    sitk.WriteImage(image_to_sitk(image), str(tmp_path / "in.mha"), useCompression=compress)
    array, header = mha.read(tmp_path / "in.mha")
    assert array.dtype == dtype
    np.testing.assert_array_equal(array, image.array)

    mha.write(tmp_path / "out.mha", array[..., ::-1] * 2, like=header, compress=not compress)
    back = sitk.ReadImage(str(tmp_path / "out.mha"))
    assert (back.GetSpacing(), back.GetOrigin(), back.GetDirection()) == (
        (0.5, 0.7, 3.0), image.origin, image.direction)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), image.array[..., ::-1] * 2)


def test_example_mha_module_handles_vector_images(tmp_path):
    mha = example_mha()
    array = np.arange(4 * 5 * 6 * 3, dtype=np.float32).reshape(4, 5, 6, 3)
    field = Image(array=array, spacing=(1.0, 2.0, 3.0))
    sitk.WriteImage(image_to_sitk(field), str(tmp_path / "field.mha"), useCompression=True)
    array, header = mha.read(tmp_path / "field.mha")
    np.testing.assert_array_equal(array, field.array)
    mha.write(tmp_path / "copy.mha", array, like=header)
    back = sitk.ReadImage(str(tmp_path / "copy.mha"))
    assert back.GetNumberOfComponentsPerPixel() == 3 and back.GetSpacing() == (3.0, 2.0, 1.0)
