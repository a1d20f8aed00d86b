"""What the command modules share: known errors end in one line and their exit code."""

from __future__ import annotations

import functools

import typer
from rich.console import Console
from rich.text import Text

from medarena.display import plain

err = Console(stderr=True)


def fails_cleanly(fn):
    """Known errors become one line on stderr (plain text, never markup, control characters made
    visible) and their exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from medarena.services.errors import USER_ERRORS, exit_code

        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as exc:
            err.print(Text.assemble(("error:", "red"), " ", plain(exc)), soft_wrap=True)
            raise typer.Exit(exit_code(exc)) from None

    return wrapper
