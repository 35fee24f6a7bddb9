"""Who may use the server: API keys and their scopes, and the Host a request names.

With no key configured the server is open (and says so when it starts). With
keys, every path but /health and /ready (and /metrics, unless it is keyed)
needs ``Authorization: Bearer <key>``; publishing evaluation results needs an
admin key. Keys come from settings (flags, ``PONDER_API_KEYS``) and from a
keys file, read again when it changes. The Host check keeps a gateway on a
loopback address out of reach of DNS rebinding.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass, replace
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ponder.server.admission import COMPLETION_PATHS
from ponder.server.errors import PonderError, TooManyRequests, send_error
from ponder.server.rate_limits import RateLimit, RateLimiter, key_id

#: Paths that stay open with keys configured: probes must not need a secret.
OPEN_PATHS = frozenset({"/health", "/ready"})
#: (method, path) that change what every user sees: admin keys only.
ADMIN_CALLS = frozenset({("POST", "/v1/eval/results")})
#: The names a loopback-bound server answers to by default.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


class Unauthenticated(PonderError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(PonderError):
    status = 403
    type = "permission_error"
    code = "insufficient_scope"


class BadHost(PonderError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_host"


#: No limit of requests, tokens or concurrency.
UNLIMITED = RateLimit()


@dataclass(frozen=True, slots=True)
class ApiKey:
    secret: bytes
    admin: bool
    limit: RateLimit = UNLIMITED

    @property
    def id(self) -> str:
        return key_id(self.secret)


class KeyRing:
    """Keys from settings and from a keys file: a key per line, then ``admin`` for the
    admin scope and ``rpm=N``, ``tpm=N``, ``concurrent=N`` for limits of its own (else
    ``limit``'s), ``#`` comments. The file is read again when its size or time change."""

    def __init__(
        self,
        keys: list[str],
        admin_keys: list[str],
        file: Path | None = None,
        limit: RateLimit = UNLIMITED,
    ) -> None:
        self.limit = limit
        self._fixed = [ApiKey(k.encode(), False, limit) for k in keys] + [
            ApiKey(k.encode(), True, limit) for k in admin_keys
        ]
        self._file = file
        self._stamp: tuple[int, int] | None = None
        self._from_file: list[ApiKey] = []
        self.keys()  # a keys file that cannot be read fails at start, not per request

    def keys(self) -> list[ApiKey]:
        if self._file is not None:
            stat = self._file.stat()
            stamp = (stat.st_size, stat.st_mtime_ns)
            if stamp != self._stamp:
                self._from_file = read_keys_file(self._file, self.limit)
                self._stamp = stamp
        return self._fixed + self._from_file

    def find(self, presented: str, keys: list[ApiKey] | None = None) -> ApiKey | None:
        """The key ``presented`` is, compared in constant time with every key (of ``keys``,
        when the caller has read them already)."""
        given = presented.encode()
        found = None
        for key in self.keys() if keys is None else keys:
            if hmac.compare_digest(given, key.secret) and found is None:
                found = key
        return found


_LIMIT_WORDS = {
    "rpm": "requests_per_minute",
    "tpm": "tokens_per_minute",
    "concurrent": "concurrent",
}


def read_keys_file(path: Path, limit: RateLimit = UNLIMITED) -> list[ApiKey]:
    keys = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        admin, own = False, {}
        for word in words[1:]:
            name, _, value = word.partition("=")
            if word == "admin":
                admin = True
            elif name in _LIMIT_WORDS and value.isdigit() and int(value) > 0:
                own[_LIMIT_WORDS[name]] = int(value)
            else:
                raise ValueError(
                    f"{path}:{number}: a key, then 'admin' or rpm=N, tpm=N, concurrent=N "
                    f"(not {word!r})"
                )
        keys.append(ApiKey(words[0].encode(), admin, replace(limit, **own)))
    return keys


def default_allowed_hosts(bind: str) -> list[str]:
    """Loopback names for a server bound to a loopback address; any name otherwise."""
    try:
        loopback = ipaddress.ip_address(bind.strip("[]")).is_loopback
    except ValueError:
        loopback = bind == "localhost"
    return list(LOOPBACK_HOSTS) if loopback else ["*"]


class Access:
    """ASGI middleware: the Host check, then the API key and its scope."""

    def __init__(
        self,
        app: ASGIApp,
        ring: KeyRing,
        *,
        allowed_hosts: list[str],
        metrics_open: bool,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.app = app
        self.ring = ring
        self.limiter = limiter
        self.allowed_hosts = allowed_hosts
        self.open_paths = OPEN_PATHS | ({"/metrics"} if metrics_open else set())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        host = headers.get(b"host", b"").decode("latin-1")
        if not self._host_allowed(host):
            await send_error(send, BadHost(f"this server does not answer to host {host!r}"))
            return
        path, method = scope["path"], scope["method"]
        keys = [] if path in self.open_paths else self.ring.keys()  # one look at the file
        if not keys:
            await self.app(scope, receive, send)
            return
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        key = self.ring.find(token.strip(), keys) if scheme.lower() == "bearer" else None
        if key is None:
            await send_error(
                send,
                Unauthenticated(
                    "a valid API key is needed: Authorization: Bearer <key>"
                    if not token
                    else "the API key is not valid"
                ),
                headers=[(b"www-authenticate", b"Bearer")],
            )
            return
        if (method, path) in ADMIN_CALLS and not key.admin:
            await send_error(send, Forbidden(f"{method} {path} needs an admin key"))
            return
        if self.limiter is None or path not in COMPLETION_PATHS or not key.limit.any:
            await self.app(scope, receive, send)
            return
        await self._limited(key, self.limiter, scope, receive, send)

    async def _limited(
        self, key: ApiKey, limiter: RateLimiter, scope: Scope, receive: Receive, send: Send
    ) -> None:
        decision = await limiter.admit(key.id, key.limit)
        if not decision.allowed:
            retry = (b"retry-after", str(max(1, round(decision.retry_after))).encode())
            error = TooManyRequests(decision.reason, code="rate_limit_exceeded")
            await send_error(send, error, headers=[retry, *decision.headers])
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], *decision.headers]}
            await send(message)

        async def spend(tokens: int) -> None:
            await limiter.spend(key.id, tokens)

        # The serving layer reports what the engines spent (request.state.spend_tokens).
        scope.setdefault("state", {})["spend_tokens"] = spend
        try:
            await self.app(scope, receive, with_headers)
        finally:
            await limiter.release(key.id, key.limit)

    def _host_allowed(self, host: str) -> bool:
        # No Host header (HTTP/1.0, a raw ASGI call) names no other site to rebind.
        if not host or "*" in self.allowed_hosts:
            return True
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name.lower() in self.allowed_hosts
