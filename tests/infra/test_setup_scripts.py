"""The set-up scripts, run for real: the apt mirror lookup on the source layouts a fresh machine
may have, the base image built from nothing into a private podman storage, and failing steps
that say which step and which command failed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
APT_MIRROR = REPO / "infra" / "apt-mirror.sh"
BUILD_IMAGES = REPO / "infra" / "build-images.sh"

DEB822_DEBIAN = """\
Types: deb
# a comment with URIs: http://commented.example/debian
URIs: http://mirror.example.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

# Ubuntu lists the security archive in the same file; here it comes first
DEB822_UBUNTU_SECURITY_FIRST = """\
Types: deb
URIs: http://security.ubuntu.com/ubuntu/
Suites: noble-security
Components: main restricted universe multiverse
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg

Types: deb
URIs: http://archive.ubuntu.com/ubuntu/
Suites: noble noble-updates noble-backports
Components: main restricted universe multiverse
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg
"""

ONE_LINE = """\
# deb http://commented.example/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://ftp.example.net/debian/ bookworm main
deb http://security.debian.org/debian-security bookworm-security main
"""


def run(args, env=None, cwd=REPO, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)


def apt_mirror(sources_dir: Path) -> subprocess.CompletedProcess:
    return run(["bash", APT_MIRROR], env={**os.environ, "APT_SOURCES_DIR": str(sources_dir)})


def sources_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "apt"
    (root / "sources.list.d").mkdir(parents=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(
    ("files", "mirror"),
    [
        ({"sources.list.d/debian.sources": DEB822_DEBIAN}, "http://mirror.example.org/debian"),
        ({"sources.list.d/ubuntu.sources": DEB822_UBUNTU_SECURITY_FIRST}, "http://archive.ubuntu.com/ubuntu"),
        ({"sources.list": ONE_LINE}, "http://ftp.example.net/debian"),
        ({"sources.list.d/mirror.list": ONE_LINE}, "http://ftp.example.net/debian"),
    ],
    ids=["deb822-only", "deb822-security-first", "one-line-only", "one-line-in-sources.list.d"],
)
def test_apt_mirror_reads_each_source_layout(tmp_path, files, mirror):
    result = apt_mirror(sources_dir(tmp_path, files))
    assert result.returncode == 0, result.stderr
    assert result.stdout == mirror + "\n"


def test_apt_mirror_without_sources_says_so_in_one_line(tmp_path):
    root = sources_dir(tmp_path, {"sources.list.d/notes.txt": "not a source file\n"})
    result = apt_mirror(root)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"medarena: no apt mirror found (read: no sources files in {root})\n"


def test_apt_mirror_with_only_security_sources_names_the_files_it_read(tmp_path):
    security_only = "deb http://security.debian.org/debian-security bookworm-security main\n"
    root = sources_dir(tmp_path, {"sources.list": security_only})
    result = apt_mirror(root)
    assert result.returncode == 1
    assert result.stderr == f"medarena: no apt mirror found (read: {root}/sources.list)\n"


def test_a_run_that_collects_no_tests_fails(tmp_path):
    (tmp_path / "empty").mkdir()
    run_tests = REPO / "infra" / "run-tests.sh"
    result = run(["bash", run_tests, sys.executable, tmp_path / "empty", "-p", "no:cacheprovider"], cwd=tmp_path)
    assert result.returncode == 1
    assert "medarena: pytest collected no tests" in result.stderr


def test_a_failing_venv_step_names_the_step_and_the_command(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    venv = blocker / "venv"  # under a regular file: python3 -m venv cannot create it
    result = run(["bash", REPO / "infra" / "setup-venv.sh", venv])
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"medarena: set-up step failed: creating the virtualenv {venv} (exit ")
    assert lines[1] == f"medarena: command: python3 -m venv {venv}"
    assert any("Not a directory" in line for line in lines[2:]), result.stderr


# --- the base image, built from nothing ---------------------------------------------------------

needs_root_podman = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("podman") or not shutil.which("debootstrap", path="/usr/sbin:/usr/bin"),
    reason="the base image build needs root, podman and debootstrap (infra/install-system.sh installs them)",
)


@pytest.fixture
def private_podman(tmp_path):
    """An environment whose podman sees only a new, empty storage under tmp_path (and its own
    run-time folder), so that no image built earlier on this machine can help. Reset afterwards."""
    storage = tmp_path / "storage"
    storage.mkdir()
    # inside a container whose root is an overlay, podman's overlay driver cannot stack on it
    on_overlay = run(["stat", "-f", "-c", "%T", storage]).stdout.strip() == "overlayfs"
    driver = "vfs" if on_overlay else "overlay"
    conf = tmp_path / "storage.conf"
    conf.write_text(f'[storage]\ndriver = "{driver}"\ngraphroot = "{storage}/graph"\nrunroot = "{storage}/run"\n')
    containers_conf = tmp_path / "containers.conf"
    repo_conf = (REPO / "infra" / "containers.conf").read_text()
    containers_conf.write_text(repo_conf.replace("[engine]", f'[engine]\ntmp_dir = "{storage}/libpod-tmp"', 1))
    env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(conf), "CONTAINERS_CONF": str(containers_conf),
           "TMPDIR": str(tmp_path)}
    yield env
    subprocess.run(["podman", "system", "reset", "--force"], env=env, capture_output=True, timeout=300)
    subprocess.run(["umount", "--recursive", "--lazy", str(storage)], capture_output=True)
    shutil.rmtree(storage, ignore_errors=True)


def podman(env, *args, timeout=120) -> subprocess.CompletedProcess:
    return run(["podman", *args], env=env, timeout=timeout)


@needs_root_podman
@pytest.mark.slow
@pytest.mark.podman
@pytest.mark.timeout(900)
def test_base_image_builds_from_nothing_and_runs_numpy(private_podman):
    image = "localhost/medarena-base:latest"
    assert podman(private_podman, "images", "--quiet").stdout == "", "the private storage is not empty"
    assert podman(private_podman, "image", "exists", image).returncode == 1

    result = run(["bash", BUILD_IMAGES, "--base-only"], env=private_podman, timeout=840)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"medarena: building {image}" in result.stdout

    # only the base image: the example algorithms are left to a full build
    assert podman(private_podman, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split() == [image]
    probe = "import numpy, sys; print(sys.version_info[0], int(numpy.arange(5).sum()))"
    ran = podman(private_podman, "run", "--rm", "--network=none", image, "python3", "-c", probe)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "3 10\n"

    # a second build finds the image and does nothing
    again = run(["bash", BUILD_IMAGES, "--base-only"], env=private_podman)
    assert again.returncode == 0, again.stderr
    assert again.stdout == ""


@needs_root_podman
@pytest.mark.podman
@pytest.mark.timeout(300)
def test_a_failing_debootstrap_names_the_step_and_the_command(private_podman, tmp_path):
    # a mirror nothing listens on (port 9, discard): debootstrap fails at once
    bogus = "http://127.0.0.1:9/debian"
    root = sources_dir(tmp_path, {"sources.list.d/debian.sources": DEB822_DEBIAN.replace(
        "http://mirror.example.org/debian", bogus)})
    image = "localhost/medarena-base-unreachable:latest"
    env = {**private_podman, "APT_SOURCES_DIR": str(root), "MEDARENA_BASE_IMAGE": image}
    result = run(["bash", BUILD_IMAGES, "--base-only"], env=env, timeout=240)
    assert result.returncode != 0
    suite = subprocess.run(["bash", "-c", ". /etc/os-release && echo $VERSION_CODENAME"], capture_output=True,
                           text=True).stdout.strip()
    lines = result.stderr.splitlines()
    # a mirror may drop a connection: two more tries, each said, then the failure with its command
    assert lines[:2] == [f"medarena: debootstrap of {suite} failed (attempt {n} of 3); trying again" for n in (1, 2)]
    lines = lines[2:]
    assert lines[0].startswith(f"medarena: set-up step failed: debootstrap of {suite} (exit ")
    rootfs = rf"{re.escape(str(tmp_path))}/tmp\.\w+"
    command = (rf"medarena: command: debootstrap --variant=minbase --components=main "
               rf"--include=python3-minimal,python3-numpy {suite} {rootfs} {re.escape(bogus)}")
    assert re.fullmatch(command, lines[1]), lines[1]
    assert any(line.startswith("  | ") for line in lines[2:]), "the tail of debootstrap's output is missing"
    assert podman(private_podman, "image", "exists", image).returncode == 1
