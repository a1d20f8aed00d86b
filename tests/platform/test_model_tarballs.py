"""Model tarballs: checked, stored by sha256, extracted once per node and mounted read-only at
/opt/ml/model for every case, through `try` and `submit`."""

from __future__ import annotations

import hashlib
import json
import tarfile

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from medarena.cli import app
from medarena.platform import casestore, organizer, scheduler
from medarena.platform.database import Submission, session_scope
from medarena.platform.tarballs import TarballError, check_tarball
from tests.platform import gc_phase

runner = CliRunner()


def entry(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, link
    return info


@pytest.mark.parametrize(("extra", "problem"), [
    ([entry("link", tarfile.SYMTYPE, link="/etc/passwd")], "entry 'link' is a link"),
    ([entry("hard", tarfile.LNKTYPE, link="weights.json")], "entry 'hard' is a link"),
    ([entry("../escape.txt", size=1)], "entry '../escape.txt' has a '..' in its path"),
    ([entry("/abs.txt", size=1)], "entry '/abs.txt' has an absolute path"),
    ([entry("dev", tarfile.CHRTYPE)], "entry 'dev' is not a regular file or folder"),
])
def test_a_tarball_with_links_escaping_paths_or_devices_is_refused(tmp_path, extra, problem):
    path = gc_phase.model_tarball(tmp_path / "model.tar.gz", 0.3, extra=extra)
    with pytest.raises(TarballError, match="model tarball .*model.tar.gz: ") as error:
        check_tarball(path, what="model tarball")
    assert problem in str(error.value)


def test_size_entry_and_unpacked_caps(tmp_path):
    path = gc_phase.model_tarball(tmp_path / "model.tar.gz", 0.3)
    assert check_tarball(path).entries == 2
    size = path.stat().st_size
    with pytest.raises(TarballError, match=f"{size} bytes, more than the {size - 1} accepted"):
        check_tarball(path, max_bytes=size - 1)
    with pytest.raises(TarballError, match="more than the 1 entries accepted"):
        check_tarball(path, max_entries=1)
    with pytest.raises(TarballError, match="unpacks to more than the 10 bytes accepted"):
        check_tarball(path, max_unpacked=10)


def test_not_a_tarball_is_refused(tmp_path):
    path = tmp_path / "model.tar.gz"
    path.write_bytes(b"\x1f\x8b this is not gzip")
    with pytest.raises(TarballError, match="not a readable tarball"):
        check_tarball(path)


def test_the_digest_is_the_sha256_of_the_file(tmp_path):
    path = gc_phase.model_tarball(tmp_path / "model.tar.gz", 0.3)
    assert check_tarball(path).digest == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def probe_phase(example_images, home, tmp_path):
    gc_phase.build_probe(example_images)
    organizer.create_challenge(home, gc_phase.definition(tmp_path))
    organizer.ingest_phase(home, "gcprobe", "test", gc_phase.write_cases(tmp_path / "source"))
    return home


@pytest.mark.podman
@pytest.mark.parametrize("bad", ["not-a-tarball", "link", "over-cap"])
def test_a_bad_model_records_and_stores_nothing(probe_phase, tmp_path, monkeypatch, bad):
    path = tmp_path / "model.tar.gz"
    if bad == "not-a-tarball":
        path.write_text("plain text")
    else:
        gc_phase.model_tarball(path, 0.3, extra=[entry("x", tarfile.SYMTYPE, link="/")] if bad == "link" else [])
    if bad == "over-cap":
        monkeypatch.setattr("medarena.platform.tarballs.MAX_TARBALL_BYTES", 100)
    for command in (["submit", gc_phase.PROBE, "-u", "ann"], ["try", gc_phase.PROBE]):
        result = runner.invoke(app, [*command, "-c", "gcprobe", "-p", "test", "--model", str(path)])
        assert result.exit_code == 1, result.output
        line = " ".join((result.stdout + result.stderr).split())
        assert f"phase gcprobe/test: model tarball {path}" in line
        assert {"not-a-tarball": "not a readable tarball", "link": "entry 'x' is a link",
                "over-cap": "more than the 100 accepted"}[bad] in line
    with session_scope(probe_phase.database_url) as session:
        assert session.scalar(select(func.count(Submission.id))) == 0
    assert not (probe_phase.home / "store" / "models").exists()


def report_of(settings, submission_id: int, case: str) -> tuple[float, dict]:
    url = scheduler.predictions_url(settings, "gcprobe", "test", submission_id)
    values = casestore.read_case(url, case)
    return values["probability"], values["report"]


@pytest.mark.podman
def test_try_mounts_a_model_tarball_or_folder_read_only(probe_phase, tmp_path):
    tarball = gc_phase.model_tarball(tmp_path / "model.tar.gz", 0.25)
    folder = tmp_path / "model-folder"
    folder.mkdir()
    (folder / "weights.json").write_text(json.dumps({"probability": 0.75}))
    for model in (tarball, folder):
        rows = organizer.try_image(probe_phase, gc_phase.PROBE, "gcprobe", "test", ["case0"], model=model)
        assert rows[0]["state"] == "succeeded", rows
    # the outputs themselves, through the same path `try` takes
    from medarena.platform import casejob

    definition = organizer.show_challenge(probe_phase, "gcprobe")
    definition.pop("cases")
    for fields, expected in (({"model_digest": check_tarball(tarball).digest, "model_url": str(tarball)}, 0.25),
                             ({"model_dir": str(folder)}, 0.75)):
        job = casejob.CaseJob(case="case0", image=gc_phase.PROBE, definition=definition,
                              inputs_url=scheduler.inputs_url(probe_phase, "gcprobe", "test"), references_url="",
                              predictions_url=None, scratch=str(probe_phase.scratch), **fields)
        outcome = casejob.run_algorithm(job)
        assert outcome.predictions["probability"] == expected
        report = outcome.predictions["report"]
        assert report["writable"]["/opt/ml/model"] is False
        assert "weights.json" in report["model_files"]


@pytest.mark.podman
def test_submit_with_models_stores_each_once_and_every_case_sees_its_own(probe_phase, tmp_path, ray_cluster):
    one = gc_phase.model_tarball(tmp_path / "one.tar.gz", 1.0)
    two = gc_phase.model_tarball(tmp_path / "two.tar.gz", 0.0)
    ids = []
    for model in (one, two, one):
        result = runner.invoke(app, ["submit", gc_phase.PROBE, "-c", "gcprobe", "-p", "test", "-u", "ann",
                                     "--model", str(model)])
        assert result.exit_code == 0, result.output
        ids.append(int(result.output.split()[1]))
    digests = {path: "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest() for path in (one, two)}
    stored = sorted(p.name for p in (probe_phase.home / "store" / "models").iterdir())
    assert stored == sorted(f"{d.removeprefix('sha256:')}.tar.gz" for d in digests.values())  # one copy each
    scheduler.run(probe_phase, ids[:2])
    for sid, model in zip(ids[:2], (one, two), strict=True):
        data = organizer.submission_results(probe_phase, sid)
        assert data["model_digest"] == digests[model]
        assert [c["state"] for c in data["cases"]] == ["succeeded"] * 3
        for case in gc_phase.CASES:
            probability, report = report_of(probe_phase, sid, case)
            assert probability == {one: 1.0, two: 0.0}[model]
            assert report["model_files"] == ["sub", "sub/readme.txt", "weights.json"]
            assert report["writable"]["/opt/ml/model"] is False
    # extracted once per node, keyed by digest
    cache = sorted(p.name for p in (probe_phase.scratch / "models").iterdir() if p.is_dir())
    assert cache == sorted(d.removeprefix("sha256:") for d in digests.values())
    status = {row[0]: row for row in organizer.submission_status(probe_phase, "gcprobe")}  # what `status` prints
    assert [status[sid][-1] for sid in ids] == [digests[one][:19], digests[two][:19], digests[one][:19]]
    results = runner.invoke(app, ["results", str(ids[1])])
    assert f"model {digests[two]}" in " ".join(results.output.split())
