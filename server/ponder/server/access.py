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
from dataclasses import dataclass
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from ponder.server.errors import PonderError, send_error

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


@dataclass(frozen=True, slots=True)
class ApiKey:
    secret: bytes
    admin: bool


class KeyRing:
    """Keys from settings and from a keys file: a key per line, ``admin`` after it for
    the admin scope, ``#`` comments. The file is read again when its size or time change."""

    def __init__(self, keys: list[str], admin_keys: list[str], file: Path | None = None) -> None:
        self._fixed = [ApiKey(k.encode(), False) for k in keys] + [
            ApiKey(k.encode(), True) for k in admin_keys
        ]
        self._file = file
        self._stamp: tuple[int, int] | None = None
        self._from_file: list[ApiKey] = []
        self.keys()  # a keys file that cannot be read fails at start, not per request

    @property
    def configured(self) -> bool:
        return bool(self.keys())

    def keys(self) -> list[ApiKey]:
        if self._file is not None:
            stat = self._file.stat()
            stamp = (stat.st_size, stat.st_mtime_ns)
            if stamp != self._stamp:
                self._from_file = read_keys_file(self._file)
                self._stamp = stamp
        return self._fixed + self._from_file

    def find(self, presented: str) -> ApiKey | None:
        """The key ``presented`` is, compared in constant time with every key."""
        given = presented.encode()
        found = None
        for key in self.keys():
            if hmac.compare_digest(given, key.secret) and found is None:
                found = key
        return found


def read_keys_file(path: Path) -> list[ApiKey]:
    keys = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and words[1] != "admin"):
            raise ValueError(f"{path}:{number}: a key, then nothing or 'admin'")
        keys.append(ApiKey(words[0].encode(), len(words) == 2))
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
        self, app: ASGIApp, ring: KeyRing, *, allowed_hosts: list[str], metrics_open: bool
    ) -> None:
        self.app = app
        self.ring = ring
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
        if path in self.open_paths or not self.ring.configured:
            await self.app(scope, receive, send)
            return
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        key = self.ring.find(token.strip()) if scheme.lower() == "bearer" else None
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
        await self.app(scope, receive, send)

    def _host_allowed(self, host: str) -> bool:
        # No Host header (HTTP/1.0, a raw ASGI call) names no other site to rebind.
        if not host or "*" in self.allowed_hosts:
            return True
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name.lower() in self.allowed_hosts
