"""The cache the gateway uses: a store, a time to live, and failures that never fail a request."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

from ponder.server.cache.store import CacheStore
from ponder.server.metrics import Metrics

logger = logging.getLogger(__name__)

#: What a lookup is for: a whole response, or one engine call of a strategy.
Level = Literal["response", "call"]


class Cache:
    """A :class:`CacheStore` behind a timeout and a breaker.

    Any failure of the store (an error, or no answer within ``timeout``) is a
    miss, or a store skipped: the request goes on uncached. The first failure
    of an incident is logged; then the store is left alone for ``cooldown``
    seconds, tried again, and the recovery logged when it answers. Every
    failure is counted in ``ponder_cache_errors_total``.
    """

    def __init__(
        self,
        store: CacheStore,
        *,
        ttl: float,
        timeout: float,
        metrics: Metrics,
        cooldown: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.timeout = timeout
        self.cooldown = cooldown
        self._metrics = metrics
        self._clock = clock
        self._failing = False
        self._resting_until = 0.0

    @property
    def healthy(self) -> bool:
        """Whether the last operation on the store succeeded."""
        return not self._failing

    async def get_many(self, keys: Sequence[str], *, level: Level) -> list[bytes | None]:
        values: list[bytes | None] = [None] * len(keys)
        if keys and not self._resting():
            try:
                values = await asyncio.wait_for(self.store.get_many(keys), self.timeout)
            except Exception as error:
                self._failed("get", error)
            else:
                self._answered()
        hits = sum(1 for value in values if value is not None)
        if hits:
            self._metrics.series(self._metrics.cache_hits, level).inc(hits)
        if len(values) - hits:
            self._metrics.series(self._metrics.cache_misses, level).inc(len(values) - hits)
        return values

    async def get(self, key: str, *, level: Level) -> bytes | None:
        return (await self.get_many([key], level=level))[0]

    async def set_many(self, items: Mapping[str, bytes]) -> None:
        if not items or self._resting():
            return
        try:
            await asyncio.wait_for(self.store.set_many(items, self.ttl), self.timeout)
        except Exception as error:
            self._failed("set", error)
        else:
            self._answered()

    async def aclose(self) -> None:
        try:
            await self.store.aclose()
        except Exception as error:  # closing a dead connection may fail; nothing is lost
            logger.debug("closing the %s cache: %s", self.store.name, error)

    def _resting(self) -> bool:
        return self._failing and self._clock() < self._resting_until

    def _failed(self, operation: str, error: Exception) -> None:
        self._metrics.cache_errors.labels(self.store.name, operation).inc()
        if not self._failing:
            reason = "no answer in time" if isinstance(error, TimeoutError) else repr(error)
            logger.warning(
                "the %s cache failed (%s: %s); serving uncached until it answers again",
                self.store.name,
                operation,
                reason,
            )
        self._failing = True
        self._resting_until = self._clock() + self.cooldown

    def _answered(self) -> None:
        if self._failing:
            logger.warning("the %s cache answers again; caching resumed", self.store.name)
        self._failing = False
