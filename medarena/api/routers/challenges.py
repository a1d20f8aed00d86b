"""Challenges, phases, registrations, leaderboards and organizer actions on a phase."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from medarena.api.deps import CallerDep, JSONBytes, SettingsDep
from medarena.api.schemas import ChallengeCreate, ChallengeUpdate, OrganizerAdd
from medarena.services import challenges, compute, leaderboards

router = APIRouter(prefix="/api/v1/challenges", tags=["challenges"])


@router.get("")
def list_challenges(settings: SettingsDep, caller: CallerDep) -> list[dict[str, Any]]:
    return challenges.list_challenges(settings, caller)


@router.post("", status_code=201)
def create_challenge(body: ChallengeCreate, settings: SettingsDep, caller: CallerDep) -> dict[str, Any]:
    """Site admins: create a challenge from its YAML definition and name its organizers."""
    return challenges.create_challenge(settings, caller, body.definition, body.organizers)


@router.get("/{slug}")
def get_challenge(slug: str, settings: SettingsDep, caller: CallerDep) -> dict[str, Any]:
    return challenges.get_challenge(settings, caller, slug)


@router.put("/{slug}")
def update_challenge(slug: str, body: ChallengeUpdate, settings: SettingsDep, caller: CallerDep) -> dict[str, Any]:
    """Organizers: replace the definition (phases with data and the interface of ingested data stay)."""
    return challenges.update_challenge(settings, caller, slug, body.definition)


@router.post("/{slug}/organizers", status_code=201)
def add_organizer(slug: str, body: OrganizerAdd, settings: SettingsDep, caller: CallerDep) -> dict[str, Any]:
    return challenges.add_organizer(settings, caller, slug, body.username)


@router.post("/{slug}/phases/{phase}/open")
def open_phase(slug: str, phase: str, settings: SettingsDep, caller: CallerDep) -> dict[str, Any]:
    return challenges.set_phase_open(settings, caller, slug, phase, True)


@router.post("/{slug}/phases/{phase}/close")
def close_phase(slug: str, phase: str, settings: SettingsDep, caller: CallerDep) -> dict[str, Any]:
    return challenges.set_phase_open(settings, caller, slug, phase, False)


@router.post("/{slug}/registrations", status_code=201)
def register(slug: str, settings: SettingsDep, caller: CallerDep) -> dict[str, Any]:
    """Register the caller as a participant (pending where the challenge asks for approval)."""
    return challenges.register(settings, caller, slug)


@router.get("/{slug}/registrations")
def list_registrations(slug: str, settings: SettingsDep, caller: CallerDep) -> list[dict[str, Any]]:
    return challenges.list_registrations(settings, caller, slug)


@router.post("/{slug}/registrations/{username}/approve")
def approve(slug: str, username: str, settings: SettingsDep, caller: CallerDep) -> dict[str, Any]:
    return challenges.approve(settings, caller, slug, username)


@router.get("/{slug}/phases/{phase}/leaderboard", response_class=JSONBytes)
async def leaderboard(slug: str, phase: str, settings: SettingsDep, caller: CallerDep) -> JSONBytes:
    """Ranks, scores, aggregates and bootstrap rank intervals."""
    # a kept answer is found on the event loop; one to build is built in a thread
    answer = leaderboards.leaderboard_json(settings, caller, slug, phase, only_kept=True)
    if answer is None:
        answer = await run_in_threadpool(leaderboards.leaderboard_json, settings, caller, slug, phase)
    return JSONBytes(answer)


@router.get("/{slug}/phases/{phase}/leaderboard/cases")
def case_results(slug: str, phase: str, settings: SettingsDep, caller: CallerDep) -> dict[str, Any]:
    """Per-case metrics of the ranked submissions, where the phase makes them public."""
    return leaderboards.get_case_results(settings, caller, slug, phase)


@router.post("/{slug}/phases/{phase}/rerank")
def rerank(slug: str, phase: str, settings: SettingsDep, caller: CallerDep) -> dict[str, Any]:
    return leaderboards.rerank(settings, caller, slug, phase)


@router.get("/{slug}/phases/{phase}/ranking-report")
def ranking_report(slug: str, phase: str, settings: SettingsDep, caller: CallerDep,
                   method: str | None = Query(default=None, max_length=40),
                   bootstrap: int | None = Query(default=None, ge=0, le=10_000)) -> dict[str, Any]:
    """Organizers: the ranking with its stability, by the declared recipe or another method."""
    return leaderboards.ranking_report(settings, caller, slug, phase, method, bootstrap)


@router.get("/{slug}/phases/{phase}/compute")
def phase_compute(slug: str, phase: str, settings: SettingsDep, caller: CallerDep) -> dict[str, Any]:
    """Organizers: CPU, GPU and memory the phase's submissions used, in all and per participant,
    with the phase's compute budget."""
    return compute.phase_compute(settings, caller, slug, phase)
