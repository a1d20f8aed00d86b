"""Server-side account management on the local database: `medarena users ...`, `medarena tokens ...`."""

from __future__ import annotations

import secrets
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from medarena.cli_common import fails_cleanly

users_app = typer.Typer(help="Accounts on this server's database.", no_args_is_help=True)
tokens_app = typer.Typer(help="Personal API tokens on this server's database.", no_args_is_help=True)
console = Console()


def _settings():
    from medarena.services.settings import load_settings

    return load_settings()


def new_password() -> str:
    return secrets.token_urlsafe(12)


@users_app.command("add")
@fails_cleanly
def users_add(username: str,
              admin: Annotated[bool, typer.Option(help="a site admin")] = False,
              organizer_of: Annotated[list[str] | None, typer.Option("--organizer-of", help="challenge slug")] = None,
              password: Annotated[str | None, typer.Option(
                  help="the password (default: ask; with --random-password: generated and printed)")] = None,
              random_password: Annotated[bool, typer.Option(help="generate a password and print it")] = False):
    """Create a user."""
    from medarena.services import accounts

    if password is None:
        password = new_password() if random_password else typer.prompt("password", hide_input=True,
                                                                           confirmation_prompt=True)
    accounts.add_user(_settings(), username, password, admin=admin, organizer_of=organizer_of or [])
    console.print(Text(f"created user {username}" + (f" with password {password}" if random_password else "")))


@users_app.command("list")
@fails_cleanly
def users_list():
    """List the users with their roles."""
    from medarena.services import accounts

    table = Table("user", "admin", "disabled", "roles", "created")
    for user in accounts.list_users(_settings()):
        table.add_row(Text(user["username"]), "yes" if user["admin"] else "", "yes" if user["disabled"] else "",
                      Text(", ".join(user["roles"])), f"{user['created_at']:%Y-%m-%d %H:%M}")
    console.print(table)


@users_app.command("disable")
@fails_cleanly
def users_disable(username: str, enable: Annotated[bool, typer.Option(help="enable again instead")] = False):
    """Disable a user: their tokens stop working (within 5 s on a running server) and they cannot log in."""
    from medarena.services import accounts

    accounts.set_disabled(_settings(), username, disabled=not enable)
    console.print(Text(f"{'enabled' if enable else 'disabled'} user {username}"))


@users_app.command("grant")
@fails_cleanly
def users_grant(username: str, challenge: Annotated[str, typer.Option("--challenge", "-c")],
                role: Annotated[str, typer.Option(help="organizer or participant")] = "organizer"):
    """Give a user a role in a challenge."""
    from medarena.services import accounts

    accounts.grant_role(_settings(), username, challenge, role)
    console.print(Text(f"{username} is {role} of {challenge}"))


@tokens_app.command("create")
@fails_cleanly
def tokens_create(username: str, name: Annotated[str, typer.Option(help="what the token is for")],
                  days: Annotated[float | None, typer.Option(help="days until it expires (default: never)")] = None):
    """Create a personal API token for a user; it is printed once and never stored."""
    from medarena.services import accounts

    token, token_id = accounts.create_token(_settings(), username, name, days)
    console.print(Text(f"token {token_id} for {username}: {token}"))
    console.print("keep it now: it is not shown again", style="dim")


@tokens_app.command("list")
@fails_cleanly
def tokens_list(username: Annotated[str | None, typer.Argument()] = None):
    """List tokens (never their values)."""
    from medarena.services import accounts

    table = Table("id", "user", "name", "kind", "created", "expires", "revoked", "last used")
    for row in accounts.list_tokens(_settings(), username):
        table.add_row(str(row["id"]), Text(row["user"] or ""), Text(row["name"]), row["kind"],
                      *[f"{row[k]:%Y-%m-%d %H:%M}" if row[k] else "" for k in
                        ("created_at", "expires_at", "revoked_at", "last_used_at")])
    console.print(table)


@tokens_app.command("revoke")
@fails_cleanly
def tokens_revoke(token_id: int):
    """Revoke a token (a running server refuses it within 5 s)."""
    from medarena.services import accounts

    accounts.revoke_token(_settings(), token_id)
    console.print(f"revoked token {token_id}")
