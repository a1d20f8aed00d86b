"""The use cases (register, submit, follow, rank...) and the access rules, for the command line,
the API and the dashboard alike.

Each function takes the settings and the caller's identity (``None`` for an anonymous viewer, an
:class:`~medarena.accounts.tokens.Identity` otherwise) and decides through :mod:`.access` what the
caller may see and do. What a caller may not see raises :class:`~medarena.errors.NotFound`.
"""
