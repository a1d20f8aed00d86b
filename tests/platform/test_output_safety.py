"""What a container may leave in /output, checked without a container: the bounded walk over
bytes names, the truncated-image message, the capped output folder and its robust removal."""

from __future__ import annotations

import errno
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from medarena.evaluators.image import Image
from medarena.platform import outputfs
from medarena.platform.contract import (
    MAX_OUTPUT_DEPTH,
    MAX_OUTPUT_ENTRIES,
    InvalidOutput,
    OutputTooLarge,
    Socket,
    image_to_sitk,
    read_outputs,
)
from medarena.platform.outputfs import OutputFolder, mounts_under, remove_tree

RESULT = Socket(slug="result", kind="json", relative_path="result.json")
SEGMENTATION = Socket(slug="segmentation", kind="segmentation", relative_path="images/segmentation")
as_root = pytest.mark.skipif(os.geteuid() != 0 or not outputfs.loop_mount_available(),
                             reason="a loop-mounted file system needs root and loop devices")


def result_json(folder: Path) -> None:
    (folder / "result.json").write_text("[1, 2]")


def refused(folder: Path, kind=InvalidOutput, **kwargs) -> str:
    with pytest.raises(kind) as error:
        read_outputs(folder, [RESULT], **kwargs)
    message = str(error.value)
    message.encode("utf-8")  # storable and printable as it is: no lone surrogates
    assert "\n" not in message and str(folder) not in message
    return message


def make_deep(root: Path, levels: int) -> None:
    """``levels`` nested folders, deeper than PATH_MAX allows naming from the root."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(levels):
            os.mkdir("d", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)


# --- the walk ------------------------------------------------------------------------------------


def test_a_name_that_is_not_utf8_is_refused_and_shown_escaped(tmp_path):
    result_json(tmp_path)
    with open(os.fsencode(tmp_path) + b"/bad\xff\xfe.txt", "wb") as file:
        file.write(b"x")
    assert refused(tmp_path) == r"/output/bad\xff\xfe.txt: a file name that is not UTF-8"


def test_control_characters_in_names_are_made_visible(tmp_path):
    (tmp_path / "\x1b[31mred\n").mkdir()
    (tmp_path / "\x1b[31mred\n" / "link").symlink_to("/etc/passwd")
    assert refused(tmp_path) == r"/output/\x1b[31mred\n/link: a symbolic link; outputs must be regular files " \
                                "and folders"


def test_folders_deeper_than_the_recursion_limit_are_refused_and_removed(tmp_path):
    result_json(tmp_path)
    make_deep(tmp_path, 2 * sys.getrecursionlimit())  # the container suite makes 10000
    message = refused(tmp_path)
    assert message == "/output/" + "/".join(["d"] * (MAX_OUTPUT_DEPTH + 1)) + \
        f": folders nested more than {MAX_OUTPUT_DEPTH} deep"
    assert remove_tree(tmp_path) and not tmp_path.exists()


def test_more_entries_than_the_bound_are_too_large(tmp_path, monkeypatch):
    assert MAX_OUTPUT_ENTRIES == 10_000  # the container suite writes 12000; here a smaller bound is quicker
    monkeypatch.setattr("medarena.platform.contract.MAX_OUTPUT_ENTRIES", 50)
    result_json(tmp_path)
    for i in range(25):
        (tmp_path / "a" / str(i)).mkdir(parents=True)
    assert read_outputs(tmp_path, [RESULT]) == {"result": [1, 2]}  # 27 entries
    for i in range(23):
        (tmp_path / "a" / str(i) / "f").touch()
    assert read_outputs(tmp_path, [RESULT]) == {"result": [1, 2]}  # 50 entries: the bound itself
    (tmp_path / "a" / "last").touch()
    assert refused(tmp_path, OutputTooLarge) == "/output holds more than 50 files and folders"


@pytest.mark.parametrize("make, reason", [
    (lambda p: os.mkfifo(p), "not a regular file or folder (a fifo, socket or device)"),
    (lambda p: socket.socket(socket.AF_UNIX).bind(str(p)), "not a regular file or folder (a fifo, socket or device)"),
    (lambda p: os.symlink("/etc/shadow", p), "a symbolic link"),
    (lambda p: os.link(p.parent.parent / "result.json", p), "a hard link (2 names for one file)"),
])
def test_links_fifos_and_sockets_are_refused_by_name(tmp_path, make, reason):
    result_json(tmp_path)
    (tmp_path / "sub").mkdir()
    make(tmp_path / "sub" / "odd")
    if "hard" in reason:  # both names of the file are refused; the walk meets either first
        assert refused(tmp_path).endswith(": " + reason + "; outputs must be plain files")
    else:
        assert refused(tmp_path).startswith("/output/sub/odd: " + reason)


@pytest.mark.parametrize("what", ["folder", "file"])
def test_entries_their_owner_cannot_read_are_refused_and_still_removed(tmp_path, what):
    out = tmp_path / "out"
    out.mkdir()
    result_json(out)
    (out / "locked").mkdir()
    (out / "locked" / "inner").write_text("x")
    target = out / "locked" if what == "folder" else out / "locked" / "inner"
    target.chmod(0)
    shown = "/output/locked" if what == "folder" else "/output/locked/inner"
    assert refused(out) == f"{shown}: not readable by its owner (mode 000); leave outputs readable"
    assert remove_tree(out) and not out.exists()


def test_a_sparse_file_larger_than_the_limit_is_too_large_by_its_size(tmp_path):
    result_json(tmp_path)
    with open(tmp_path / "sparse.bin", "wb") as file:
        file.truncate(100 * 2**30)
    assert (tmp_path / "sparse.bin").stat().st_blocks == 0
    assert refused(tmp_path, OutputTooLarge, max_bytes=4096 * 2**20) == \
        "/output/sparse.bin: 100.0 GB, more than the output limit of 4.0 GB"


def test_files_adding_up_past_the_limit_are_too_large(tmp_path):
    result_json(tmp_path)
    for i in range(3):
        (tmp_path / f"part{i}").write_bytes(b"x" * 400)
    assert refused(tmp_path, OutputTooLarge, max_bytes=1000) == \
        "the files in /output add up to more than the output limit of 1000 bytes"


def test_a_well_behaved_output_still_reads(tmp_path):
    result_json(tmp_path)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "log.txt").write_text("fine")
    assert read_outputs(tmp_path, [RESULT], max_bytes=1000) == {"result": [1, 2]}


# --- truncated images ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.int64,
                                   np.uint64, np.float32, np.float64])
def test_a_truncated_metaimage_says_how_many_bytes_it_lacks(tmp_path, dtype):
    array = np.zeros((5, 6, 7), dtype=dtype)
    image = Image(array=array, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
                  direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    folder = tmp_path / "images" / "segmentation"
    folder.mkdir(parents=True)
    path = folder / "seg.mha"
    sitk.WriteImage(image_to_sitk(image), str(path))
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(InvalidOutput) as error:
        read_outputs(tmp_path, [SEGMENTATION])
    # the voxels are the file's last array.nbytes bytes (NumPy's own count of them)
    assert str(error.value) == (f"output socket 'segmentation': /output/images/segmentation/seg.mha: "
                                f"the file is truncated: {array.nbytes - 100} of {array.nbytes} bytes of "
                                "voxel data")


def test_a_truncated_compressed_metaimage_says_so_too(tmp_path):
    array = np.random.default_rng(0).integers(0, 5, size=(8, 9, 10)).astype(np.uint8)
    image = Image(array=array, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
                  direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    folder = tmp_path / "images" / "segmentation"
    folder.mkdir(parents=True)
    path = folder / "seg.mha"
    sitk.WriteImage(image_to_sitk(image), str(path), useCompression=True)
    data = path.read_bytes()
    header_end = data.index(b"ElementDataFile = LOCAL\n") + len(b"ElementDataFile = LOCAL\n")
    compressed = len(data) - header_end
    path.write_bytes(data[:-7])
    with pytest.raises(InvalidOutput, match=f"the file is truncated: {compressed - 7} of {compressed} bytes"):
        read_outputs(tmp_path, [SEGMENTATION])


# --- the capped output folder --------------------------------------------------------------------


def fill(folder: Path, megabytes: int) -> int:
    """Write up to ``megabytes`` MB into one file; return how many were written before ENOSPC."""
    written = 0
    chunk = os.urandom(2**20)
    try:
        with open(folder / "fill.bin", "wb") as file:
            for _ in range(megabytes):
                file.write(chunk)
                file.flush()
                written += 1
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    return written


@as_root
def test_a_capped_folder_refuses_writes_past_the_cap_and_leaves_nothing(tmp_path):
    before = set(mounts_under(tmp_path))
    with OutputFolder(tmp_path / "out", 8 * 2**20) as output:
        assert output.enforced_by == "ext4" and output.file_size_limit is None
        assert mounts_under(tmp_path / "out") == [str((tmp_path / "out").resolve())]
        assert list(output.path.iterdir()) == [] and output.over() is None
        (output.path / "small.bin").write_bytes(b"x" * 2**20)
        assert output.over() is None
        written = fill(output.path, 200)
        assert 8 <= written < 8 + 33  # the cap plus the file system's room, never the 200 MB asked
        assert output.over() == "wrote more than the output limit of 8 MB"
        # sparse: the host holds what was written, not the declared size
        image = tmp_path / "out.ext4"
        assert image.stat().st_blocks * 512 < (written + 8) * 2**20
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.ext4").exists()
    assert set(mounts_under(tmp_path)) == before


@as_root
def test_a_capped_folder_is_reused_emptied_for_its_own_submission_only(tmp_path):
    cap = 8 * 2**20
    first = outputfs.take(tmp_path, cap, owner=1)
    assert first.enforced_by == "ext4"
    deep = first.path / "d"
    deep.mkdir()
    (deep / "f.bin").write_bytes(os.urandom(2**20))
    (first.path / "locked").mkdir()
    (first.path / "locked" / "x").write_bytes(b"x")
    (first.path / "locked").chmod(0)
    os.symlink("/etc/passwd", first.path / "link")
    first.path.chmod(0o700)
    os.chown(first.path, 1234, 1234)
    outputfs.give_back(first)
    assert mounts_under(first.path)  # kept, mounted
    other = outputfs.take(tmp_path, cap, owner=2)
    assert other is not first and other.path != first.path  # never another submission's
    again = outputfs.take(tmp_path, cap, owner=1)
    assert again is first
    assert list(again.path.iterdir()) == [] and again.over() is None
    info = os.stat(again.path)
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o755, 0, 0)
    larger = outputfs.take(tmp_path, 2 * cap, owner=1)
    assert larger is not again  # another cap: another one
    larger.close()
    for folder in (again, other):
        outputfs.give_back(folder)
    outputfs.sweep(tmp_path)  # what a scheduler run does at its end
    assert list(tmp_path.iterdir()) == [] and not mounts_under(tmp_path)
    after = outputfs.take(tmp_path, cap, owner=1)  # the idle one was swept: a new one
    assert after is not first and after.path.is_dir() and list(after.path.iterdir()) == []
    after.close()
    outputfs.close_idle()
    assert not mounts_under(tmp_path)


@as_root
def test_the_first_folder_a_process_takes_removes_those_of_lost_workers(tmp_path, monkeypatch):
    monkeypatch.setattr(outputfs, "_swept", set())
    lost_pid = 4_194_303  # above any pid this machine hands out (pid_max)
    assert not Path(f"/proc/{lost_pid}").exists()
    lost = OutputFolder(tmp_path / f"outputfs-{lost_pid}-deadbeef", 8 * 2**20)
    lost.open()  # never closed: its worker was killed
    (lost.path / "left.bin").write_bytes(b"x")
    live = tmp_path / f"outputfs-{os.getpid()}-cafecafe"  # a live process's: kept
    live.mkdir()
    folder = outputfs.take(tmp_path, 8 * 2**20, owner=None)
    assert not lost.path.exists() and not (tmp_path / f"outputfs-{lost_pid}-deadbeef.ext4").exists()
    assert live.is_dir() and mounts_under(tmp_path) == [str(folder.path.resolve())]
    folder.close()


@as_root
def test_a_folder_that_cannot_be_emptied_back_is_removed_not_reused(tmp_path):
    folder = outputfs.take(tmp_path, 8 * 2**20, owner=1)
    subprocess.run(["umount", str(folder.path)], check=True)  # no longer its capped file system
    outputfs.give_back(folder)
    assert not folder.path.exists() and not (tmp_path / (folder.path.name + ".ext4")).exists()
    fresh = outputfs.take(tmp_path, 8 * 2**20, owner=1)
    assert fresh is not folder and mounts_under(fresh.path)
    fresh.close()
    assert not mounts_under(tmp_path)


def test_the_fallback_watches_by_walking_and_limits_file_size(tmp_path, monkeypatch):
    monkeypatch.setattr(outputfs, "loop_mount_available", lambda: False)
    with OutputFolder(tmp_path / "out", 2 * 2**20) as output:
        assert output.enforced_by == "walk" and output.file_size_limit == 2 * 2**20
        (output.path / "a").mkdir()
        (output.path / "a" / "one.bin").write_bytes(os.urandom(2**20))
        assert output.over() is None
        (output.path / "a" / "two.bin").write_bytes(os.urandom(2**20 + 8192))
        assert output.over() == "wrote more than the output limit of 2 MB"
    assert not (tmp_path / "out").exists()


@as_root
def test_removing_a_scratch_folder_unmounts_what_a_lost_worker_left_mounted(tmp_path):
    stale = tmp_path / "j7-abcdefgh"
    folder = OutputFolder(stale / "output", 4 * 2**20)
    folder.open()  # never closed: the worker died
    (folder.path / "x").mkdir()
    (folder.path / "x").chmod(0)
    assert mounts_under(stale)
    assert remove_tree(stale)
    assert not stale.exists() and not mounts_under(tmp_path)
    losetup = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert str(stale) not in losetup


def test_remove_tree_never_follows_links(tmp_path):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "precious.txt").write_text("keep me")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "link").symlink_to(keep)
    (scratch / "file-link").symlink_to(keep / "precious.txt")
    assert remove_tree(scratch)
    assert (keep / "precious.txt").read_text() == "keep me"
    assert stat.S_ISDIR(keep.stat().st_mode)
