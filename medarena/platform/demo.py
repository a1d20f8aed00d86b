"""The demo challenges, one per task family: create one, ingest its synthetic test set, submit the
example algorithms of submissions/, and print the leaderboard once they ran.

The segmentation demo has synthetic CT-like volumes and one real brain MR; the test sets of the
other families are written by :mod:`medarena.platform.demo_data`.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from rich.console import Console
from rich.table import Table
from scipy import ndimage
from sqlalchemy import select

from medarena.display import plain
from medarena.platform import demo_data, organizer
from medarena.platform.challenges import DefinitionError
from medarena.platform.database import LeaderboardEntry, Submission, session_scope
from medarena.platform.settings import Settings
from medarena.platform.submissions import find_phase

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PHASE = "test"
IMAGE = "localhost/medarena-example-{}:latest"  # built from submissions/<name>/


@dataclass(frozen=True)
class Demo:
    """A demo challenge: its definition in examples/, its test set, and who submits what."""

    task: str
    write_source: Callable[[Path, int], Path]  # (folder, number of synthetic cases) -> folder
    cases: int  # synthetic cases by default
    algorithms: dict[str, str]  # participant -> example algorithm (a folder of submissions/)

    @property
    def challenge(self) -> str:
        return f"demo-{self.task}"

    @property
    def definition(self) -> Path:
        return EXAMPLES / f"{self.challenge}.yaml"


def synthetic_case(seed: int, shape=(40, 64, 64), spacing=(2.0, 0.8, 0.8)) -> tuple[sitk.Image, sitk.Image]:
    """A CT-like volume: an ellipsoid (about 180 HU) in soft tissue (about 40 HU) with noise."""
    rng = np.random.default_rng(seed)
    centre = np.array(shape) / 2 + rng.uniform(-4, 4, 3)
    radii = rng.uniform(0.22, 0.34, 3) * np.array(shape)
    grid = np.indices(shape, dtype=float)
    inside = sum(((grid[i] - centre[i]) / radii[i]) ** 2 for i in range(3)) <= 1
    scan = np.where(inside, 180.0, 40.0) + rng.normal(0, 25, shape)
    return _with_geometry(scan.astype(np.int16), spacing), _with_geometry(inside.astype(np.uint8), spacing)


def _with_geometry(array: np.ndarray, spacing) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in reversed(spacing)))
    image.SetOrigin((-25.6, -25.6, -40.0))
    return image


def real_case() -> tuple[sitk.Image, sitk.Image] | None:
    """nibabel's anatomical.nii (a brain MR that ships in its wheel) and a smoothed Otsu mask."""
    spec = importlib.util.find_spec("nibabel")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "tests" / "data" / "anatomical.nii"
    if not path.exists():
        return None
    scan = sitk.ReadImage(str(path))
    smooth = sitk.SmoothingRecursiveGaussian(sitk.Cast(scan, sitk.sitkFloat32), 2.0)
    mask = sitk.OtsuThreshold(smooth, 0, 1)
    array = ndimage.binary_fill_holes(sitk.GetArrayFromImage(mask).astype(bool)).astype(np.uint8)
    reference = sitk.GetImageFromArray(array)
    reference.CopyInformation(scan)
    return scan, reference


def write_segmentation_source(folder: Path, n_synthetic: int = 6) -> Path:
    """Write the segmentation demo's test set in the ingest layout: folder/<socket>/<case>.nii.gz."""
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "scan").mkdir(parents=True)
    (folder / "segmentation").mkdir()
    cases = {f"synthetic-{i:02d}": synthetic_case(i) for i in range(n_synthetic)}
    real = real_case()
    if real:
        cases["brain-mr"] = real
    for name, (scan, reference) in cases.items():
        sitk.WriteImage(scan, str(folder / "scan" / f"{name}.nii.gz"))
        sitk.WriteImage(reference, str(folder / "segmentation" / f"{name}.nii.gz"))
    return folder


DEMOS = {demo.task: demo for demo in (
    Demo("segmentation", write_segmentation_source, 6, {"alice": "threshold", "bob": "noop", "mallory": "misbehaving"}),
    Demo("detection", demo_data.write_detection_source, 6, {"alice": "blob-detector"}),
    Demo("classification", demo_data.write_classification_source, 6, {"alice": "blob-detector"}),
    Demo("registration", demo_data.write_registration_source, 4, {"alice": "landmark-translation"}),
    Demo("fusion", demo_data.write_fusion_source, 4, {"alice": "average-fusion"}),
)}


def get_demo(task: str) -> Demo:
    if task not in DEMOS:
        raise DefinitionError(f"no demo for the task {task!r}; demos: {', '.join(DEMOS)}")
    return DEMOS[task]


def prepare(settings: Settings, console: Console, task: str = "segmentation", cases: int | None = None) -> Demo:
    """Create the demo challenge of a task, ingest its data and submit the example algorithms
    (each once: running it again reuses what exists)."""
    demo = get_demo(task)
    if cases is not None and cases < 1:
        raise DefinitionError(f"--cases {cases}: a demo needs at least one case")
    organizer.create_challenge(settings, demo.definition)
    with session_scope(settings.database_url) as session:
        phase, _ = find_phase(session, demo.challenge, PHASE)
        has_cases = bool(phase.cases)
        submitted = {s.participant for s in phase.submissions}
    if not has_cases:
        source = demo.write_source(settings.home / "demo-source" / task, cases or demo.cases)
        n = organizer.ingest_phase(settings, demo.challenge, PHASE, source)
        console.print(f"ingested {n} demo cases")
    for participant, algorithm in demo.algorithms.items():
        if participant not in submitted:
            image = IMAGE.format(algorithm)
            submission_id, _ = organizer.submit(settings, demo.challenge, PHASE, participant, image,
                                                comment=f"example algorithm {image}")
            console.print(f"submitted {image} for {participant}: submission {submission_id}")
    return demo


def report(settings: Settings, console: Console, task: str = "segmentation") -> None:
    challenge = get_demo(task).challenge
    with session_scope(settings.database_url) as session:
        phase, _ = find_phase(session, challenge, PHASE)
        entries = session.scalars(select(LeaderboardEntry).where(LeaderboardEntry.phase_id == phase.id)
                                  .order_by(LeaderboardEntry.rank)).all()
        table = Table("rank", "participant", "submission", "rank interval", *(entries[0].columns if entries else []),
                      title=f"leaderboard {challenge}/{PHASE}")
        for entry in entries:
            sub = session.get(Submission, entry.submission_id)
            interval = (f"{entry.rank_low:g}-{entry.rank_high:g}" if entry.rank_low is not None else "")
            table.add_row(*map(plain, [str(entry.rank), sub.participant, str(sub.id), interval,
                                       *[f"{v:.4g}" if isinstance(v, float) else str(v)
                                         for v in entry.columns.values()]]))
    console.print(table)
