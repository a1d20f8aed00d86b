"""A seeded database for the API tests: challenges, users in every role, submissions in every state."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from medarena.platform import leaderboard, organizer
from medarena.platform.account_tables import Upload
from medarena.platform.database import Job, MetricValue, Submission, session_scope, utcnow
from medarena.platform.settings import Settings
from medarena.platform.submissions import find_phase
from medarena.services import accounts
from medarena.services.uploads import uploads_root
from tests.platform.challenge_data import write_definition, write_source

ROLES = ("anonymous", "other", "owner", "other_organizer", "organizer", "admin")
USERS = {"other": "bob", "owner": "alice", "other_organizer": "olga", "organizer": "oscar", "admin": "ada"}
PASSWORDS = {name: f"pw-{name}-{secrets.token_hex(4)}" for name in USERS.values()}
PHASES = [
    {"slug": "test", "opens": "2020-01-01T00:00:00Z", "submission_limit": 100, "leaderboard_public": True,
     "case_results_public": True},
    {"slug": "final", "opens": "2020-01-01T00:00:00Z", "submission_limit": 100, "leaderboard_public": False},
    {"slug": "extra", "submission_limit": 100},
    {"slug": "limited", "opens": "2020-01-01T00:00:00Z", "submission_limit": 1},
]


@dataclass
class World:
    settings: Settings
    finished: dict[str, int] = field(default_factory=dict)  # phase -> alice's finished submission
    cancellable: dict[str, int] = field(default_factory=dict)  # role -> alice's queued submission
    reevaluable: dict[str, int] = field(default_factory=dict)  # role -> alice's ended submission (final)
    open_uploads: dict[str, str] = field(default_factory=dict)  # role -> alice's empty upload
    full_uploads: dict[str, str] = field(default_factory=dict)  # role -> alice's upload with every part (no image)
    complete_uploads: dict[str, str] = field(default_factory=dict)  # role -> alice's completed upload
    pending: dict[str, str] = field(default_factory=dict)  # role -> a user awaiting approval in toy
    alice_token_id: int = 0

    def upload(self, username: str, state: str, content: bytes = b"", phase: str = "test", kind: str = "image") -> str:
        """An upload of the user's made directly in the database (``complete``: as if its image loaded)."""
        return _upload(self.settings, _ids(self.settings, [username])[0], state, content, phase, kind)

    def token(self, role: str, name: str = "test") -> str | None:
        """A fresh personal token of the role's user (None for the anonymous caller)."""
        if role == "anonymous":
            return None
        return accounts.create_token(self.settings, USERS[role], name, 1)[0]


def seed_world(settings: Settings, home: Path) -> World:
    world = World(settings)
    organizer.create_challenge(settings, write_definition(home / "toy.yaml", phases=PHASES))
    organizer.create_challenge(settings, write_definition(home / "other.yaml", slug="other", title="Other"))
    organizer.create_challenge(settings, write_definition(home / "reg.yaml", slug="reg", title="Registration"))
    organizer.create_challenge(settings, write_definition(home / "approval.yaml", slug="approval", title="Approval",
                                                          registration_needs_approval=True))
    source = write_source(home / "source", n=3)
    for phase in ("test", "final", "limited"):
        organizer.ingest_phase(settings, "toy", phase, source)
    accounts.add_user(settings, "ada", PASSWORDS["ada"], admin=True)
    accounts.add_user(settings, "oscar", PASSWORDS["oscar"], organizer_of=["toy"])
    accounts.add_user(settings, "olga", PASSWORDS["olga"], organizer_of=["other"])
    for name in ("alice", "bob"):
        accounts.add_user(settings, name, PASSWORDS[name])
        accounts.grant_role(settings, name, "toy", "participant")
    for role in ROLES:
        accounts.add_user(settings, f"pending-{role}", "pending-password")
        accounts.grant_role(settings, f"pending-{role}", "toy", "participant")
        world.pending[role] = f"pending-{role}"
    with session_scope(settings.database_url) as session:
        from sqlalchemy import update

        from medarena.platform.account_tables import ChallengeRole

        session.execute(update(ChallengeRole).where(ChallengeRole.role == "participant",
                                                    ChallengeRole.user_id.in_(_ids(session, world.pending.values())))
                        .values(state="pending"))
    _, world.alice_token_id = accounts.create_token(settings, "alice", "kept", 30)
    alice = _ids(settings, ["alice"])[0]
    world.finished["test"] = _submission(settings, "test", alice, "succeeded", score=0.9)
    world.finished["final"] = _submission(settings, "final", alice, "succeeded", score=0.8)
    _submission(settings, "test", _ids(settings, ["bob"])[0], "succeeded", score=0.5,
                participant="bob")
    for role in ROLES:
        world.cancellable[role] = _submission(settings, "test", alice, "queued")
        world.reevaluable[role] = _submission(settings, "final", alice, "failed")
        world.open_uploads[role] = _upload(settings, alice, "open", b"")
        world.full_uploads[role] = _upload(settings, alice, "open", b"not an image archive\n" * 5000)
        world.complete_uploads[role] = _upload(settings, alice, "complete", b"")
    with session_scope(settings.database_url) as session:
        for slug in ("test", "final"):
            phase, _ = find_phase(session, "toy", slug)
            leaderboard.rank_phase(session, phase)
    return world


def _ids(session_or_settings, names) -> list[int]:
    from sqlalchemy import select

    from medarena.platform.account_tables import User

    if isinstance(session_or_settings, Settings):
        with session_scope(session_or_settings.database_url) as session:
            return list(session.scalars(select(User.id).where(User.username.in_(list(names))).order_by(User.id)))
    return list(session_or_settings.scalars(select(User.id).where(User.username.in_(list(names)))))


def _submission(settings: Settings, phase: str, user_id: int, state: str, score: float = 0.5,
                participant: str = "alice") -> int:
    """A submission with one job per case; ended ones with a dice per case and logs."""
    with session_scope(settings.database_url) as session:
        phase_row, _ = find_phase(session, "toy", phase)
        submission = Submission(phase=phase_row, participant=participant, image="img",
                                image_digest="sha256:" + "0" * 64, state=state, submitter_id=user_id,
                                created_at=utcnow() - dt.timedelta(hours=2))
        session.add(submission)
        for i, case in enumerate(phase_row.cases):
            job = Job(case=case, state=state if state != "failed" else "failed",
                      stdout_tail=f"stdout of {participant} {case.name}", stderr_tail=f"stderr of {case.name}",
                      platform_log="node lost once", reason="exit_code" if state == "failed" else None,
                      runtime_seconds=1.5)
            if state == "succeeded":
                job.metrics.append(MetricValue(label="fg", metric="dice", value=score - 0.01 * i))
                job.metrics.append(MetricValue(label="fg", metric="hd95", value=1.0 + i))
            submission.jobs.append(job)
        session.flush()
        if state in ("succeeded", "failed"):
            leaderboard.summarize_submission(session, submission)
        return submission.id


def _upload(settings: Settings, user_id: int, state: str, content: bytes, phase: str = "test",
            kind: str = "image") -> str:
    upload_id = secrets.token_hex(16)
    with session_scope(settings.database_url) as session:
        phase_row, _ = find_phase(session, "toy", phase)
        size = max(len(content), 1)
        session.add(Upload(id=upload_id, user_id=user_id, phase_id=phase_row.id, filename="x.tar", size=size,
                           sha256=hashlib.sha256(content).hexdigest(), part_size=64 << 10, state=state, kind=kind,
                           image_digest="sha256:" + "0" * 64 if state == "complete" else None,
                           created_at=utcnow(), expires_at=utcnow() + dt.timedelta(hours=1)))
    if state == "open":
        folder = uploads_root(settings) / upload_id
        folder.mkdir(parents=True)
        (folder / "data").write_bytes(content)
    return upload_id
