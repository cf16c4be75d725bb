"""RequestGuard: an ASGI middleware that refuses what the API cannot take, before the framework parses it.

BentoML 1.4 has no request size limit and accepts any content type as JSON. HAProxy enforces the size limit in
front of the replicas, but a replica reached directly must not be crashable either, so the guard:
  * answers 413 when Content-Length, or the bytes actually received, exceed ``max_body_bytes`` (it never buffers
    more than that);
  * answers 415 when a POST does not declare ``application/json``.
Errors are JSON, shaped like BentoML's own: ``{"error": "...", "detail": [...]}``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_TYPES = ("application/json",)


class RequestGuard:
    def __init__(self, app: Callable[..., Awaitable[None]], max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type not in JSON_TYPES:
            shown = content_type or "none"
            await _reply(send, 415, f"unsupported content type {shown!r}: send the body as application/json")
            return
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await _reply(send, 413, self._too_large(declared))
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body_bytes:
                await _reply(send, 413, self._too_large(f"more than {len(body)}"))
                return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self, size: str) -> str:
        return f"request body of {size} bytes is larger than the limit of {self.max_body_bytes} bytes: send fewer rows"


async def _reply(send: Send, status: int, message: str) -> None:
    payload = json.dumps({"error": message, "detail": []}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
