"""The errors that mean bad input from a person (shown as one line, with an exit code), not a bug."""

from medarena.platform.errors import USER_ERRORS, exit_code

__all__ = ["USER_ERRORS", "exit_code"]
