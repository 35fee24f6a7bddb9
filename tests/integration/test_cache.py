"""Caching against real engines and a real Redis, through the openai client.

"No engine work" is read from the engine's own counters (tokens it generated,
requests it finished), not from Ponder.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from ponder.server.engines.managed import ManagedEngine
from tests.integration.conftest import (
    MODEL,
    Served,
    gateway_process,
    generation_work,
    looping,
    metric_sum,
    wait_until,
)
from tests.integration.services import RedisServer

TTL = 5


def log_of(gateway: ManagedEngine, since: int = 0) -> str:
    """The gateway's log from byte ``since`` on (a log file named by its port may hold an
    earlier gateway's lines)."""
    assert gateway.log_file is not None
    return gateway.log_file.read_bytes()[since:].decode(errors="replace")


def question() -> str:
    # A prompt no earlier test (or earlier run against the same Redis) has sent.
    return f"Question {uuid.uuid4().hex[:8]}: what is 3 plus 4?"


def ask(client: openai.OpenAI, content: str, **extra: Any) -> tuple[str, Any]:
    """The X-Ponder-Cache header and the parsed completion."""
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": content}],
        max_tokens=extra.pop("max_tokens", 12),
        **extra,
    )
    return raw.headers["x-ponder-cache"], raw.parse()


def openai_client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=120)


def cache_errors(gateway_url: str, operation: str | None = None) -> float:
    """Failed cache operations (of ``operation``, or of any)."""
    labels = {} if operation is None else {"operation": operation}
    return metric_sum(gateway_url, "ponder_cache_errors_total", **labels)


def test_a_repeated_greedy_request_is_a_hit_with_no_engine_work(served: Served) -> None:
    """The in-process cache (the default), on both engines."""
    client = openai.OpenAI(base_url=served.base_url, api_key="unused", max_retries=0)
    content = question()
    header, first = ask(client, content, temperature=0)
    assert header == "miss"
    work = served.generation_work()
    header, second = ask(client, content, temperature=0)
    assert header == "hit"
    assert served.generation_work() == work
    assert second.choices[0].message.content == first.choices[0].message.content
    assert second.usage.completion_tokens == first.usage.completion_tokens
    assert second.id != first.id


def test_a_cached_stream_is_replayed_as_a_stream(served: Served) -> None:
    client = openai.OpenAI(base_url=served.base_url, api_key="unused", max_retries=0)
    content = question()

    def streamed() -> tuple[str, str]:
        with client.chat.completions.with_streaming_response.create(
            model=MODEL,
            messages=[{"role": "user", "content": content}],
            max_tokens=12,
            temperature=0,
            stream=True,
        ) as response:
            text = "".join(
                chunk.choices[0].delta.content or "" for chunk in response.parse() if chunk.choices
            )
            return response.headers["x-ponder-cache"], text

    header, first = streamed()
    assert header == "miss"
    work = served.generation_work()
    header, again = streamed()
    assert header == "hit"
    assert again == first
    assert served.generation_work() == work


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def redis_gateway(
    llamacpp: ManagedEngine, redis_server: RedisServer, logs: Path
) -> Iterator[ManagedEngine]:
    env = {"PONDER_CACHE_TTL": str(TTL), "PONDER_CACHE_COOLDOWN": "0.5"}
    args = ("--engine-url", llamacpp.url + "/v1", "--redis-url", redis_server.url)
    with gateway_process(logs, *args, env=env) as gateway:
        yield gateway


@pytest.fixture
def shared(redis_gateway: ManagedEngine, redis_server: RedisServer) -> openai.OpenAI:
    redis_server.client().flushdb()
    return openai_client(redis_gateway.url)


def test_redis_hit_has_no_engine_work_and_entries_carry_the_ttl(
    shared: openai.OpenAI, redis_server: RedisServer, llamacpp: ManagedEngine
) -> None:
    content = question()
    assert ask(shared, content, seed=1)[0] == "miss"
    work = generation_work(llamacpp, "llamacpp")
    assert ask(shared, content, seed=1)[0] == "hit"
    assert generation_work(llamacpp, "llamacpp") == work
    store = redis_server.client()
    keys = [str(key, "utf-8") if isinstance(key, bytes) else key for key in store.keys("ponder:*")]
    assert {key.split(":")[2] for key in keys} == {"response", "call"}
    assert all(key.startswith("ponder:v1:") for key in keys)
    for key in keys:
        assert 0 < store.pttl(key) <= TTL * 1000


def test_entries_expire_after_the_ttl(shared: openai.OpenAI, llamacpp: ManagedEngine) -> None:
    content = question()
    assert ask(shared, content, temperature=0)[0] == "miss"
    time.sleep(TTL + 0.5)
    work = generation_work(llamacpp, "llamacpp")
    assert ask(shared, content, temperature=0)[0] == "miss"
    assert generation_work(llamacpp, "llamacpp") > work


def test_parallel_drafts_are_distinct_entries(
    shared: openai.OpenAI, redis_server: RedisServer, llamacpp: ManagedEngine
) -> None:
    content = question()
    sc = {"strategy": "self_consistency", "n": 4, "max_tokens": 16}
    _, first = ask(shared, content, seed=11, extra_body={"ponder": {**sc, "trace": True}})
    store = redis_server.client()
    assert len(store.keys("ponder:v1:call:*")) == 4
    assert len(store.keys("ponder:v1:response:*")) == 1
    # Another response (no trace) over the same four calls: all four from the cache.
    work = generation_work(llamacpp, "llamacpp")
    _, second = ask(shared, content, seed=11, extra_body={"ponder": sc})
    assert generation_work(llamacpp, "llamacpp") == work
    first_drafts = [call["output"] for call in first.ponder["trace"]]
    assert len(first_drafts) == 4
    assert second.ponder["answers"] == first.ponder["answers"]


def test_no_store_leaves_nothing_in_redis(shared: openai.OpenAI, redis_server: RedisServer) -> None:
    content = question()
    for _ in range(2):
        header, _ = ask(
            shared, content, temperature=0, extra_body={"ponder": {"cache": "no-store"}}
        )
        assert header == "miss"
    assert redis_server.client().dbsize() == 0


def test_redis_out_of_memory_or_slow_fails_no_request(
    shared: openai.OpenAI, redis_server: RedisServer, redis_gateway: ManagedEngine
) -> None:
    store = redis_server.client()
    store.config_set("maxmemory-policy", "noeviction")
    store.config_set("maxmemory", "1")  # every write is refused with OOM
    try:
        before = cache_errors(redis_gateway.url, "set")
        header, answer = ask(shared, question(), temperature=0)
        assert header == "miss"
        assert answer.choices[0].message.content is not None
        assert cache_errors(redis_gateway.url, "set") > before
    finally:
        store.config_set("maxmemory", "0")

    time.sleep(0.6)  # the breaker's cooldown
    sleeper = threading.Thread(
        target=lambda: redis_server.client().execute_command(  # type: ignore[no-untyped-call]
            "DEBUG", "SLEEP", "2"
        )
    )
    before = cache_errors(redis_gateway.url, "get")
    sleeper.start()
    try:
        time.sleep(0.2)
        header, _ = ask(shared, question(), temperature=0)
        assert header == "miss"
    finally:
        sleeper.join()
    assert cache_errors(redis_gateway.url, "get") > before

    time.sleep(0.6)
    content = question()
    ask(shared, content, temperature=0)
    assert ask(shared, content, temperature=0)[0] == "hit"  # caching came back by itself


def test_stopping_redis_under_load_fails_no_request(
    llamacpp: ManagedEngine, logs: Path, tmp_path: Path
) -> None:
    with RedisServer(tmp_path / "redis") as server:
        env = {"PONDER_CACHE_COOLDOWN": "0.5"}
        args = ("--engine-url", llamacpp.url + "/v1", "--redis-url", server.url)
        with gateway_process(logs, *args, env=env) as gateway:
            assert gateway.log_file is not None
            since = gateway.log_file.stat().st_size  # before any of its cache lines
            client = openai_client(gateway.url)
            statuses: list[str] = []
            lock = threading.Lock()

            def load() -> None:
                # A few prompts again and again: hits while Redis is up.
                header, answer = ask(client, f"Load {len(statuses) % 5}: 2+2?", temperature=0)
                assert answer.choices[0].message.content is not None
                with lock:
                    statuses.append(header)

            def served_more(than: int) -> Callable[[], bool]:
                return lambda: len(statuses) >= than

            with looping(load, load, load):
                wait_until(served_more(6), "requests served while Redis is up")
                server.stop()
                # Found by whichever operation comes first after each cooldown: in this
                # closed loop that can be a set every time (a request's set fails, and the
                # same client's next get falls in the cooldown it starts), so no get is
                # tried until Redis is back: waiting for a get error once hung CI.
                wait_until(lambda: cache_errors(gateway.url) > 0, "the gateway to find Redis gone")
                stopped_at = len(statuses)
                wait_until(served_more(stopped_at + 6), "requests served while Redis is down")
                down = len(statuses) - stopped_at
                server.start()
                wait_until(lambda: "caching resumed" in log_of(gateway, since), "caching to resume")
                restarted_at = len(statuses)
                wait_until(served_more(restarted_at + 6), "requests served after Redis is back")

            assert down > 0, "no request was served while Redis was down"
            assert cache_errors(gateway.url) > 0
            content = question()
            ask(client, content, temperature=0)
            assert ask(client, content, temperature=0)[0] == "hit"
            log = log_of(gateway, since)
            assert log.count("the redis cache failed") == 1  # one incident, one line
            assert "caching resumed" in log
