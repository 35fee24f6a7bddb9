"""The in-process store's bounds and expiry, and the breaker that keeps a failing store
from failing requests (a store that raises on command stands in for a sick Redis)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

import pytest

from ponder.server.cache import Cache, MemoryStore, cache_key, call_keys
from ponder.server.metrics import Metrics
from ponder.strategies.engine import Message, Sampling


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_memory_store_evicts_the_least_recently_used_entry() -> None:
    store = MemoryStore(max_entries=2, max_bytes=10_000)
    await store.set_many({"a": b"1", "b": b"2"}, ttl=60)
    assert await store.get_many(["a"]) == [b"1"]  # a is now the most recent
    await store.set_many({"c": b"3"}, ttl=60)
    assert await store.get_many(["a", "b", "c"]) == [b"1", None, b"3"]
    assert len(store) == 2


async def test_memory_store_stays_under_its_byte_bound() -> None:
    store = MemoryStore(max_entries=100, max_bytes=100)
    for i in range(10):
        await store.set_many({f"k{i}": b"x" * 30}, ttl=60)
        assert store.size <= 100
    assert len(store) == 3
    assert await store.get_many(["k9", "k0"]) == [b"x" * 30, None]
    await store.set_many({"huge": b"x" * 200}, ttl=60)  # bigger than the whole bound
    assert await store.get_many(["huge"]) == [None]
    assert len(store) == 3


async def test_memory_store_entries_expire() -> None:
    clock = Clock()
    store = MemoryStore(max_entries=10, max_bytes=1000, clock=clock)
    await store.set_many({"a": b"1"}, ttl=5)
    clock.now = 4.9
    assert await store.get_many(["a"]) == [b"1"]
    clock.now = 5.0
    assert await store.get_many(["a"]) == [None]
    assert len(store) == 0
    assert store.size == 0


def test_keys_are_versioned_sha256_and_cover_every_field() -> None:
    key = cache_key("response", {"b": 1, "a": [1, 2]})
    assert key.startswith("ponder:v1:response:")
    assert len(key.rsplit(":", 1)[1]) == 64
    assert key == cache_key("response", {"a": [1, 2], "b": 1})  # canonical: order-free
    assert key != cache_key("response", {"a": [2, 1], "b": 1})
    prompt = [Message("user", "hi")]
    seeded = Sampling(seed=1, max_tokens=8)
    base = call_keys("m", prompt, seeded, 4)
    assert len(set(base)) == 4  # one per draft of the batch
    assert call_keys("m", prompt, seeded, 4) == base
    for other in (
        call_keys("m2", prompt, seeded, 4),
        call_keys("m", [Message("user", "ho")], seeded, 4),
        call_keys("m", prompt, Sampling(seed=2, max_tokens=8), 4),
        call_keys("m", prompt, Sampling(seed=1, max_tokens=9), 4),
        call_keys("m", "hi", seeded, 4),
    ):
        assert not set(other) & set(base)
    assert call_keys("m", prompt, seeded, 5)[0] != base[0]  # the batch size is part of a key


class FlakyStore:
    """A store that fails while ``broken`` is set: raising, or hanging past the timeout."""

    name = "flaky"

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.broken: str | None = None
        self.calls = 0

    async def _maybe_fail(self) -> None:
        self.calls += 1
        if self.broken == "raise":
            raise ConnectionError("connection refused")
        if self.broken == "hang":
            await asyncio.sleep(10)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        await self._maybe_fail()
        return [self.data.get(key) for key in keys]

    async def set_many(self, items: Mapping[str, bytes], ttl: float) -> None:
        await self._maybe_fail()
        self.data.update(items)

    async def aclose(self) -> None:
        await self._maybe_fail()


def sample_value(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@pytest.mark.parametrize("failure", ["raise", "hang"])
async def test_a_failing_store_is_a_miss_logged_once_and_retried_after_the_cooldown(
    failure: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    metrics = Metrics()
    store = FlakyStore()
    cache = Cache(store, ttl=60, timeout=0.05, cooldown=1.0, metrics=metrics, clock=clock)
    await cache.set_many({"k": b"v"})
    assert await cache.get("k", level="response") == b"v"

    store.broken = failure
    calls = store.calls
    with caplog.at_level(logging.WARNING, logger="ponder.server.cache.cache"):
        assert await cache.get("k", level="response") is None
        await cache.set_many({"k2": b"v2"})  # resting: not even tried
        assert await cache.get("k", level="response") is None
        assert store.calls == calls + 1  # the failed get only
        clock.now = 1.5  # after the cooldown: tried again, fails again, no new log line
        assert await cache.get("k", level="response") is None
        assert store.calls == calls + 2
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 1
    assert not cache.healthy
    assert sample_value(metrics, "ponder_cache_errors_total", backend="flaky", operation="get") == 2
    assert sample_value(metrics, "ponder_cache_misses_total", level="response") == 3

    store.broken = None
    clock.now = 3.0
    with caplog.at_level(logging.WARNING, logger="ponder.server.cache.cache"):
        assert await cache.get("k", level="response") == b"v"
    assert cache.healthy
    assert any("answers again" in r.getMessage() for r in caplog.records)
    assert sample_value(metrics, "ponder_cache_hits_total", level="response") == 2
    await cache.aclose()


async def test_closing_a_dead_store_does_not_raise() -> None:
    store = FlakyStore()
    store.broken = "raise"
    await Cache(store, ttl=1, timeout=0.05, metrics=Metrics()).aclose()
