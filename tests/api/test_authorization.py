"""Every route of the application x every kind of caller, with the status each must get.

The table is checked against the application's own route table: a new route without an entry
here fails the test. Each request runs with a fresh token of its caller, and routes that change
something act on a target of their own per caller, so that no answer depends on another.
"""

from __future__ import annotations

import hashlib

from fastapi.routing import APIRoute

from medarena.api.app import create_app
from tests.api.world import PASSWORDS, ROLES, USERS

ALL = dict.fromkeys(ROLES, 200)


def by_role(anonymous, other, owner, other_organizer, organizer, admin) -> dict[str, int]:
    return dict(zip(ROLES, (anonymous, other, owner, other_organizer, organizer, admin), strict=True))


STAFF_ONLY = by_role(401, 403, 403, 403, 200, 200)
LOGGED_IN = by_role(401, 200, 200, 200, 200, 200)
DEFINITION = "tests/api/toy.yaml"  # written by the world


def _definition(world, slug: str) -> str:
    import yaml

    from tests.platform.challenge_data import definition

    return yaml.safe_dump(definition(slug=slug, title=slug))


def _toy_definition(world) -> str:
    return (world.settings.home / "toy.yaml").read_text()


# (method, path) -> list of (description, request(role, world) -> kwargs, expected statuses)
def cases():
    return {
        ("GET", "/api/openapi.json"): [("the OpenAPI document", lambda r, w: {}, ALL)],
        ("GET", "/api/docs"): [("the interactive docs", lambda r, w: {}, ALL)],
        ("GET", "/api/docs/oauth2-redirect"): [("the docs' OAuth2 redirect", lambda r, w: {}, ALL)],
        ("GET", "/api/health"): [("health", lambda r, w: {}, ALL)],
        ("POST", "/api/v1/auth/token"): [(
            "password login", lambda r, w: {"data": {"username": USERS.get(r, "nobody"),
                                                     "password": PASSWORDS.get(USERS.get(r), "wrong-password")}},
            by_role(401, 200, 200, 200, 200, 200))],
        ("POST", "/api/v1/auth/logout"): [("logout", lambda r, w: {}, by_role(401, 204, 204, 204, 204, 204))],
        ("GET", "/api/v1/me"): [("me", lambda r, w: {}, LOGGED_IN)],
        ("GET", "/api/v1/me/tokens"): [("my tokens", lambda r, w: {}, LOGGED_IN)],
        ("POST", "/api/v1/me/tokens"): [("a new personal token", lambda r, w: {"json": {"name": "ci"}},
                                         by_role(401, 201, 201, 201, 201, 201))],
        ("DELETE", "/api/v1/me/tokens/{token_id}"): [(
            "revoke alice's token", lambda r, w: {"token_id": w.alice_token_id},
            by_role(401, 404, 200, 404, 404, 404))],
        ("GET", "/api/v1/challenges"): [("list", lambda r, w: {}, ALL)],
        ("POST", "/api/v1/challenges"): [(
            "create", lambda r, w: {"json": {"definition": _definition(w, f"new-{r.replace('_', '-')}")}},
            by_role(401, 403, 403, 403, 403, 201))],
        ("GET", "/api/v1/challenges/{slug}"): [("show", lambda r, w: {"slug": "toy"}, ALL)],
        ("PUT", "/api/v1/challenges/{slug}"): [(
            "update", lambda r, w: {"slug": "toy", "json": {"definition": _toy_definition(w)}}, STAFF_ONLY)],
        ("POST", "/api/v1/challenges/{slug}/organizers"): [(
            "add an organizer", lambda r, w: {"slug": "other", "json": {"username": "bob"}},
            by_role(401, 403, 403, 403, 403, 201))],
        ("POST", "/api/v1/challenges/{slug}/phases/{phase}/open"): [(
            "open a phase", lambda r, w: {"slug": "toy", "phase": "extra"}, STAFF_ONLY)],
        ("POST", "/api/v1/challenges/{slug}/phases/{phase}/close"): [(
            "close a phase", lambda r, w: {"slug": "toy", "phase": "extra"}, STAFF_ONLY)],
        ("POST", "/api/v1/challenges/{slug}/registrations"): [(
            "register", lambda r, w: {"slug": "reg"}, by_role(401, 201, 201, 201, 201, 201))],
        ("GET", "/api/v1/challenges/{slug}/registrations"): [(
            "registrations", lambda r, w: {"slug": "toy"}, STAFF_ONLY)],
        ("POST", "/api/v1/challenges/{slug}/registrations/{username}/approve"): [(
            "approve", lambda r, w: {"slug": "toy", "username": w.pending[r]}, STAFF_ONLY)],
        ("GET", "/api/v1/challenges/{slug}/phases/{phase}/leaderboard"): [
            ("public leaderboard", lambda r, w: {"slug": "toy", "phase": "test"}, ALL),
            ("hidden leaderboard", lambda r, w: {"slug": "toy", "phase": "final"},
             by_role(404, 404, 404, 404, 200, 200))],
        ("GET", "/api/v1/challenges/{slug}/phases/{phase}/leaderboard/cases"): [
            ("public per-case results", lambda r, w: {"slug": "toy", "phase": "test"}, ALL),
            ("hidden per-case results", lambda r, w: {"slug": "toy", "phase": "final"},
             by_role(404, 404, 404, 404, 200, 200))],
        ("POST", "/api/v1/challenges/{slug}/phases/{phase}/rerank"): [(
            "re-rank", lambda r, w: {"slug": "toy", "phase": "final"}, STAFF_ONLY)],
        ("GET", "/api/v1/challenges/{slug}/phases/{phase}/ranking-report"): [(
            "ranking report", lambda r, w: {"slug": "toy", "phase": "final"}, STAFF_ONLY)],
        ("GET", "/api/v1/challenges/{slug}/phases/{phase}/compute"): [(
            "a phase's compute totals", lambda r, w: {"slug": "toy", "phase": "test"}, STAFF_ONLY)],
        ("POST", "/api/v1/challenges/{slug}/phases/{phase}/uploads"): [(
            "start an upload", lambda r, w: {"slug": "toy", "phase": "test",
                                             "json": {"size": 10, "sha256": "0" * 64}},
            by_role(401, 201, 201, 403, 403, 403))],
        ("GET", "/api/v1/uploads/{upload_id}"): [(
            "alice's upload", lambda r, w: {"upload_id": w.open_uploads["owner"]},
            by_role(401, 404, 200, 404, 404, 404))],
        ("PUT", "/api/v1/uploads/{upload_id}/parts/{index}"): [(
            "a part of alice's upload", lambda r, w: {
                "upload_id": w.open_uploads[r], "index": 0, "content": b"x",
                "headers": {"X-Part-SHA256": hashlib.sha256(b"x").hexdigest()}},
            by_role(401, 404, 200, 404, 404, 404))],
        ("POST", "/api/v1/uploads/{upload_id}/complete"): [(
            "complete alice's upload (not an image)", lambda r, w: {"upload_id": w.full_uploads[r]},
            by_role(401, 404, 422, 404, 404, 404))],
        ("POST", "/api/v1/challenges/{slug}/phases/{phase}/submissions"): [(
            "submit alice's upload", lambda r, w: {"slug": "toy", "phase": "test",
                                                   "json": {"upload_id": w.complete_uploads[r]}},
            by_role(401, 404, 201, 403, 403, 403))],
        ("GET", "/api/v1/submissions"): [("my submissions", lambda r, w: {}, LOGGED_IN)],
        ("GET", "/api/v1/submissions/{submission_id}"): [
            ("alice's submission, public per-case results",
             lambda r, w: {"submission_id": w.finished["test"]}, ALL),
            ("alice's submission, hidden phase", lambda r, w: {"submission_id": w.finished["final"]},
             by_role(404, 404, 200, 404, 200, 200))],
        ("GET", "/api/v1/submissions/{submission_id}/logs"): [
            ("alice's logs, participant_logs: own", lambda r, w: {"submission_id": w.finished["test"]},
             by_role(404, 404, 200, 404, 200, 200)),
            ("alice's logs, participant_logs: none", lambda r, w: {"submission_id": w.finished["final"]},
             by_role(404, 404, 403, 404, 200, 200))],
        ("POST", "/api/v1/submissions/{submission_id}/cancel"): [(
            "cancel alice's queued submission", lambda r, w: {"submission_id": w.cancellable[r]},
            by_role(404, 404, 200, 404, 200, 200))],
        ("POST", "/api/v1/submissions/{submission_id}/reevaluate"): [(
            "re-evaluate alice's ended submission (hidden phase)", lambda r, w: {"submission_id": w.reevaluable[r]},
            by_role(404, 404, 403, 404, 200, 200))],
    }


def _flatten(routes):
    """Routes, with those of included routers (FastAPI keeps them as a router of their own)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _flatten(inner.routes)
        else:
            yield route


def app_routes() -> set[tuple[str, str]]:
    routes = set()
    for route in _flatten(create_app().routes):
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                routes.add((method, route.path))
    return routes


def test_every_route_has_an_entry():
    table = cases()
    missing = app_routes() - set(table)
    assert not missing, f"routes without an entry in the authorization matrix: {sorted(missing)}"
    assert not set(table) - app_routes(), "entries for routes that do not exist"
    assert sum(isinstance(r, APIRoute) for r in _flatten(create_app().routes)) >= 30


def test_authorization_matrix(world):
    server, seeded = world
    failures = []
    for (method, path), entries in sorted(cases().items()):
        for description, make, expected in entries:
            for role in ROLES:
                kwargs = make(role, seeded)
                params = {k: kwargs.pop(k) for k in list(kwargs) if "{" + k + "}" in path}
                with server.client(seeded.token(role)) as client:
                    response = client.request(method, path.format(**params), **kwargs)
                if response.status_code != expected[role]:
                    failures.append(f"{method} {path} ({description}) as {role}: {response.status_code}, "
                                    f"expected {expected[role]}: {response.text[:200]}")
                elif response.status_code >= 400 and path.startswith("/api/v1"):
                    assert set(response.json()) == {"detail"} and isinstance(response.json()["detail"], str)
    assert not failures, "\n".join(failures)


def test_a_hidden_submission_reads_like_one_that_does_not_exist(world):
    server, seeded = world
    hidden_id = seeded.finished["final"]
    with server.client(seeded.token("other")) as client:
        hidden = client.get(f"/api/v1/submissions/{hidden_id}")
        missing = client.get("/api/v1/submissions/999999")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == {"detail": f"no submission {hidden_id}"}
    assert missing.json() == {"detail": "no submission 999999"}
