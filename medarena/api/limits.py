"""Request body size limits, enforced before and while a body is read."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from medarena.errors import PayloadTooLarge
from medarena.services.uploads import MAX_PART

JSON_LIMIT = 2 << 20  # a challenge definition fits with room to spare


def limit_for(path: str) -> int:
    return MAX_PART if "/parts/" in path else JSON_LIMIT


class BodyLimit:
    """Refuse a body over its limit: at once from its Content-Length, or as soon as more arrives."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _too_large(send, limit)
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLarge(f"request body: more than {limit} bytes")
            return message

        await self.app(scope, counted, send)


async def _too_large(send: Send, limit: int) -> None:
    import json

    body = json.dumps({"detail": f"request body: more than {limit} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
