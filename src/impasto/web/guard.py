"""The guard in front of the web app (ASGI middleware): the token, the Host and Origin checks, the request size
limit, and the headers every answer carries (see :mod:`impasto.web.app` for what each check is for)."""

from __future__ import annotations

import contextlib
import hmac
import json
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .config import LOOPBACK_NAMES, ServerConfig
from .forms import TooLarge

#: The page may load and connect to this server only (and show the pictures the user picked: blob: URLs).
PAGE_POLICY = (b"default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
               b"connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")  # fmt: skip
TOKEN_COOKIE = "impasto_token"


class Guard:
    """ASGI middleware in front of everything: the token, the Host and Origin checks and the request size limit."""

    def __init__(self, app: Any, config: ServerConfig) -> None:
        self.app, self.config = app, config

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        from starlette.datastructures import Headers

        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cfg = self.config
        headers = Headers(scope=scope)
        if cfg.loopback:  # a page on another site cannot reach us through a name that resolves here
            host = urlsplit("//" + headers.get("host", "")).hostname or ""
            if host.lower() not in LOOPBACK_NAMES | {cfg.host.lower()}:
                await _send_error(send, 400, f"unexpected Host header '{host[:60]}': use http://127.0.0.1:{cfg.port}/")
                return
        set_cookie = None
        if cfg.token:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            auth = headers.get("authorization", "")
            cookie = SimpleCookie()
            with contextlib.suppress(Exception):
                cookie.load(headers.get("cookie", ""))
            given = [
                auth[7:] if auth.lower().startswith("bearer ") else None,
                headers.get("x-impasto-token"),
                cookie[TOKEN_COOKIE].value if TOKEN_COOKIE in cookie else None,
                *(query.get("token") or [None]),
            ]
            if not any(g and hmac.compare_digest(g.encode(), cfg.token.encode()) for g in given):
                await _send_error(send, 401, "missing or wrong token: send 'Authorization: Bearer TOKEN' or open "
                                  "/?token=TOKEN once", {"www-authenticate": "Bearer"})  # fmt: skip
                return
            if query.get("token"):
                set_cookie = f"{TOKEN_COOKIE}={cfg.token}; HttpOnly; SameSite=Strict; Path=/"
        if scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            origin = headers.get("origin")
            if origin is not None and urlsplit(origin).netloc != headers.get("host"):  # "null" has no netloc
                await _send_error(send, 403, f"cross-site request from {origin[:80]} refused")
                return
            length = headers.get("content-length")
            if length and length.isdigit() and int(length) > cfg.max_upload_bytes:
                await _send_error(send, 413, self._too_large())
                return
        received = 0
        started = False

        async def counted_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cfg.max_upload_bytes:
                    raise TooLarge
            return message

        async def send_with_cookie(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                # same-origin: other sites learn nothing, and the page's own requests carry its origin (with
                # no-referrer, browsers send "Origin: null" from it, which the check above refuses)
                extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]
                if scope["path"] == "/":
                    extra.append((b"content-security-policy", PAGE_POLICY))
                if set_cookie:
                    extra.append((b"set-cookie", set_cookie.encode()))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, counted_receive, send_with_cookie)
        except TooLarge:
            if not started:
                await _send_error(send, 413, self._too_large())

    def _too_large(self) -> str:
        return f"upload too large: more than {self.config.max_upload_bytes / (1 << 20):.3g} MB in one request"


async def _send_error(send: Any, status: int, message: str, extra: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
