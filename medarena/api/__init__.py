"""The HTTP API: a FastAPI application over :mod:`medarena.services` (no rules of its own)."""
