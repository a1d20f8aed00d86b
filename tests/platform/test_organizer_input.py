"""Malformed organizer input, table by table, through the real command line: each is refused with
exit code 1 and exactly one line on stderr naming the file, field or case and the rule, and the
database and the store are exactly as they were."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import yaml
from sqlalchemy import MetaData, create_engine, select
from typer.testing import CliRunner

from medarena.cli import app
from medarena.platform import organizer
from medarena.platform.database import session_scope
from medarena.platform.settings import load_settings
from medarena.platform.submissions import create_submission
from tests.platform.challenge_data import cube_case, definition, to_sitk, write_definition, write_source

runner = CliRunner()


@dataclass(frozen=True)
class Bad:
    """One malformed input: ``make(tmp)`` writes it and returns the CLI arguments and the paths
    that the expected line names (``{0}``, ``{1}``...)."""

    make: Callable[[Path], tuple[list[str], list[Path]]]
    line: str


# ---------------------------------------------------------------- challenge definitions

def yaml_file(tmp: Path, text: str, name: str = "challenge.yaml") -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def create(**overrides) -> Callable[[Path], tuple[list[str], list[Path]]]:
    """`challenge create` of the toy definition (an update of the stored one) with fields changed."""
    def make(tmp: Path):
        path = write_definition(tmp / "challenge.yaml", **overrides)
        return ["challenge", "create", str(path)], [path]
    return make


def create_text(text: str) -> Callable[[Path], tuple[list[str], list[Path]]]:
    def make(tmp: Path):
        path = yaml_file(tmp, text)
        return ["challenge", "create", str(path)], [path]
    return make


def interface(**sides) -> dict:
    return {**definition()["interface"], **sides}


SCAN = {"slug": "scan", "kind": "image", "relative_path": "images/scan"}
SEG = {"slug": "segmentation", "kind": "segmentation", "relative_path": "images/segmentation"}


def make_fifo(tmp: Path):
    path = tmp / "challenge.yaml"
    os.mkfifo(path)
    return ["challenge", "create", str(path)], [path]


def make_huge(tmp: Path):
    path = tmp / "challenge.yaml"
    path.write_text(yaml.safe_dump(definition()) + "#" * 80 + "\n" + ("#" * 1023 + "\n") * 1024)
    return ["challenge", "create", str(path)], [path]


def make_latin1(tmp: Path):
    path = tmp / "challenge.yaml"
    path.write_bytes(b"title: \xff\n")
    return ["challenge", "create", str(path)], [path]


LAUGHS = "\n".join([
    "slug: toy", "title: Laughs",
    "a: &a [x, x, x, x, x, x, x, x, x, x]",
    "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]",
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]",
    "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]",
    "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]", ""])

DEFINITIONS = {
    "duplicate input socket slug": Bad(
        create(interface=interface(inputs=[SCAN, {**SCAN, "relative_path": "images/other"}])),
        "{0}: interface.inputs.1.slug: 'scan' is already the slug of interface.inputs.0; socket slugs must be "
        "unique across inputs and references (they name the ingest source folders)"),
    "reference named like an input": Bad(
        create(interface=interface(references=[{**SEG, "slug": "scan", "same_grid_as": "scan"}]),
               evaluation={"task": "segmentation", "reference": {"mask": "scan"}}),
        "{0}: interface.references.0.slug: 'scan' is already the slug of interface.inputs.0; socket slugs must "
        "be unique across inputs and references (they name the ingest source folders)"),
    "duplicate output socket slug": Bad(
        create(interface=interface(outputs=[SEG, {**SEG, "relative_path": "images/seg2"}])),
        "{0}: interface.outputs.1.slug: 'segmentation' is already the slug of interface.outputs.0; socket "
        "slugs must be unique"),
    "nested input paths": Bad(
        create(interface=interface(inputs=[SCAN, {**SCAN, "slug": "prior", "relative_path": "images/scan/prior"}])),
        "{0}: interface.inputs.1.relative_path: 'images/scan/prior' is the same as or overlaps 'images/scan' of "
        "interface.inputs.0; each socket needs its own path"),
    "hidden part in a relative path": Bad(
        create(interface=interface(outputs=[{**SEG, "relative_path": "images/.seg"}])),
        "{0}: interface.outputs.0.relative_path: 'images/.seg' has the part '.seg'; each part must be letters, "
        "digits, '-', '_' or '.', not starting with '.'"),
    "escape sequence in a relative path": Bad(
        create(interface=interface(outputs=[{**SEG, "relative_path": "images/seg\x1b[2J"}])),
        "{0}: interface.outputs.0.relative_path: 'images/seg\\x1b[2J' has the part 'seg\\x1b[2J'; each part must "
        "be letters, digits, '-', '_' or '.', not starting with '.'"),
    "relative path leaving the mount": Bad(
        create(interface=interface(inputs=[{**SCAN, "relative_path": "../scan"}])),
        "{0}: interface.inputs.0.relative_path: relative_path '../scan' must be a relative path without '..'"),
    "unknown evaluation role": Bad(
        create(evaluation={"task": "segmentation", "reference": {"labels": "segmentation"}}),
        "{0}: evaluation.reference.labels: the segmentation task has no reference role 'labels'; its roles: mask"),
    "ranking on an undeclared label": Bad(
        create(ranking={"metrics": [{"metric": "dice", "label": "tumour"}]}),
        "{0}: ranking.metrics.0.label: 'tumour' is not among the labels of evaluation.settings.labels (fg)"),
    "ranking on a metric not computed": Bad(
        create(ranking={"metrics": [{"metric": "nsd@2", "label": "fg"}]}),
        "{0}: ranking.metrics.0: 'nsd@2' is not among the metrics the evaluation computes (dice, hd95)"),
    "ranking bootstrap unbounded": Bad(
        create(ranking={"metrics": [{"metric": "dice"}], "bootstrap": 10**9}),
        "{0}: ranking.bootstrap: at most 100000 resamples"),
    "memory limit too large": Bad(
        create(limits={"memory_mb": 10**8}),
        "{0}: limits.memory_mb: 100000000 is more than the largest allowed, 1048576"),
    "zero CPUs": Bad(
        create(limits={"cpus": 0}),
        "{0}: limits.cpus: Input should be greater than 0"),
    "phase closes before it opens": Bad(
        create(phases=[{"slug": "test", "opens": "2021-01-02T00:00:00Z", "closes": "2021-01-01T00:00:00Z"}]),
        "{0}: phases.0: closes must be later than opens"),
    "duplicate phase slug": Bad(
        create(phases=[{"slug": "test"}, {"slug": "live"}, {"slug": "test"}]),
        "{0}: phases.2.slug: 'test' is already the slug of phases.0; phase slugs must be unique"),
    "submission limit unbounded": Bad(
        create(phases=[{"slug": "test", "submission_limit": 10**6}]),
        "{0}: phases.0.submission_limit: at most 10000 (0 means no limit)"),
    "blank title": Bad(create(title="   "), "{0}: title: the title must not be empty or only spaces"),
    "title with an escape sequence": Bad(
        create(title="Toy \x1b]0;owned\x07"),
        "{0}: title: the title must be one line of printable characters; found '\\x1b'"),
    "phase title with a bidi override": Bad(
        create(phases=[{"slug": "test", "title": "Final \u202etset"}]),
        "{0}: phases.0.title: the title must be one line of printable characters; found '\\u202e'"),
    "description with a control character": Bad(
        create(description="About\x08 this"),
        "{0}: description: the description must be printable text (line breaks and tabs allowed); found '\\x08'"),
    "unknown field": Bad(create(scoring={"task": "segmentation"}), "{0}: scoring: Extra inputs are not permitted"),
    "challenge slug with markup": Bad(
        create(slug="[bold]toy"), "{0}: slug: String should match pattern '^[a-z0-9][a-z0-9_-]{{0,63}}$'"),
    "key given twice": Bad(
        create_text("slug: toy\ntitle: A\ntitle: B\n"),
        "{0}: not valid YAML (line 3): the key 'title' appears twice in one mapping"),
    "nested too deeply": Bad(
        create_text("slug: toy\nextra: " + "[" * 25 + "]" * 25 + "\n"),
        "{0}: line 2: nested more than 20 levels deep"),
    "aliases expanding to millions": Bad(
        create_text(LAUGHS), "{0}: more than 10000 values once aliases are expanded"),
    "larger than a megabyte": Bad(make_huge, "{0}: larger than 1048576 bytes, the most a definition may be"),
    "a FIFO instead of a file": Bad(make_fifo, "{0}: not a regular file"),
    "not UTF-8": Bad(make_latin1, "{0}: not UTF-8 text (byte 7)"),
}


# ---------------------------------------------------------------- ingest sources

def ingest(damage: Callable[[Path], list[Path]]) -> Callable[[Path], tuple[list[str], list[Path]]]:
    """`data ingest` of three new cases (case0 and case1 with other voxels than those stored),
    damaged by ``damage``, which returns the paths the message names."""
    def make(tmp: Path):
        source = tmp / "source"
        for folder in ("scan", "segmentation"):
            (source / folder).mkdir(parents=True)
        for i in range(3):
            write_case(source, f"case{i}", seed=10 + i)
        return ["data", "ingest", str(source), "-c", "toy", "-p", "test"], [source, *damage(source)]
    return make


def write_case(source: Path, name: str, seed: int = 0, mask: np.ndarray | None = None) -> None:
    scan, reference = cube_case(seed)
    sitk.WriteImage(to_sitk(scan), str(source / "scan" / f"{name}.nii.gz"))
    sitk.WriteImage(to_sitk(reference if mask is None else mask), str(source / "segmentation" / f"{name}.nii.gz"))


def rename_case(old: str, new: str) -> Callable[[Path], list[Path]]:
    def damage(source: Path) -> list[Path]:
        for folder in ("scan", "segmentation"):
            (source / folder / f"{old}.nii.gz").rename(source / folder / f"{new}.nii.gz")
        return [source / "scan"]
    return damage


def float_mask(value: float, suffix: str = ".nii.gz") -> Callable[[Path], list[Path]]:
    """case2's reference as float32 holding ``value`` (MetaImage keeps NaN; ITK reads NaN in NIfTI as 0)."""
    def damage(source: Path) -> list[Path]:
        mask = np.zeros((12, 24, 24), np.float32)
        mask[4:8, 5:10, 6:12] = value
        path = source / "segmentation" / f"case2{suffix}"
        (source / "segmentation" / "case2.nii.gz").unlink()
        sitk.WriteImage(to_sitk(mask), str(path))
        return [path]
    return damage


def extra_entry(make: Callable[[Path], None], name: str) -> Callable[[Path], list[Path]]:
    def damage(source: Path) -> list[Path]:
        make(source / "scan" / name)
        return [source / "scan" / name]
    return damage


def upper_case_twin(source: Path) -> list[Path]:
    write_case(source, "Case1", seed=5)
    return []


SOURCES = {
    "case name with a newline": Bad(
        ingest(rename_case("case1", "case\n1")),
        "{1}: 'case\\n1.nii.gz': the case name 'case\\n1' is not allowed: use only letters, digits, '-', '_' "
        "and '.', not starting with '.'"),
    "case name with an escape sequence": Bad(
        ingest(rename_case("case2", "case\x1b[31m2")),
        "{1}: 'case\\x1b[31m2.nii.gz': the case name 'case\\x1b[31m2' is not allowed: use only letters, digits, "
        "'-', '_' and '.', not starting with '.'"),
    "case name with markup": Bad(
        ingest(rename_case("case0", "[red]case0")),
        "{1}: '[red]case0.nii.gz': the case name '[red]case0' is not allowed: use only letters, digits, '-', "
        "'_' and '.', not starting with '.'"),
    "case name of 129 characters": Bad(
        ingest(rename_case("case0", "c" * 129)),
        "{1}: '" + "c" * 129 + ".nii.gz': the case name has 129 characters; at most 128 are allowed"),
    "case names differing in letter case": Bad(
        ingest(upper_case_twin), "{0}: case names 'Case1' and 'case1' differ only in letter case"),
    "reference label map with 0.5": Bad(
        ingest(float_mask(0.5)),
        "{1}: a label map must hold integers; found float32 value 0.5"),
    "reference label map with NaN": Bad(
        ingest(float_mask(float("nan"), ".mha")), "{1}: a label map must hold integers; found nan"),
    "a text file among the images": Bad(
        ingest(extra_entry(lambda p: p.write_text("notes"), "case1.txt")),
        "{1}: not a file the image socket 'scan' takes (.nii.gz, .nii, .mha, .mhd, .nrrd, .nhdr, .png, .tif, "
        ".tiff, .jpg, .jpeg, .bmp, .dcm, or a DICOM folder)"),
    "a FIFO among the images": Bad(
        ingest(extra_entry(os.mkfifo, "case3.nii.gz")), "{1}: not a regular file or folder"),
}


# ---------------------------------------------------------------- submissions

def submit(participant: str = "bob", comment: str = "", challenge: str = "toy", phase: str = "test"):
    def make(tmp: Path):
        return ["submit", str(tmp / "algorithm.tar"), "-c", challenge, "-p", phase, "-u", participant,
                "--comment", comment], []
    return make


SUBMISSIONS = {
    "empty participant name": Bad(submit(""), "participant: the name must not be empty or only spaces"),
    "participant name of spaces": Bad(submit("   "), "participant: the name must not be empty or only spaces"),
    "participant name with a tab": Bad(
        submit("bob\tsmith"), "participant 'bob\\tsmith': the name must be printable characters; found '\\t'"),
    "participant name with an escape sequence": Bad(
        submit("\x1b[2Jbob"), "participant '\\x1b[2Jbob': the name must be printable characters; found '\\x1b'"),
    "participant name with a newline": Bad(
        submit("bob\nerror: forged"),
        "participant 'bob\\nerror: forged': the name must be printable characters; found '\\n'"),
    "participant name with a bidi override": Bad(
        submit("bob\u202eecila"), "participant 'bob\\u202eecila': the name must be printable characters; "
                                  "found '\\u202e'"),
    "participant name with a zero-width space": Bad(
        submit("b\u200bob"), "participant 'b\\u200bob': the name must be printable characters; found '\\u200b'"),
    "participant name with a trailing space": Bad(
        submit("bob "), "participant 'bob ': the name must not start or end with a space"),
    "participant name of 65 characters": Bad(
        submit("b" * 65), "participant: the name has 65 characters; at most 64 are allowed"),
    "comment with an escape sequence": Bad(
        submit(comment="v2 \x1b[8m"),
        "comment: must be printable text (line breaks and tabs allowed); found '\\x1b'"),
    "comment of 1001 characters": Bad(submit(comment="x" * 1001), "comment: 1001 characters; at most 1000 are allowed"),
    "unknown phase": Bad(submit(phase="final"), "challenge 'toy' has no phase 'final'; phases: test"),
    "unknown challenge": Bad(
        submit(challenge="[bold]nope"),
        "no challenge '[bold]nope'; create it with `medarena challenge create`"),
}

TABLE = {**DEFINITIONS, **SOURCES, **SUBMISSIONS}


# ---------------------------------------------------------------- the state that must not change

@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding the toy challenge, two ingested cases and one (cancelled) submission."""
    root = tmp_path_factory.mktemp("organizer-input")
    home, work = root / "home", root / "work"
    work.mkdir()
    previous = os.environ.get("MEDARENA_HOME")
    os.environ["MEDARENA_HOME"] = str(home)
    try:
        settings = load_settings()
        organizer.create_challenge(settings, write_definition(work / "toy.yaml"))
        organizer.ingest_phase(settings, "toy", "test", write_source(work / "source", n=2))
        with session_scope(settings.database_url) as session:
            submission = create_submission(session, "toy", "test", "alice", "algorithm.tar", "sha256:" + "0" * 64)
            submission.state = "cancelled"  # a finished submission: the phase takes new data
    finally:
        if previous is None:
            del os.environ["MEDARENA_HOME"]
        else:
            os.environ["MEDARENA_HOME"] = previous
    return home


def database_dump(home: Path) -> dict[str, list[tuple]]:
    engine = create_engine(f"sqlite:///{home / 'medarena.db'}")
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            return {name: sorted(map(repr, connection.execute(select(table)).all()))
                    for name, table in sorted(metadata.tables.items())}
    finally:
        engine.dispose()


def folder_listing(home: Path) -> dict[str, str]:
    """Every path under the data root but the database files, with a digest of each file."""
    listing = {}
    for path in sorted(home.rglob("*")):
        relative = str(path.relative_to(home))
        if relative.startswith("medarena.db"):
            continue
        listing[relative] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
    return listing


@pytest.mark.parametrize("bad", TABLE.values(), ids=TABLE.keys())
def test_refused_in_one_line_and_nothing_changes(template: Path, tmp_path: Path, bad: Bad) -> None:
    home = tmp_path / "home"
    shutil.copytree(template, home)
    work = tmp_path / "work"
    work.mkdir()
    args, paths = bad.make(work)
    tables, files = database_dump(home), folder_listing(home)
    assert tables["cases"] and tables["submissions"] and any(p.startswith("store/") for p in files)

    result = runner.invoke(app, args, env={"MEDARENA_HOME": str(home), "COLUMNS": "80"})

    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    assert result.stdout == ""
    assert result.stderr == "error: " + bad.line.format(*paths) + "\n"
    assert database_dump(home) == tables
    assert folder_listing(home) == files


def test_the_table_is_large_enough() -> None:
    assert len(DEFINITIONS) >= 20 and len(SOURCES) >= 8 and len(SUBMISSIONS) >= 10


def test_a_float_label_map_of_whole_numbers_is_stored_as_integers(template: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented choice: float label maps holding only whole numbers (as some tools write
    them) are stored in the smallest integer type that holds their values."""
    import zarr

    home = tmp_path / "home"
    shutil.copytree(template, home)
    monkeypatch.setenv("MEDARENA_HOME", str(home))
    source = tmp_path / "source"
    for folder in ("scan", "segmentation"):
        (source / folder).mkdir(parents=True)
    mask = np.zeros((12, 24, 24), np.float64)
    mask[2:5, 3:9, 4:8], mask[6:9, 10:20, 4:8] = 2.0, 300.0
    write_case(source, "case7", seed=7, mask=mask)
    result = runner.invoke(app, ["data", "ingest", str(source), "-c", "toy", "-p", "test"])
    assert result.exit_code == 0, result.stderr
    stored = zarr.open_group(str(home / "store" / "references" / "toy" / "test.zarr"), mode="r")["case7"]
    assert stored["segmentation"].dtype == np.uint16
    np.testing.assert_array_equal(stored["segmentation"][...], mask.astype(np.uint16))


def test_a_failed_first_ingest_leaves_no_folders(template: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The staging stores of a phase's first ingest are made in folders that did not exist yet;
    a refused case late in the source removes them too."""
    home = tmp_path / "home"
    shutil.copytree(template, home)
    monkeypatch.setenv("MEDARENA_HOME", str(home))
    organizer.create_challenge(load_settings(), write_definition(tmp_path / "other.yaml", slug="other"))
    args, paths = ingest(float_mask(0.5))(tmp_path)
    args[args.index("toy")] = "other"
    tables, files = database_dump(home), folder_listing(home)
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.stderr == f"error: {paths[1]}: a label map must hold integers; found float32 value 0.5\n"
    assert database_dump(home) == tables
    assert folder_listing(home) == files
    assert not (home / "store" / "inputs" / "other").exists()
