"""Leaderboards, per-case result tables, re-ranking and the ranking report."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import contains_eager, selectinload

from medarena.accounts.tokens import Identity
from medarena.errors import NotFound
from medarena.platform.database import Challenge, Job, LeaderboardEntry, Phase, Submission, session_scope
from medarena.platform.settings import Settings
from medarena.platform.submissions import find_phase
from medarena.services import access
from medarena.services.cache import VersionedCache, to_json

LEADERBOARDS = VersionedCache(64)  # (database, phase id) -> (answer, its JSON)


def _phase_with_version():
    """One statement (built once: building it costs more than running it) for a phase by its slugs,
    with its challenge (not validated again: readers get the phase's rules from
    :func:`access.phase_rules`, which keeps the validated ones) and the version of its leaderboard,
    which changes whenever the phase's leaderboard rows do (ranking replaces every row: new ids, a
    new ``computed_at``)."""
    entries = (func.count(LeaderboardEntry.id), func.min(LeaderboardEntry.id), func.max(LeaderboardEntry.id),
               func.max(LeaderboardEntry.computed_at), func.sum(LeaderboardEntry.rank))
    version = [select(e).where(LeaderboardEntry.phase_id == Phase.id).scalar_subquery() for e in entries]
    return select(Phase, *version).join(Phase.challenge).options(contains_eager(Phase.challenge)).where(
        Challenge.slug == bindparam("challenge"), Phase.slug == bindparam("phase"))


PHASE_WITH_VERSION = _phase_with_version()


def _leaderboard(settings: Settings, caller: Identity | None, challenge: str, phase: str,
                 only_kept: bool = False) -> tuple[dict, bytes] | None:
    """The whole leaderboard and its JSON, from the cache while the phase's rows are unchanged;
    the caller's right to see it is checked on every request. ``only_kept``: None rather than
    building it (two small queries at most: cheap enough for the event loop)."""
    with session_scope(settings.database_url) as session:
        found = session.execute(PHASE_WITH_VERSION, {"challenge": challenge, "phase": phase}).first()
        if found is None:
            find_phase(session, challenge, phase)  # raises, naming what is missing
            raise NotFound(f"no phase {challenge}/{phase}")
        row, version = found[0], tuple(found[1:])  # the version is read before the rows
        access.leaderboard_visible(session, caller, row)

        def build() -> tuple[dict, bytes]:
            rows = session.execute(select(LeaderboardEntry, Submission.participant).join(
                Submission, Submission.id == LeaderboardEntry.submission_id).where(
                LeaderboardEntry.phase_id == row.id).order_by(LeaderboardEntry.rank, LeaderboardEntry.id)).all()
            data = {"challenge": challenge, "phase": phase,
                    "entries": [{"rank": e.rank, "submission": e.submission_id, "participant": participant,
                                 "score": e.score, "rank_low": e.rank_low, "rank_high": e.rank_high,
                                 "columns": e.columns, "computed_at": e.computed_at} for e, participant in rows]}
            return data, to_json(data)

        return LEADERBOARDS.get((settings.database_url, row.id), version, None if only_kept else build)


def get_leaderboard(settings: Settings, caller: Identity | None, challenge: str, phase: str) -> dict[str, Any]:
    data, _ = _leaderboard(settings, caller, challenge, phase)
    return {**data, "entries": [dict(entry) for entry in data["entries"]]}  # the cached one stays as it is


def leaderboard_json(settings: Settings, caller: Identity | None, challenge: str, phase: str,
                     only_kept: bool = False) -> bytes | None:
    """:func:`get_leaderboard` as the JSON the API answers with (``only_kept``: None when it
    would have to be built)."""
    found = _leaderboard(settings, caller, challenge, phase, only_kept)
    return None if found is None else found[1]


def get_case_results(settings: Settings, caller: Identity | None, challenge: str, phase: str) -> dict[str, Any]:
    """Per-case metrics of the ranked submissions, where the phase makes them public (or for organizers)."""
    with session_scope(settings.database_url) as session:
        phase_row, _ = find_phase(session, challenge, phase)
        access.case_results_visible(session, caller, phase_row)
        from medarena.platform import leaderboard

        ranked = select(LeaderboardEntry.submission_id).where(LeaderboardEntry.phase_id == phase_row.id)
        submissions = session.scalars(select(Submission).where(Submission.id.in_(ranked)).options(
            selectinload(Submission.jobs).selectinload(Job.case),
            selectinload(Submission.jobs).selectinload(Job.metrics))).all()
        rows = []
        for submission in submissions:
            for job in submission.jobs:
                base = {"submission": submission.id, "participant": submission.participant, "case": job.case.name,
                        "state": job.state}
                metric_rows = leaderboard.job_rows(job) or [{}]
                for row in metric_rows:
                    rows.append({**base, "label": row.get("label"),
                                 "metrics": {k: _json_float(v) for k, v in row.items() if k not in ("case", "label")}})
        return {"challenge": challenge, "phase": phase, "rows": rows}


def _json_float(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def rerank(settings: Settings, caller: Identity | None, challenge: str, phase: str) -> dict[str, Any]:
    """Organizers: rank the phase again from stored metrics with its declared recipe."""
    from medarena.platform import leaderboard

    with session_scope(settings.database_url) as session:
        phase_row, _ = find_phase(session, challenge, phase)
        access.require_organizer(session, caller, phase_row.challenge)
        leaderboard.rank_phase(session, phase_row)
    return get_leaderboard(settings, caller, challenge, phase)


def ranking_report(settings: Settings, caller: Identity | None, challenge: str, phase: str,
                   method: str | None = None, bootstrap: int | None = None) -> dict[str, Any]:
    """Organizers: the ranking with its stability (bootstrap rank intervals), by the declared
    recipe or another method for comparison; the leaderboard stays as it is."""
    from medarena.platform import leaderboard

    with session_scope(settings.database_url) as session:
        phase_row, _ = find_phase(session, challenge, phase)
        access.require_organizer(session, caller, phase_row.challenge)
        overrides = {k: v for k, v in (("method", method), ("bootstrap", bootstrap)) if v is not None}
        ranking, note, parsed, _table = leaderboard.compute_ranking(session, phase_row, overrides)
        if parsed is None:
            raise NotFound(f"phase {challenge}/{phase} has no scored submissions yet")
        records = [{k: _json_float(v.item() if hasattr(v, "item") else v) for k, v in row.items()}
                   for row in ranking.to_dict("records")]
        return {"challenge": challenge, "phase": phase, "method": parsed.method, "note": note or "",
                "rows": records}
