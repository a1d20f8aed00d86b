"""A bearer token accepted by the server is kept a few seconds (`medarena.services.callers`):
revoking it or disabling its user through the server refuses it at once; done by another process,
within that time; a role given elsewhere shows at once."""

from __future__ import annotations

import time

import pytest

from medarena.errors import Unauthenticated
from medarena.services import accounts, callers
from tests.api.world import PASSWORDS

ME = "/api/v1/me"
UPLOADS = "/api/v1/challenges/toy/phases/test/uploads"


def status(server, token: str, method: str = "GET", path: str = ME, **kwargs) -> int:
    with server.client(token) as client:
        return client.request(method, path, **kwargs).status_code


def refused_after(server, token: str) -> float:
    """Seconds until the server refuses ``token`` (polled; fails past the kept time and a margin)."""
    start = time.monotonic()
    while (code := status(server, token)) == 200 and time.monotonic() - start < callers.TTL + 5:
        time.sleep(0.1)
    assert code == 401, code
    return time.monotonic() - start


def test_a_token_revoked_through_the_server_is_refused_at_once(world):
    server, seeded = world
    kept, kept_id = accounts.create_token(seeded.settings, "alice", "kept", 1)
    other, _ = accounts.create_token(seeded.settings, "alice", "other", 1)
    assert status(server, kept) == 200  # accepted, and now kept by the server
    assert status(server, other, "DELETE", f"/api/v1/me/tokens/{kept_id}") == 200
    with server.client(kept) as client:
        response = client.get(ME)
    assert response.status_code == 401 and response.json() == {"detail": "this token was revoked; log in again"}

    login = accounts.login(seeded.settings, "bob", PASSWORDS["bob"], "127.0.0.1")
    assert status(server, login) == 200
    assert status(server, login, "POST", "/api/v1/auth/logout") == 204
    assert status(server, login) == 401


def test_a_token_revoked_or_a_user_disabled_elsewhere_is_refused_within_the_kept_time(world):
    server, seeded = world
    token, token_id = accounts.create_token(seeded.settings, "bob", "elsewhere", 1)
    assert status(server, token) == 200
    accounts.revoke_token(seeded.settings, token_id)  # the operator's command: another process
    assert refused_after(server, token) <= callers.TTL + 5

    accounts.add_user(seeded.settings, "dora", "dora-password")
    token, _ = accounts.create_token(seeded.settings, "dora", "elsewhere", 1)
    assert status(server, token) == 200
    accounts.set_disabled(seeded.settings, "dora")
    assert refused_after(server, token) <= callers.TTL + 5


def test_an_approval_made_elsewhere_shows_at_once(world):
    server, seeded = world
    username = seeded.pending["other"]
    token, _ = accounts.create_token(seeded.settings, username, "waiting", 1)
    body = {"size": 10, "sha256": "0" * 64}
    with server.client(token) as client:
        response = client.post(UPLOADS, json=body)  # the caller is now kept, with their pending role
    assert response.status_code == 403 and "awaits an organizer's approval" in response.json()["detail"]
    accounts.grant_role(seeded.settings, username, "toy", "participant")  # approved, by another process
    assert status(server, token, "POST", UPLOADS, json=body) == 201


def test_a_token_use_is_recorded(world):
    """The check reads on the event loop; ``last_used_at`` is written in a thread, not awaited."""
    server, seeded = world

    def last_used(token_id: int):
        return next(t["last_used_at"] for t in accounts.list_tokens(seeded.settings, "bob") if t["id"] == token_id)

    token, token_id = accounts.create_token(seeded.settings, "bob", "recorded", 1)
    assert last_used(token_id) is None
    assert status(server, token) == 200
    deadline = time.monotonic() + 10
    while last_used(token_id) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert last_used(token_id) is not None


def test_a_commit_in_this_process_forgets_the_kept_callers(home):
    accounts.add_user(home, "erin", "erin-password")
    token, token_id = accounts.create_token(home, "erin", "laptop", 1)
    assert callers.authenticate(home, token).username == "erin"
    assert callers.cached(home, token).username == "erin"
    accounts.create_token(home, "erin", "another", 1)  # a new token changes no one's rights: still kept
    assert callers.cached(home, token) is not None
    accounts.revoke_token(home, token_id)
    assert callers.cached(home, token) is None
    with pytest.raises(Unauthenticated, match="revoked"):
        callers.authenticate(home, token)

