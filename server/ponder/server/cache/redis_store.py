"""The shared back end: Redis through redis-py's asyncio client and its connection pool."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


class RedisStore:
    """Entries in Redis, shared by every gateway (and worker) that uses the same URL.

    Calls fail fast: ``timeout`` seconds to connect and to answer, so that a
    sick Redis costs a request at most that long (the :class:`Cache` caps the
    whole operation at the same). One immediate retry on a connection error:
    after Redis restarts, pooled connections are dead until used once.
    """

    name = "redis"

    def __init__(self, url: str, *, timeout: float, max_connections: int = 64) -> None:
        self.url = url
        self._redis: Redis = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            max_connections=max_connections,
            retry=Retry(NoBackoff(), 1),
        )

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        values = await self._redis.mget(list(keys))
        # Without decode_responses Redis answers bytes; str never comes back.
        return [value if not isinstance(value, str) else value.encode() for value in values]

    async def set_many(self, items: Mapping[str, bytes], ttl: float) -> None:
        if not items:
            return
        milliseconds = max(1, int(ttl * 1000))
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, value in items.items():
                pipe.set(key, value, px=milliseconds)
            await pipe.execute()

    async def aclose(self) -> None:
        await self._redis.aclose()
