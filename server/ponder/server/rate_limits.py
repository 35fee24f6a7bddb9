"""Per-key limits: requests and tokens per minute, and requests at once.

Counts live in fixed one-minute windows, in process or in Redis (then every
gateway that shares the Redis shares each key's budget). Tokens are counted
after a request, on what the engines spent (prompt and completion tokens
billed), so a request is admitted while the key's minute has tokens left and
may end past it; the next waits for the window to turn. A Redis that fails
lets requests through (and logs it): limits must not take the service down.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60


@dataclass(frozen=True, slots=True)
class RateLimit:
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    concurrent: int | None = None

    @property
    def any(self) -> bool:
        return any(
            v is not None
            for v in (self.requests_per_minute, self.tokens_per_minute, self.concurrent)
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a request may go on, and what the ``x-ratelimit-*`` headers say."""

    allowed: bool
    reason: str = ""
    retry_after: float = 0.0
    headers: tuple[tuple[bytes, bytes], ...] = ()


class Counters(Protocol):
    async def add(self, key: str, amount: int, ttl: int) -> int:
        """Add ``amount`` to ``key`` (created with ``ttl`` seconds to live); the new value."""
        ...

    async def get(self, key: str) -> int: ...


class LocalCounters:
    """Counters of one gateway process."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[int, float]] = {}

    async def add(self, key: str, amount: int, ttl: int) -> int:
        now = time.monotonic()
        value, expires = self._values.get(key, (0, now + ttl))
        if expires <= now:
            value, expires = 0, now + ttl
        self._values[key] = (value + amount, expires)
        if len(self._values) > 100_000:  # windows of keys gone quiet
            self._values = {k: v for k, v in self._values.items() if v[1] > now}
        return value + amount

    async def get(self, key: str) -> int:
        value, expires = self._values.get(key, (0, 0.0))
        return value if expires > time.monotonic() else 0


class RedisCounters:
    """Counters every gateway on the same Redis shares."""

    def __init__(self, url: str, *, timeout: float) -> None:
        self._redis: Redis = Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    async def add(self, key: str, amount: int, ttl: int) -> int:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incrby(key, amount)
            pipe.expire(key, ttl, nx=True)
            value, _ = await pipe.execute()
        return int(value)

    async def get(self, key: str) -> int:
        value = await self._redis.get(key)
        return int(value or 0)

    async def aclose(self) -> None:
        await self._redis.aclose()


class RateLimiter:
    #: Wall-clock seconds: windows are clock minutes, the same on every gateway.
    clock: Callable[[], float] = staticmethod(time.time)

    def __init__(self, counters: Counters, *, prefix: str = "ponder:rl") -> None:
        self.counters = counters
        self.prefix = prefix

    def _names(self, key_id: str) -> tuple[str, str, str, float]:
        now = self.clock()
        window = int(now // WINDOW_SECONDS)
        reset = (window + 1) * WINDOW_SECONDS - now
        base = f"{self.prefix}:{key_id}"
        return f"{base}:req:{window}", f"{base}:tok:{window}", f"{base}:conc", reset

    async def admit(self, key_id: str, limit: RateLimit) -> Decision:
        """Count a request of ``key_id`` (and one at once) unless a limit refuses it."""
        requests_key, tokens_key, concurrent_key, reset = self._names(key_id)
        try:
            tokens = await self.counters.get(tokens_key)
            if limit.tokens_per_minute is not None and tokens >= limit.tokens_per_minute:
                return self._refused("tokens per minute", reset, limit, 0, tokens)
            requests = await self.counters.add(requests_key, 1, 2 * WINDOW_SECONDS)
            if limit.requests_per_minute is not None and requests > limit.requests_per_minute:
                return self._refused("requests per minute", reset, limit, requests, tokens)
            if limit.concurrent is not None:
                running = await self.counters.add(concurrent_key, 1, 3600)
                if running > limit.concurrent:
                    await self.counters.add(concurrent_key, -1, 3600)
                    return self._refused("requests at once", 1.0, limit, requests, tokens)
        except RedisError as error:
            logger.warning("rate limits unavailable, request let through: %s", error)
            return Decision(True)
        return Decision(True, headers=_headers(limit, requests, tokens, reset))

    async def release(self, key_id: str, limit: RateLimit) -> None:
        """A request of ``key_id`` has ended."""
        if limit.concurrent is None:
            return
        try:
            await self.counters.add(self._names(key_id)[2], -1, 3600)
        except RedisError as error:
            logger.warning("rate limits unavailable: %s", error)

    async def spend(self, key_id: str, tokens: int) -> None:
        """Tokens the engines spent on a request of ``key_id``."""
        if tokens <= 0:
            return
        try:
            await self.counters.add(self._names(key_id)[1], tokens, 2 * WINDOW_SECONDS)
        except RedisError as error:
            logger.warning("rate limits unavailable: %s", error)

    def _refused(
        self, what: str, retry_after: float, limit: RateLimit, requests: int, tokens: int
    ) -> Decision:
        headers = _headers(limit, requests, tokens, retry_after)
        return Decision(
            False,
            reason=f"this key is over its {what}; retry after {retry_after:.0f} s",
            retry_after=retry_after,
            headers=headers,
        )


def key_id(secret: bytes) -> str:
    """A key's name in counters: never the secret itself."""
    return hashlib.sha256(secret).hexdigest()[:16]


def _headers(
    limit: RateLimit, requests: int, tokens: int, reset: float
) -> tuple[tuple[bytes, bytes], ...]:
    """OpenAI's ``x-ratelimit-*`` headers for the limits that are set."""
    out: list[tuple[bytes, bytes]] = []
    reset_text = f"{max(0.0, reset):.0f}s".encode()
    if limit.requests_per_minute is not None:
        left = max(0, limit.requests_per_minute - requests)
        out += [
            (b"x-ratelimit-limit-requests", str(limit.requests_per_minute).encode()),
            (b"x-ratelimit-remaining-requests", str(left).encode()),
            (b"x-ratelimit-reset-requests", reset_text),
        ]
    if limit.tokens_per_minute is not None:
        left = max(0, limit.tokens_per_minute - tokens)
        out += [
            (b"x-ratelimit-limit-tokens", str(limit.tokens_per_minute).encode()),
            (b"x-ratelimit-remaining-tokens", str(left).encode()),
            (b"x-ratelimit-reset-tokens", reset_text),
        ]
    return tuple(out)
