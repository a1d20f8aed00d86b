"""What the command line asks of the platform, one function per action."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select

from medarena.platform import casejob, casestore, compute, layout, leaderboard, objectstore
from medarena.platform.challenges import ChallengeDefinition, DefinitionError, load_definition
from medarena.platform.containers import get_backend
from medarena.platform.database import Case, Challenge, Phase, Submission, session_scope
from medarena.platform.errors import NotFound
from medarena.platform.ingest import IngestError, ingest
from medarena.platform.settings import Settings
from medarena.platform.states import ENDED_SUBMISSION, UNFINISHED, JobState
from medarena.platform.submissions import check_comment, check_participant, create_submission, find_phase
from medarena.platform.tarballs import Tarball, TarballError, check_tarball, pack_folder, store_tarball


def create_challenge(settings: Settings, path: Path) -> tuple[str, bool]:
    """Store a validated definition; an existing challenge with the slug is updated. An evaluation
    container's image is pinned and its ground truth checked and stored first."""
    definition = load_definition(path)
    if definition.evaluation.container is not None:
        pin_evaluation_container(settings, definition, Path(path))
    with session_scope(settings.database_url) as session:
        _, created = store_definition(session, definition, str(Path(path).absolute()))
    return definition.slug, created


def store_definition(session, definition: ChallengeDefinition, source: str) -> tuple[Challenge, bool]:
    """Create or update a challenge from a validated definition, in the caller's transaction."""
    challenge = session.scalar(select(Challenge).where(Challenge.slug == definition.slug))
    created = challenge is None
    if created:
        challenge = Challenge(slug=definition.slug, definition={})
        session.add(challenge)
    else:
        _check_compatible(challenge, definition, source)
    challenge.title, challenge.description = definition.title, definition.description
    new = definition.model_dump(mode="json")
    # a new recipe, or new leaderboard columns of an evaluation container, re-rank from what is stored
    rerank_needed = not created and (challenge.definition.get("ranking") != new["ranking"] or (
        new["evaluation"]["container"] and challenge.definition["evaluation"] != new["evaluation"]))
    challenge.definition = new
    challenge.source_path = source
    have = {p.slug: p for p in challenge.phases}
    for phase in definition.phases:
        if phase.slug in have:
            have[phase.slug].title = phase.title
        else:
            challenge.phases.append(Phase(slug=phase.slug, title=phase.title))
    if rerank_needed:  # a new recipe re-ranks from stored metrics; nothing runs again
        session.flush()
        for phase in challenge.phases:
            leaderboard.rank_phase(session, phase)
    session.flush()
    return challenge, created


def pin_evaluation_container(settings: Settings, definition: ChallengeDefinition, path: Path) -> None:
    """Load and pin the evaluation image; check the ground truth (a folder or tarball, relative to
    the definition file) and store it with the references, named by its sha256."""
    import tempfile

    container = definition.evaluation.container
    where = f"{path}: evaluation.container"
    image = Path(container.image)
    if not image.is_absolute() and (path.parent / image).exists():
        image = path.parent / image
    backend = get_backend(settings.container_backend)
    ref = backend.load_image(image if image.exists() else container.image)
    container.image_digest = ref.digest
    if settings.ray_address:
        archive = layout.image_archive_url(settings, ref.digest)
        if not casestore.exists(archive):
            backend.save_image(ref.digest, archive)
    if container.ground_truth is None:
        container.ground_truth_digest = None
        return
    source = Path(container.ground_truth)
    source = source if source.is_absolute() else path.parent / source
    with tempfile.TemporaryDirectory(prefix="medarena-gt-") as folder:
        try:
            if source.is_dir():
                source = pack_folder(source, Path(folder) / "ground-truth.tar.gz", what="ground truth folder")
            tarball = check_tarball(source, what="ground truth")
        except TarballError as exc:
            raise DefinitionError(f"{where}.ground_truth: {exc}") from None
        store_tarball(tarball, layout.ground_truth_url(settings, definition.slug, tarball.digest))
    container.ground_truth_digest = tarball.digest


def _check_compatible(challenge: Challenge, definition: ChallengeDefinition, path: Path) -> None:
    old = ChallengeDefinition.model_validate(challenge.definition)
    kept = {p.slug for p in definition.phases}
    for phase in challenge.phases:
        if phase.slug not in kept and (phase.cases or phase.submissions):
            raise DefinitionError(f"{path}: phases: phase {phase.slug!r} has data and cannot be removed")
    if old.interface != definition.interface and any(p.cases for p in challenge.phases):
        raise DefinitionError(f"{path}: interface: cannot change the sockets of a challenge with ingested data")


def list_challenges(settings: Settings) -> list[tuple]:
    with session_scope(settings.database_url) as session:
        return [(c.slug, c.title, c.definition["evaluation"].get("task") or "evaluation container",
                 ", ".join(p.slug for p in c.phases),
                 sum(len(p.cases) for p in c.phases))
                for c in session.scalars(select(Challenge).order_by(Challenge.slug))]


def show_challenge(settings: Settings, slug: str) -> dict[str, Any]:
    with session_scope(settings.database_url) as session:
        challenge = session.scalar(select(Challenge).where(Challenge.slug == slug))
        if challenge is None:
            raise NotFound(f"no challenge {slug!r}")
        data = dict(challenge.definition)
        data["cases"] = {p.slug: [c.name for c in p.cases] for p in challenge.phases}
        return data


def ingest_phase(settings: Settings, challenge: str, phase: str, source: Path,
                 progress: Callable[[str], None] | None = None) -> int:
    with session_scope(settings.database_url) as session:
        phase_row, definition = find_phase(session, challenge, phase)
        if any(s.state in UNFINISHED for s in phase_row.submissions):
            raise IngestError(f"phase {challenge}/{phase} has submissions in progress; ingest when they end")
        objectstore.check_store(settings.store)
        summary = ingest(Path(source), definition, layout.inputs_url(settings, challenge, phase),
                         layout.references_url(settings, challenge, phase), progress=progress)
        existing = {c.name: c for c in phase_row.cases}
        for name, info in summary.items():
            case = existing.get(name) or Case(name=name)
            case.checksum, case.info = info["checksum"], info["info"]
            if name not in existing:
                phase_row.cases.append(case)
        return len(summary)


def submit(settings: Settings, challenge: str, phase: str, participant: str, image: str,
           comment: str = "", model: Path | None = None) -> tuple[int, str]:
    check_participant(participant)  # bad arguments are reported before an image is loaded
    check_comment(comment)
    with session_scope(settings.database_url) as session:
        find_phase(session, challenge, phase)  # an unknown phase is reported before loading an image
    model_digest = None
    if model is not None:  # checked and stored first: a bad model records nothing
        tarball = check_model(challenge, phase, model)
        store_tarball(tarball, layout.model_url(settings, tarball.digest))
        model_digest = tarball.digest
    backend = get_backend(settings.container_backend)
    ref = backend.load_image(image)
    if settings.ray_address:  # other nodes load the pinned image from the shared store
        objectstore.check_store(settings.store)
        archive = layout.image_archive_url(settings, ref.digest)
        if not casestore.exists(archive):  # archives are named by digest: one per image
            backend.save_image(ref.digest, archive)
    with session_scope(settings.database_url) as session:
        submission = create_submission(session, challenge, phase, participant, image, ref.digest, comment,
                                       model=str(model) if model is not None else "", model_digest=model_digest)
        return submission.id, ref.digest


def check_model(challenge: str, phase: str, model: Path) -> Tarball:
    """A model tarball, checked; the error names the phase and the file."""
    try:
        return check_tarball(Path(model), what="model tarball")
    except TarballError as exc:
        raise TarballError(f"phase {challenge}/{phase}: {exc}") from None


def submission_status(settings: Settings, challenge: str | None = None) -> list[tuple]:
    with session_scope(settings.database_url) as session:
        query = select(Submission).order_by(Submission.id)
        rows = []
        for s in session.scalars(query):
            if challenge and s.phase.challenge.slug != challenge:
                continue
            counts = pd.Series([j.state for j in s.jobs]).value_counts().to_dict() if s.jobs else {}
            rows.append((s.id, f"{s.phase.challenge.slug}/{s.phase.slug}", s.participant, s.state,
                         ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "-",
                         f"{s.created_at:%Y-%m-%d %H:%M:%S}", short_digest(s.image_digest),
                         short_digest(s.model_digest) if s.model_digest else "-"))
        return rows


def submission_results(settings: Settings, submission_id: int) -> dict[str, Any]:
    with session_scope(settings.database_url) as session:
        submission = session.get(Submission, submission_id)
        if submission is None:
            raise NotFound(f"no submission {submission_id}")
        cases = []
        for job in sorted(submission.jobs, key=lambda j: j.case.name):
            cases.append({"case": job.case.name, "state": job.state, "reason": job.reason, "detail": job.detail,
                          "runtime_seconds": job.runtime_seconds, "cpu_seconds": job.cpu_seconds,
                          "peak_memory_bytes": job.peak_memory_bytes, "gpu_seconds": job.gpu_seconds,
                          "stdout_tail": job.stdout_tail,
                          "stderr_tail": job.stderr_tail, "metrics": [{k: v for k, v in row.items() if k != "case"}
                                      for row in leaderboard.job_rows(job)]})
        return {"submission": submission.id, "participant": submission.participant,
                "state": submission.state, "image_digest": submission.image_digest,
                "model_digest": submission.model_digest, "evaluation_state": submission.evaluation_state,
                "evaluation_detail": submission.evaluation_detail,
                "evaluation_log": submission.evaluation_log, "cases": cases,
                "compute": compute.submission_totals(session, [submission.id])[submission.id].as_dict(),
                "aggregates": submission.aggregates, "dataset": submission.dataset_metrics or {}}


def short_digest(digest: str | None) -> str:
    return (digest or "")[:19]


def try_image(settings: Settings, image: str, challenge: str, phase: str, cases: list[str] | None,
              on_progress: Callable[[int, int], None] | None = None,
              model: Path | None = None) -> list[dict[str, Any]]:
    """Run the image over the phase's cases in this process, as the scheduler would; no database
    writes. ``model`` is a model tarball or folder, mounted read-only at /opt/ml/model."""
    with session_scope(settings.database_url) as session:
        phase_row, _ = find_phase(session, challenge, phase)
        names = [c.name for c in phase_row.cases]
        definition = phase_row.challenge.definition
    if cases:
        unknown = sorted(set(cases) - set(names))
        if unknown:
            raise NotFound(f"phase {challenge}/{phase} has no case(s) {', '.join(unknown)}")
        names = [n for n in names if n in cases]
    model_fields: dict[str, Any] = {}
    if model is not None and Path(model).is_dir():
        model_fields["model_dir"] = str(Path(model).absolute())
    elif model is not None:
        tarball = check_model(challenge, phase, Path(model))
        model_fields.update(model_digest=tarball.digest, model_url=str(Path(model).absolute()))
    ref = get_backend(settings.container_backend).load_image(image)
    definition = ChallengeDefinition.model_validate(definition)  # once, for every case
    rows = []
    for i, name in enumerate(names):
        job = casejob.CaseJob(case=name, image=ref.digest, definition=definition, backend=settings.container_backend,
                              inputs_url=layout.inputs_url(settings, challenge, phase),
                              references_url=layout.references_url(settings, challenge, phase),
                              predictions_url=None, scratch=str(settings.scratch),
                              scope=f"{challenge}/{phase}", **model_fields)
        ran = casejob.run_case(job)  # scored in the same step, as on a worker
        outcome = ran.evaluated or (casejob.evaluate_case(job, ran.predictions)
                                    if ran.state == JobState.EVALUATING else ran)
        rows.append({"case": name, "state": outcome.state, "reason": outcome.reason, "detail": outcome.detail,
                     "runtime_seconds": ran.runtime_seconds, "metrics": outcome.rows,
                     "stderr_tail": ran.stderr_tail})
        if on_progress:
            on_progress(i + 1, len(names))
    return rows


def rank(settings: Settings, challenge: str, phase: str, method: str | None, bootstrap: int | None,
         output: Path | None) -> tuple[pd.DataFrame, list[Path]]:
    """Rank a phase from stored metrics (the declared recipe, or another method for comparison,
    which leaves the leaderboard as it is) and optionally export the ranking report."""
    with session_scope(settings.database_url) as session:
        phase_row, _ = find_phase(session, challenge, phase)
        overrides = {k: v for k, v in (("method", method), ("bootstrap", bootstrap)) if v is not None}
        ranking, note, parsed, table = leaderboard.compute_ranking(session, phase_row, overrides)
        if parsed is None:
            raise NotFound(f"phase {challenge}/{phase} has no scored submissions yet")
        if parsed is leaderboard.COLUMN_RANKING and output:
            raise NotFound(f"phase {challenge}/{phase} ranks on its evaluation container's score column: "
                           "the ranking report needs per-case rows and a ranking recipe")
        if not overrides:  # the declared recipe: this is the leaderboard
            leaderboard.store_ranking(session, phase_row, ranking, parsed)
        files: list[Path] = []
        if output:
            from medarena.platform.ranking_report import write_report

            submissions = [s.id for s in phase_row.submissions if s.state in ENDED_SUBMISSION]
            files = write_report(table, parsed, Path(output), cases=[c.name for c in phase_row.cases],
                                 submissions=submissions)
        if note:
            ranking.attrs["note"] = note
        return ranking, files
