"""The container runner, with real podman containers (the example images of submissions/)."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from medarena.evaluators.image import Image
from medarena.platform.contract import InvalidOutput, MissingOutput, Socket, read_outputs, write_inputs
from medarena.platform.runner import (
    HOST_UID_BASE,
    ImageError,
    Limits,
    RunnerError,
    container_command,
    load_image,
    podman_env,
    run_container,
)

CT = Socket(slug="ct-image", kind="image", relative_path="images/ct")
SEGMENTATION = Socket(slug="segmentation", kind="segmentation", relative_path="images/segmentation")
FAST = Limits(wall_time_seconds=20, memory_mb=256, cpus=1, pids=64)
MISBEHAVIOURS = ("ok", "timeout", "invalid_output", "exit_code", "missing_output", "out_of_memory")


def podman(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, env=podman_env(), timeout=120)


def container_exists(name: str) -> bool:
    return podman("container", "exists", name).returncode == 0


def ct_image(seed: int = 0, shape=(12, 16, 20)) -> Image:
    array = (np.random.default_rng(seed).normal(size=shape) * 200).astype(np.int16)
    return Image(array=array, spacing=(2.5, 0.8, 0.6), origin=(-50.0, 12.5, 3.0),
                 direction=(0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))


def ct_case(folder: Path, image: Image) -> Path:
    write_inputs(folder / "input", [CT], {"ct-image": image})
    return folder / "input"


def case_for(behaviour: str) -> Image:
    """An input on which the misbehaving example does ``behaviour`` (see its README)."""
    for seed in range(1000):
        image = ct_image(seed, shape=(6, 8, 10))
        if MISBEHAVIOURS[zlib.crc32(image.array.tobytes()) % len(MISBEHAVIOURS)] == behaviour:
            return image
    raise AssertionError(f"no input found for {behaviour}")


@pytest.fixture(scope="module")
def tiny_images(example_images):
    """Images without any program: one without entrypoint and command, one whose entrypoint does
    not exist. Imported from a one-file tarball, they take milliseconds to make and save."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    names = {"bare": "localhost/medarena-test-bare:latest",
             "broken": "localhost/medarena-test-broken-entrypoint:latest"}
    changes = {"bare": [], "broken": ["--change", 'ENTRYPOINT ["/opt/algorithm/missing"]']}
    for key, name in names.items():
        made = subprocess.run(["podman", "import", *changes[key], "-", name], input=buffer.getvalue(),
                              capture_output=True, env=podman_env(), timeout=60)
        assert made.returncode == 0, made.stderr
    yield names
    podman("rmi", "--force", *names.values())


# --- the command ---------------------------------------------------------------------------------


def test_container_command_isolates_the_container(tmp_path):
    limits = Limits(wall_time_seconds=60, memory_mb=512, cpus=1.5, pids=128, gpus=1)
    command = container_command("sha256:" + "a" * 64, tmp_path / "in", tmp_path / "out", limits,
                                name="medarena-case-1", gpu_ids=("1",))
    assert command[0] == "podman" and command[-1] == "sha256:" + "a" * 64
    joined = " ".join(command)
    for flag in ("--name medarena-case-1", "--network=none", "--cap-drop=ALL",
                 "--security-opt=no-new-privileges", "--read-only", "--read-only-tmpfs=false", "--pull=never",
                 "--memory=512m", "--memory-swap=512m", "--cpus=1.5",
                 "--pids-limit=128", "--ulimit=nofile=1024:1024", "--ulimit=nproc=4096:4096",
                 "--device nvidia.com/gpu=1"):
        assert flag in joined, flag
    assert f"--volume {tmp_path}/in:/input:ro," in joined
    assert f"--volume {tmp_path}/out:/output:rw,U," in joined
    assert any(part.startswith("/tmp:rw,") and "size=512m" in part for part in command)
    assert "--user" not in command and "--privileged" not in command
    assert joined.count("nvidia.com/gpu") == 1
    assert "--init" in command and "--ulimit=fsize" not in joined


def test_container_command_maps_the_container_users_to_unused_host_ids(tmp_path, monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 0)
    command = container_command("img", tmp_path, tmp_path / "out", FAST, name="x")
    assert f"--uidmap=0:{HOST_UID_BASE}:65536" in command and f"--gidmap=0:{HOST_UID_BASE}:65536" in command
    monkeypatch.setattr("os.geteuid", lambda: 1000)  # rootless: podman maps root to the caller already
    assert not any(part.startswith(("--uidmap", "--gidmap", "--userns")) for part in
                   container_command("img", tmp_path, tmp_path / "out", FAST, name="x"))


def test_container_command_limits_file_size_where_no_file_system_caps_the_output(tmp_path):
    command = container_command("img", tmp_path, tmp_path / "out", FAST, name="x", file_size_limit=5 * 2**20)
    assert "--ulimit=fsize=5242880:5242880" in command


def test_container_command_without_gpus_has_no_device(tmp_path):
    command = container_command("img", tmp_path, tmp_path / "out", FAST, name="x")
    assert "--device" not in command


def test_container_command_refuses_folders_that_break_the_mount_syntax(tmp_path):
    with pytest.raises(ValueError, match="cannot contain"):
        container_command("img", tmp_path / "a:b", tmp_path / "out", FAST, name="x")


# --- real containers -----------------------------------------------------------------------------


@pytest.mark.podman
def test_threshold_example_writes_a_mask_on_the_input_grid(example_images, tmp_path):
    image = ct_image()
    result = run_container(example_images + "threshold:latest", ct_case(tmp_path, image), tmp_path / "out",
                           FAST)
    assert result.status == "ok", result
    assert result.exit_code == 0 and "labelled" in result.stdout_tail
    mask = read_outputs(tmp_path / "out", [SEGMENTATION], expected_geometry=image)["segmentation"]
    assert mask.array.dtype == np.uint8 and set(np.unique(mask.array)) == {0, 1}
    # a threshold: every labelled voxel is brighter than every unlabelled one
    assert image.array[mask.array == 1].min() > image.array[mask.array == 0].max()


@pytest.mark.podman
def test_a_pinned_digest_runs(example_images, tmp_path):
    pinned = load_image(example_images + "noop:latest")
    assert pinned.digest.startswith("sha256:") and len(pinned.digest) == 71
    assert pinned.name == example_images + "noop:latest"
    image = ct_image()
    result = run_container(pinned.digest, ct_case(tmp_path, image), tmp_path / "out", FAST)
    assert result.status == "ok", result
    mask = read_outputs(tmp_path / "out", [SEGMENTATION], expected_geometry=image)["segmentation"]
    assert not mask.array.any()


@pytest.mark.podman
def test_wall_time_limit_stops_and_removes_the_container(example_images, tmp_path):
    limits = Limits(wall_time_seconds=1, memory_mb=128)
    result = run_container(example_images + "sleeper:latest", ct_case(tmp_path, ct_image()), tmp_path / "out",
                           limits, name="medarena-test-sleeper")
    assert result.status == "timeout" and result.exit_code is None
    assert 1 <= result.runtime_seconds < 10
    assert "wall-time limit of 1 s" in result.message
    assert not container_exists("medarena-test-sleeper")
    assert "medarena-test-sleeper" not in podman("ps", "-a", "--format", "{{.Names}}").stdout


@pytest.mark.podman
def test_memory_over_the_limit_is_out_of_memory(example_images, tmp_path):
    limits = Limits(wall_time_seconds=30, memory_mb=128)
    result = run_container(example_images + "oom:latest", ct_case(tmp_path, ct_image()), tmp_path / "out",
                           limits, name="medarena-test-oom")
    assert result.status == "out_of_memory", result
    assert "128 MB" in result.message and not container_exists("medarena-test-oom")
    assert not (Path.cwd() / "oom").exists(), "podman's OOM marker landed in the caller's directory"


@pytest.mark.podman
def test_a_failing_exit_keeps_the_stderr_tail(example_images, tmp_path):
    result = run_container(example_images + "misbehaving:latest", ct_case(tmp_path, case_for("exit_code")),
                           tmp_path / "out", FAST, log_tail_bytes=200)
    assert result.status == "exit_code" and result.exit_code == 3
    assert result.stderr_tail.endswith("misbehaving: giving up on this case on purpose\n")
    assert result.message == "exited with code 3: misbehaving: giving up on this case on purpose"
    assert "'exit_code'" in result.stdout_tail


@pytest.mark.podman
@pytest.mark.parametrize("behaviour", ["ok", "invalid_output", "missing_output", "out_of_memory", "timeout"])
def test_misbehaving_example_fails_each_way_its_readme_says(example_images, tmp_path, behaviour):
    image = case_for(behaviour)
    limits = Limits(wall_time_seconds=15, memory_mb=128)  # room for podman on a loaded machine
    result = run_container(example_images + "misbehaving:latest", ct_case(tmp_path, image), tmp_path / "out",
                           limits)
    expected_status = behaviour if behaviour in ("timeout", "out_of_memory") else "ok"
    assert result.status == expected_status, result
    if behaviour == "ok":
        read_outputs(tmp_path / "out", [SEGMENTATION], expected_geometry=image)
    elif behaviour == "invalid_output":
        with pytest.raises(InvalidOutput, match=r"shape \(5, 8, 10\) instead of \(6, 8, 10\)"):
            read_outputs(tmp_path / "out", [SEGMENTATION], expected_geometry=image)
    elif behaviour == "missing_output":
        with pytest.raises(MissingOutput):
            read_outputs(tmp_path / "out", [SEGMENTATION], expected_geometry=image)


@pytest.fixture(scope="module")
def root_image(example_images, tmp_path_factory):
    """An image without a USER line (its processes are root inside) that reports who it is."""
    context = tmp_path_factory.mktemp("root-image")
    (context / "Containerfile").write_text(
        "FROM localhost/medarena-base:latest\n"
        'ENTRYPOINT ["sh", "-c", "id -u > /output/uid; cat /proc/self/uid_map > /output/uid_map; '
        'cat /proc/1/cmdline > /output/pid1; touch /output/made-by-root"]\n')
    name = "localhost/medarena-test-root:latest"
    built = subprocess.run(["podman", "build", "-q", "-t", name, str(context)], capture_output=True, text=True,
                           env=podman_env(), timeout=300)
    assert built.returncode == 0, built.stderr
    yield name
    podman("rmi", "--force", name)


@pytest.mark.podman
@pytest.mark.skipif(os.geteuid() != 0, reason="rootless podman maps root to the calling user by itself")
def test_root_in_the_container_is_an_unused_host_uid_under_an_init(root_image, tmp_path):
    result = run_container(root_image, ct_case(tmp_path, ct_image()), tmp_path / "out", FAST)
    assert result.status == "ok", result
    out = tmp_path / "out"
    assert (out / "uid").read_text().split() == ["0"]  # root as the image asks ...
    assert (out / "uid_map").read_text().split() == ["0", str(HOST_UID_BASE), "65536"]
    assert (out / "made-by-root").stat().st_uid == HOST_UID_BASE  # ... and nobody on the host
    assert (out / "pid1").read_bytes().split(b"\0")[:2] == [b"/run/podman-init", b"--"]  # catatonit: --init


@pytest.mark.podman
def test_the_sandbox_has_no_network_a_read_only_root_and_input_and_a_writable_tmp(example_images, tmp_path):
    limits = Limits(wall_time_seconds=20, memory_mb=200, pids=77)
    result = run_container(example_images + "sandbox-check:latest", ct_case(tmp_path, ct_image()),
                           tmp_path / "out", limits)
    assert result.status == "ok", result
    report = json.loads((tmp_path / "out" / "sandbox.json").read_text())
    assert report["uid"] == 1000  # the image's own user
    assert report["network_interfaces"] == ["lo"] and report["can_connect"] is False
    assert report["writable"] == {"/": False, "/etc": False, "/input": False, "/tmp": True, "/output": True}
    assert report["capabilities_effective"] == "0000000000000000"
    assert report["no_new_privileges"] == "1"
    assert report["nofile_limit"] == [1024, 1024]
    assert report["pids_max"] == "77"
    assert int(report["memory_max"]) == 200 * 2**20


@pytest.mark.podman
def test_load_image_from_a_saved_tarball_pins_the_same_digest(example_images, tiny_images, tmp_path):
    name = tiny_images["broken"]
    original = load_image(name)
    archive = tmp_path / "algorithm.tar"
    assert podman("save", "-o", str(archive), name).returncode == 0
    podman("rmi", name)
    loaded = load_image(archive)
    assert loaded == original
    assert load_image(str(archive)).digest == original.digest  # loading twice is harmless
    packed = tmp_path / "algorithm.tar.gz"
    with archive.open("rb") as plain, gzip.open(packed, "wb") as gz:
        shutil.copyfileobj(plain, gz)
    podman("rmi", name)
    assert load_image(packed) == original  # `docker save | gzip` works too


@pytest.mark.podman
def test_a_corrupt_or_missing_tarball_is_an_image_error(example_images, tmp_path):
    archive = tmp_path / "broken.tar"
    archive.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ImageError, match=r"broken\.tar: not an image archive as `podman save`") as error:
        load_image(archive)
    assert "\n" not in str(error.value)
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(gzip.compress(np.random.default_rng(0).bytes(10000))[:100])
    with pytest.raises(ImageError, match=r"truncated\.tar\.gz: a damaged compressed archive"):
        load_image(truncated)
    with pytest.raises(ImageError, match=r"absent\.tar: no such file"):
        load_image(tmp_path / "absent.tar")


@pytest.mark.podman
def test_an_image_without_entrypoint_or_command_is_an_image_error(example_images, tiny_images, tmp_path):
    with pytest.raises(ImageError, match="medarena-test-bare:latest: has no ENTRYPOINT and no CMD"):
        load_image(tiny_images["bare"])
    result = run_container(tiny_images["bare"], tmp_path, tmp_path / "out", FAST)
    assert result.status == "image_error" and "no ENTRYPOINT" in result.message


@pytest.mark.podman
def test_an_unknown_image_is_an_image_error(example_images, tmp_path):
    with pytest.raises(ImageError, match="image localhost/medarena-no-such-image:1: not found"):
        load_image("localhost/medarena-no-such-image:1")
    result = run_container("localhost/medarena-no-such-image:1", tmp_path, tmp_path / "out", FAST)
    assert result.status == "image_error" and "not found" in result.message


@pytest.mark.podman
def test_an_entrypoint_that_cannot_start_is_an_image_error(example_images, tiny_images, tmp_path):
    result = run_container(tiny_images["broken"], tmp_path, tmp_path / "out", FAST,
                           name="medarena-test-broken")
    assert result.status == "image_error", result
    assert "/opt/algorithm/missing" in result.message and "did not start" in result.message
    assert not container_exists("medarena-test-broken")


@pytest.mark.podman
def test_a_leftover_container_of_the_same_name_is_replaced(example_images, tmp_path):
    name = "medarena-test-leftover"
    assert podman("create", "--name", name, example_images + "sleeper:latest").returncode == 0
    result = run_container(example_images + "noop:latest", ct_case(tmp_path, ct_image()), tmp_path / "out",
                           FAST, name=name)
    assert result.status == "ok", result
    assert not container_exists(name)


def test_podman_uses_the_repository_settings_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv("CONTAINERS_CONF", raising=False)
    assert podman_env()["CONTAINERS_CONF"].endswith("infra/containers.conf")
    monkeypatch.setenv("CONTAINERS_CONF", "/etc/elsewhere.conf")
    assert podman_env()["CONTAINERS_CONF"] == "/etc/elsewhere.conf"


def test_stale_outputs_are_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.json").write_text("{}")
    with pytest.raises(ValueError, match="must be empty"):
        run_container("img", tmp_path, tmp_path / "out", FAST)


@pytest.mark.podman
@pytest.mark.skipif(any(p for d in ("/etc/cdi", "/var/run/cdi") for p in Path(d).glob("*nvidia*")),
                    reason="this host has NVIDIA CDI devices")
def test_a_gpu_the_host_does_not_have_is_a_platform_fault(example_images, tmp_path):
    with pytest.raises(RunnerError, match="unresolvable CDI devices nvidia.com/gpu=0"):
        run_container(example_images + "noop:latest", ct_case(tmp_path, ct_image()), tmp_path / "out",
                      Limits(gpus=1), gpu_ids=("0",))


@pytest.mark.podman
def test_threshold_example_reads_compressed_2d_float_images(example_images, tmp_path):
    array = np.zeros((40, 50), np.float32)
    array[10:20, 5:45] = 3.5
    image = Image(array=array, spacing=(0.4, 0.3), origin=(5.0, -2.0))
    write_inputs(tmp_path / "input", [CT], {"ct-image": image}, compress=True)
    result = run_container(example_images + "threshold:latest", tmp_path / "input", tmp_path / "out", FAST)
    assert result.status == "ok", result
    mask = read_outputs(tmp_path / "out", [SEGMENTATION], expected_geometry=image)["segmentation"]
    np.testing.assert_array_equal(mask.array, (array > 1).astype(np.uint8))

