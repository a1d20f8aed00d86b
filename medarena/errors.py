"""The errors medarena reports to people, each with its HTTP status and command-line exit code.

A leaf module: it imports nothing of the project, so that every layer can raise these. Anything
else that escapes is a bug (HTTP 500, a traceback).
"""

from __future__ import annotations


class MedarenaError(Exception):
    """An error whose message is meant for the person who caused it (one line)."""

    http_status = 500
    exit_code = 1


class UserError(MedarenaError):
    """Bad input from a person: the message says what to fix."""

    http_status = 400


class InvalidInput(UserError):
    """A value (a field, a file, a header) that is not acceptable."""

    http_status = 422


class NotFound(UserError, LookupError):
    """Something that does not exist, or that the caller may not see (never told apart)."""

    http_status = 404


class Conflict(UserError):
    """The request does not fit the current state (a closed phase, a part received twice...)."""

    http_status = 409


class PermissionDenied(UserError):
    """The caller is known and sees the thing, but may not do this with it."""

    http_status = 403


class Unauthenticated(UserError):
    """No credentials, or credentials that are wrong, expired, revoked or of a disabled user."""

    http_status = 401


class TooManyRequests(UserError):
    """A limit on attempts or on submissions is spent for now."""

    http_status = 429


class PayloadTooLarge(UserError):
    """A request body or an upload over its size cap."""

    http_status = 413


class PlatformFault(MedarenaError):
    """The platform itself failed (podman, storage); nothing the caller did wrong."""

    http_status = 503
