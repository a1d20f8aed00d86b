"""Bad input over HTTP: each a clear one-line error with its status, nothing half-written, and
the next request served normally."""

from __future__ import annotations

import datetime as dt
import hashlib

import sqlalchemy as sa

from medarena.platform.database import engine_for
from medarena.services import accounts
from tests.api.world import PASSWORDS


def served_normally(server) -> None:
    assert server.client().get("/api/v1/challenges").status_code == 200


def detail(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str) and "\n" not in body["detail"]
    return body["detail"]


def sql(world, statement: str, **params):
    with engine_for(world.settings.database_url).begin() as connection:
        return connection.execute(sa.text(statement), params)


def test_credentials(world):
    server, seeded = world
    with server.client() as client:
        assert detail(client.post("/api/v1/auth/token", data={"username": "alice", "password": "wrong-one"}),
                      401) == "wrong user name or password"
        assert detail(client.post("/api/v1/auth/token", data={"username": "nobody", "password": "wrong-one"}),
                      401) == "wrong user name or password"
        response = client.get("/api/v1/me")
        assert detail(response, 401).startswith("log in first")
        assert response.headers["www-authenticate"] == "Bearer"
    with server.client("mda_not-a-token") as client:
        assert detail(client.get("/api/v1/challenges"), 401) == "unknown token; log in again"

    token, token_id = accounts.create_token(seeded.settings, "alice", "soon expired", 1)
    sql(seeded, "UPDATE api_tokens SET expires_at = :t WHERE id = :i",
        t=dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=1), i=token_id)
    with server.client(token) as client:
        assert detail(client.get("/api/v1/me"), 401) == "this token has expired; log in again"

    token, token_id = accounts.create_token(seeded.settings, "alice", "revoked", 1)
    accounts.revoke_token(seeded.settings, token_id)
    with server.client(token) as client:
        assert detail(client.get("/api/v1/me"), 401) == "this token was revoked; log in again"

    accounts.add_user(seeded.settings, "dora", "dora-password")
    token, _ = accounts.create_token(seeded.settings, "dora", "before", 1)
    accounts.set_disabled(seeded.settings, "dora")
    with server.client(token) as client:
        assert detail(client.get("/api/v1/me"), 401) == "this account is disabled"
    with server.client() as client:
        assert detail(client.post("/api/v1/auth/token", data={"username": "dora", "password": "dora-password"}),
                      401) == "this account is disabled"
    served_normally(server)


def test_login_throttling_per_account(world):
    server, seeded = world
    accounts.add_user(seeded.settings, "erin", "erin-password")
    with server.client() as client:
        for _ in range(5):
            detail(client.post("/api/v1/auth/token", data={"username": "erin", "password": "guess"}), 401)
        # now even the right password waits
        message = detail(client.post("/api/v1/auth/token", data={"username": "erin", "password": "erin-password"}),
                         429)
        assert message.startswith("too many failed logins from this account; try again in ")
        # another account from the same address is not locked out by erin's failures alone
        assert client.post("/api/v1/auth/token",
                           data={"username": "bob", "password": PASSWORDS["bob"]}).status_code == 200


def test_registration(world):
    server, seeded = world
    with server.client(seeded.token("owner")) as client:
        assert detail(client.post("/api/v1/challenges/nope/registrations"), 404) == "no challenge 'nope'"
        assert detail(client.post("/api/v1/challenges/toy/registrations"), 409) == \
            "you are registered for toy already (approved)"
        assert client.post("/api/v1/challenges/approval/registrations").json()["state"] == "pending"
        # pending: may not upload yet
        message = detail(client.post("/api/v1/challenges/approval/phases/test/uploads",
                                     json={"size": 10, "sha256": "0" * 64}), 403)
        assert message == "your registration for approval awaits an organizer's approval"
    served_normally(server)


def _start(client, size: int, content_sha: str, part_size: int = 64 << 10, phase: str = "test"):
    response = client.post(f"/api/v1/challenges/toy/phases/{phase}/uploads",
                           json={"size": size, "sha256": content_sha, "part_size": part_size})
    assert response.status_code == 201, response.text
    return response.json()


def _put(client, upload_id: str, index: int, data: bytes, sha: str | None = None):
    return client.put(f"/api/v1/uploads/{upload_id}/parts/{index}", content=data,
                      headers={"X-Part-SHA256": sha or hashlib.sha256(data).hexdigest()})


def test_parts(world):
    server, seeded = world
    part = 64 << 10
    content = bytes(range(256)) * (3 * part // 256) + b"tail"
    with server.client(seeded.token("owner")) as client:
        upload = _start(client, len(content), hashlib.sha256(content).hexdigest())
        assert (upload["parts"], upload["next_part"]) == (4, 0)
        uid = upload["id"]
        parts = [content[i:i + part] for i in range(0, len(content), part)]
        assert detail(_put(client, uid, 1, parts[1]), 409) == \
            f"part 1 of upload {uid} is out of order: parts go in order and the next part is 0"
        assert detail(_put(client, uid, 0, parts[0], sha="ab" * 32), 422).startswith(
            "part 0: its SHA-256 is ")
        assert client.get(f"/api/v1/uploads/{uid}").json()["next_part"] == 0  # nothing of it was kept
        assert detail(_put(client, uid, 0, parts[0][:-1]), 422) == f"part 0: {part - 1} bytes received of its {part}"
        assert detail(_put(client, uid, 0, parts[0] + b"x"), 413) == \
            f"part 0: {part + 1} bytes sent, the part has {part}"
        assert detail(client.put(f"/api/v1/uploads/{uid}/parts/0", content=parts[0]), 422).startswith(
            "header X-Part-SHA256")
        assert _put(client, uid, 0, parts[0]).json()["next_part"] == 1
        assert detail(_put(client, uid, 0, parts[0]), 409) == \
            f"part 0 of upload {uid} was received already; the next part is 1"
        assert detail(_put(client, uid, 9, b"x"), 422) == f"part 9: upload {uid} has parts 0 to 3"
        assert detail(client.post(f"/api/v1/uploads/{uid}/complete"), 409) == \
            f"upload {uid} has 1 of its 4 parts; send part 1"
        for i in (1, 2, 3):
            _put(client, uid, i, parts[i]).raise_for_status()
        status = client.get(f"/api/v1/uploads/{uid}").json()
        assert (status["parts_received"], status["next_part"]) == (4, None)
        # the whole is checked, and is not an image archive
        assert detail(client.post(f"/api/v1/uploads/{uid}/complete"), 422) == \
            f"upload {uid} (unnamed): not an image archive as `podman save` or `docker save` write it"
        assert detail(client.get(f"/api/v1/uploads/{uid}"), 409) == f"upload {uid} is failed; start a new one"
    assert not (seeded.settings.home / "uploads" / uid).exists()  # its space is freed
    served_normally(server)


def test_parts_of_several_megabytes(world):
    """Parts longer than the block the server hashes and writes at a time (in a thread, while the
    next block arrives): each byte lands where it belongs, and a failed part leaves nothing."""
    import random

    from medarena.api.routers.submissions import WRITE_BLOCK

    server, seeded = world
    part = 2 * WRITE_BLOCK + WRITE_BLOCK // 2 + 1  # two whole blocks and a remainder
    content = random.Random(7).randbytes(2 * part - 5)
    with server.client(seeded.token("owner")) as client:
        upload = _start(client, len(content), hashlib.sha256(content).hexdigest(), part_size=part)
        uid = upload["id"]
        data = seeded.settings.home / "uploads" / uid / "data"
        first, second = content[:part], content[part:]
        assert detail(_put(client, uid, 0, first, sha=hashlib.sha256(second).hexdigest()), 422).startswith(
            f"part 0: its SHA-256 is {hashlib.sha256(first).hexdigest()}, not ")
        assert data.stat().st_size == 0

        def longer():  # no Content-Length: the excess is found while the body streams
            for start in range(0, part + 100_000, 200_000):
                yield (first + b"x" * 100_000)[start:start + 200_000]

        assert detail(_put(client, uid, 0, longer(), sha=hashlib.sha256(first).hexdigest()), 413) == \
            f"part 0: more than its {part} bytes"
        assert data.stat().st_size == 0 and client.get(f"/api/v1/uploads/{uid}").json()["next_part"] == 0
        assert _put(client, uid, 0, first).json()["next_part"] == 1
        assert _put(client, uid, 1, second).json()["next_part"] is None
        assert data.read_bytes() == content
    served_normally(server)


def test_a_whole_file_whose_checksum_differs(world):
    server, seeded = world
    data = b"abc" * 1000
    with server.client(seeded.token("owner")) as client:
        upload = _start(client, len(data), hashlib.sha256(b"something else").hexdigest())
        _put(client, upload["id"], 0, data).raise_for_status()
        message = detail(client.post(f"/api/v1/uploads/{upload['id']}/complete"), 422)
    assert message.startswith(f"upload {upload['id']}: the file's SHA-256 is {hashlib.sha256(data).hexdigest()}")


def test_upload_caps(world):
    server, seeded = world
    with server.client(seeded.token("other")) as client:
        message = detail(client.post("/api/v1/challenges/toy/phases/test/uploads",
                                     json={"size": 30_000 << 20, "sha256": "0" * 64}), 413)
        assert message == f"size: {30_000 << 20} bytes is over the 20480 MB that toy/test accepts for an image"
        for _ in range(3):  # 3 x 20 000 MB fit in 64 GiB; a fourth does not
            _start(client, 20_000 << 20, "0" * 64)
        message = detail(client.post("/api/v1/challenges/toy/phases/test/uploads",
                                     json={"size": 20_000 << 20, "sha256": "0" * 64}), 413)
        assert message.startswith("size: your uploads would hold ")
        assert detail(client.post("/api/v1/challenges/toy/phases/test/uploads",
                                  json={"size": 10, "sha256": "xyz"}), 422).startswith("body.sha256: ")


def test_expired_uploads_free_their_space(world):
    from medarena.services import uploads

    server, seeded = world
    with server.client(seeded.token("owner")) as client:
        upload = _start(client, 10, "0" * 64)
    folder = seeded.settings.home / "uploads" / upload["id"]
    assert folder.is_dir()
    sql(seeded, "UPDATE uploads SET expires_at = :t WHERE id = :i",
        t=dt.datetime(2020, 1, 1), i=upload["id"])
    assert uploads.sweep_expired(seeded.settings) >= 1
    assert not folder.exists()
    with server.client(seeded.token("owner")) as client:
        assert detail(client.get(f"/api/v1/uploads/{upload['id']}"), 409) == \
            f"upload {upload['id']} is expired; start a new one"


def test_submissions(world):
    server, seeded = world
    alices = seeded.upload("alice", "complete", phase="limited")
    with server.client(seeded.token("other")) as client:
        assert detail(client.post("/api/v1/challenges/toy/phases/limited/submissions",
                                  json={"upload_id": alices}), 404) == f"no upload {alices}"
        first, second = (seeded.upload("bob", "complete", phase="limited") for _ in range(2))
        assert client.post("/api/v1/challenges/toy/phases/limited/submissions",
                           json={"upload_id": first}).status_code == 201
        assert detail(client.post("/api/v1/challenges/toy/phases/limited/submissions",
                                  json={"upload_id": first}), 409) == f"upload {first} was submitted already"
        before = len(client.get("/api/v1/submissions").json())
        message = detail(client.post("/api/v1/challenges/toy/phases/limited/submissions",
                                     json={"upload_id": second}), 429)
        assert message == "participant 'bob' has used 1 of 1 submissions to toy/limited in the last 1 day(s)"
        assert len(client.get("/api/v1/submissions").json()) == before  # nothing half-written
        assert client.get(f"/api/v1/uploads/{second}").json()["state"] == "complete"  # still usable
        wrong_phase = seeded.upload("bob", "complete", phase="test")
        assert detail(client.post("/api/v1/challenges/toy/phases/limited/submissions",
                                  json={"upload_id": wrong_phase}), 409).startswith(
            f"upload {wrong_phase} was made for another phase")
    with server.client(seeded.token("organizer")) as client:
        assert client.post("/api/v1/challenges/toy/phases/limited/close").json()["open"] is False
    with server.client(seeded.token("other")) as client:
        message = detail(client.post("/api/v1/challenges/toy/phases/limited/submissions",
                                     json={"upload_id": second}), 409)
        assert message.startswith("phase toy/limited is not open: it closed ")
    served_normally(server)


def test_bodies(world):
    server, seeded = world
    with server.client(seeded.token("owner")) as client:
        url = "/api/v1/challenges/toy/phases/test/submissions"
        assert detail(client.post(url, content=b"{not json", headers={"Content-Type": "application/json"}),
                      422) == "body: not valid JSON"
        assert detail(client.post(url, json={"upload_id": "x", "bogus": 1}), 422) == "body.bogus: unknown field"
        assert detail(client.post(url, json=["upload_id"]), 422).startswith("body: ")
        assert detail(client.post(url, content=b"x" * (3 << 20), headers={"Content-Type": "application/json"}),
                      413) == f"request body: more than {2 << 20} bytes"
    served_normally(server)


def _complete_model(client, content: bytes, filename: str) -> tuple[dict, object]:
    started = client.post("/api/v1/challenges/toy/phases/test/uploads",
                          json={"size": len(content), "sha256": hashlib.sha256(content).hexdigest(),
                                "filename": filename, "kind": "model"})
    assert started.status_code == 201, started.text
    upload = started.json()
    assert (upload["kind"], upload["parts"]) == ("model", 1)
    _put(client, upload["id"], 0, content).raise_for_status()
    return upload, client.post(f"/api/v1/uploads/{upload['id']}/complete")


def test_model_uploads(world, tmp_path):
    from medarena.platform import layout
    from tests.platform import gc_phase

    server, seeded = world
    models = seeded.settings.home / "store" / "models"
    url = "/api/v1/challenges/toy/phases/test/uploads"
    with server.client(seeded.token("owner")) as client:
        cap = 20 * 2**30  # MEDARENA_MAX_TARBALL_BYTES, not the phase's max_image_mb (20480 MB, the same size)
        assert detail(client.post(url, json={"size": cap + 1, "sha256": "0" * 64, "kind": "model"}), 413) == \
            f"size: {cap + 1} bytes is over the {cap} bytes accepted for a model tarball"
        assert detail(client.post(url, json={"size": 10, "sha256": "0" * 64, "kind": "weights"}), 422) == \
            "body.kind: Input should be 'image' or 'model'"

        upload, completed = _complete_model(client, b"plain text, no tarball\n" * 100, "weights.tar.gz")
        message = detail(completed, 422)
        assert message.startswith(f"upload {upload['id']} (weights.tar.gz): model tarball: not a readable tarball")
        assert str(seeded.settings.home) not in message  # the server's own paths stay on the server
        assert detail(client.get(f"/api/v1/uploads/{upload['id']}"), 409) == \
            f"upload {upload['id']} is failed; start a new one"
        assert not models.exists() or not any(models.iterdir())  # nothing stored

        tarball = gc_phase.model_tarball(tmp_path / "model.tar.gz", 0.25)
        digest = "sha256:" + hashlib.sha256(tarball.read_bytes()).hexdigest()
        model, completed = _complete_model(client, tarball.read_bytes(), "model.tar.gz")
        assert completed.status_code == 200, completed.text
        assert (completed.json()["state"], completed.json()["model_digest"]) == ("complete", digest)
        assert completed.json()["image_digest"] is None
        stored = layout.model_url(seeded.settings, digest)
        with open(stored, "rb") as file:
            assert file.read() == tarball.read_bytes()

        submissions = "/api/v1/challenges/toy/phases/test/submissions"
        image = seeded.upload("alice", "complete")
        assert detail(client.post(submissions, json={"upload_id": image, "model_upload_id": image}), 422) == \
            f"model_upload_id: upload {image} is an image, not a model tarball"
        assert detail(client.post(submissions, json={"upload_id": model["id"]}), 422) == \
            f"upload_id: upload {model['id']} is a model tarball, not an image"
        bobs = seeded.upload("bob", "complete", kind="model")
        assert detail(client.post(submissions, json={"upload_id": image, "model_upload_id": bobs}), 404) == \
            f"no upload {bobs}"
        assert client.get(f"/api/v1/uploads/{image}").json()["state"] == "complete"  # nothing half-written

        created = client.post(submissions, json={"upload_id": image, "model_upload_id": model["id"]})
        assert created.status_code == 201, created.text
        assert created.json()["model_digest"] == digest
        assert client.get(f"/api/v1/submissions/{created.json()['id']}").json()["model_digest"] == digest
        assert client.get(f"/api/v1/uploads/{model['id']}").json()["state"] == "used"
        again = seeded.upload("alice", "complete")
        assert detail(client.post(submissions, json={"upload_id": again, "model_upload_id": model["id"]}), 409) == \
            f"upload {model['id']} was submitted already"
    served_normally(server)
