"""Routing in the pool: health, least outstanding requests, request affinity, failover."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from ponder.server.engines.discovery import DnsReplicas
from ponder.server.engines.http_engine import EngineKind, HTTPEngine
from ponder.server.engines.pool import EnginePool
from ponder.server.engines.retry import RetryPolicy
from ponder.strategies.engine import (
    EngineRejected,
    EngineTimeout,
    EngineUnavailable,
    Message,
    Prompt,
    Sampling,
    StreamEnd,
    TextDelta,
)

PROMPT = [Message("user", "hi")]


class FakeReplica:
    """The HTTP side of one replica: answers, is down, or hangs on calls (health checks
    still answer: a replica stuck on its work)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.up = True
        self.reject = False
        self.hung = False
        self.health_delay = 0.0
        #: Health checks still to fail as on a kept-alive connection the engine dropped.
        self.health_drops = 0
        self.health_status = 200
        self.chat_calls = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if not self.up:
            raise httpx.ConnectError("refused")
        if request.url.path == "/health":
            await asyncio.sleep(self.health_delay)
            if self.health_drops:
                self.health_drops -= 1
                raise httpx.RemoteProtocolError("Server disconnected")
            return httpx.Response(self.health_status, json={"status": "ok"})
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "m", "owned_by": "vllm"}]})
        self.chat_calls += 1
        if self.hung:
            await asyncio.sleep(3600)
        if self.reject:
            return httpx.Response(400, json={"error": {"message": "bad"}})
        return httpx.Response(
            200,
            json={
                "choices": [{"index": 0, "message": {"content": self.name}, "token_ids": [1]}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1},
            },
        )


def make_pool(*fakes: FakeReplica, timeout: float = 300.0, silences: int = 3) -> EnginePool:
    return EnginePool(
        [
            HTTPEngine(
                f"http://{f.name}",
                kind=EngineKind.VLLM,
                timeout=timeout,
                retry=RetryPolicy(attempts=1, backoff_base=0.0),
                transport=httpx.MockTransport(f),
                stream_calls=False,
            )
            for f in fakes
        ],
        health_interval=3600,
        health_silences=silences,
        health_timeout=0.1,
    )


async def test_not_ready_until_a_replica_answers() -> None:
    a = FakeReplica("a")
    a.up = False
    pool = make_pool(a)
    await pool.check()
    assert not pool.ready
    assert pool.models() == []
    with pytest.raises(EngineUnavailable):
        await pool.session("m").generate(PROMPT, sampling=Sampling())
    a.up = True
    await pool.check()
    assert pool.ready
    assert pool.models() == ["m"]
    await pool.aclose()


async def test_least_outstanding_replica_is_picked() -> None:
    pool = make_pool(FakeReplica("a"), FakeReplica("b"))
    await pool.check()
    busy, idle = pool.replicas
    busy.outstanding = 3
    assert pool.pick("m") is idle
    idle.outstanding = 5
    assert pool.pick("m") is busy
    await pool.aclose()


async def test_a_request_sticks_to_one_replica() -> None:
    a, b = FakeReplica("a"), FakeReplica("b")
    pool = make_pool(a, b)
    await pool.check()
    session = pool.session("m")
    texts = set()
    for _ in range(4):
        generation = await session.generate(PROMPT, sampling=Sampling())
        texts.add(generation.choices[0].text)
        # The other replica looks idler, but the session stays.
        session.replica.outstanding += 10  # type: ignore[union-attr]
    assert len(texts) == 1
    await pool.aclose()


async def test_a_failed_replica_is_left_for_another_and_marked_down() -> None:
    a, b = FakeReplica("a"), FakeReplica("b")
    pool = make_pool(a, b)
    await pool.check()
    session = pool.session("m")
    first = (await session.generate(PROMPT, sampling=Sampling())).choices[0].text
    {"a": a, "b": b}[first].up = False
    second = (await session.generate(PROMPT, sampling=Sampling())).choices[0].text
    assert second != first
    assert len(pool.healthy_replicas("m")) == 1
    await pool.aclose()


async def test_a_rejected_request_does_not_fail_over() -> None:
    a, b = FakeReplica("a"), FakeReplica("b")
    a.reject = b.reject = True
    pool = make_pool(a, b)
    await pool.check()
    with pytest.raises(EngineRejected):
        await pool.session("m").generate(PROMPT, sampling=Sampling())
    assert a.chat_calls + b.chat_calls == 1
    assert len(pool.healthy_replicas("m")) == 2
    await pool.aclose()


class FakeDns:
    """Addresses of a name, changed by the test; ``fail`` makes lookups fail."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)
        self.fail = False

    async def __call__(self, host: str) -> list[str]:
        assert host == "engines.ns.svc"
        if self.fail:
            raise OSError("no answer")
        return list(self.addresses)


def dns_pool(dns: FakeDns, fakes: dict[str, FakeReplica]) -> EnginePool:
    async def route(request: httpx.Request) -> httpx.Response:
        return await fakes[request.url.host](request)

    def make(url: str) -> HTTPEngine:
        return HTTPEngine(
            url,
            kind=EngineKind.VLLM,
            retry=RetryPolicy(attempts=1, backoff_base=0.0),
            transport=httpx.MockTransport(route),
            stream_calls=False,
        )

    return EnginePool(
        [],
        health_interval=3600,
        dns=[DnsReplicas("http://engines.ns.svc:8000/v1", resolver=dns)],
        dns_interval=3600,
        make_replica=make,
    )


async def test_replicas_follow_the_addresses_of_a_dns_name() -> None:
    fakes = {ip: FakeReplica(ip) for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3")}
    dns = FakeDns("10.0.0.1")
    pool = dns_pool(dns, fakes)
    await pool.start()
    assert [r.base_url for r in pool.replicas] == ["http://10.0.0.1:8000"]
    assert pool.ready
    session = pool.session("m")
    assert (await session.generate(PROMPT, sampling=Sampling())).choices[0].text == "10.0.0.1"

    dns.addresses = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]  # scaled up
    await pool.refresh_dns()
    await pool.check()
    assert sorted(r.base_url for r in pool.replicas) == [
        "http://10.0.0.1:8000",
        "http://10.0.0.2:8000",
        "http://10.0.0.3:8000",
    ]
    assert len(pool.healthy_replicas("m")) == 3

    dns.fail = True  # a failed lookup is not a scale-down
    await pool.refresh_dns()
    assert len(pool.replicas) == 3

    dns.fail = False
    dns.addresses = ["10.0.0.2", "10.0.0.3"]  # scaled down: the session's replica left
    await pool.refresh_dns()
    assert sorted(r.base_url for r in pool.replicas) == [
        "http://10.0.0.2:8000",
        "http://10.0.0.3:8000",
    ]
    text = (await session.generate(PROMPT, sampling=Sampling())).choices[0].text
    assert text in {"10.0.0.2", "10.0.0.3"}
    assert fakes["10.0.0.1"].chat_calls == 1
    await pool.aclose()


def test_a_dns_name_needs_a_port() -> None:
    with pytest.raises(ValueError, match="host and a port"):
        DnsReplicas("http://engines.ns.svc/v1")


async def test_ipv6_addresses_are_bracketed() -> None:
    async def resolver(host: str) -> list[str]:
        return ["fd00::1", "10.1.2.3"]

    urls = await DnsReplicas("vllm:8000", resolver=resolver).urls()
    assert urls == ["http://[fd00::1]:8000", "http://10.1.2.3:8000"]


async def test_the_system_resolver_answers_for_localhost() -> None:
    urls = await DnsReplicas("http://localhost:8000/v1").urls()
    assert "http://127.0.0.1:8000/v1" in urls


async def test_a_hung_replica_times_out_is_marked_down_and_the_call_moves_on() -> None:
    a, b = FakeReplica("a"), FakeReplica("b")
    pool = make_pool(a, b, timeout=0.3)
    await pool.check()
    session = pool.session("m")
    first = (await session.generate(PROMPT, sampling=Sampling())).choices[0].text
    stuck = {"a": a, "b": b}[first]
    stuck.hung = True
    started = time.monotonic()
    moved = (await session.generate(PROMPT, sampling=Sampling())).choices[0].text
    assert moved != first
    assert time.monotonic() - started < 2.0
    # Least-busy routing would favour the idle-looking hung replica: it is down instead.
    assert [r.base_url for r in pool.healthy_replicas("m")] == [f"http://{moved}"]
    await pool.aclose()


async def test_a_timeout_on_the_last_replica_is_a_timeout_and_leaves_it_in_service() -> None:
    a = FakeReplica("a")
    a.hung = True
    pool = make_pool(a, timeout=0.2)
    await pool.check()
    with pytest.raises(EngineTimeout, match=r"took over 0\.2 s"):
        await pool.session("m").generate(PROMPT, sampling=Sampling())
    # Busy or hung, it is all there is: refusing every request would serve no one.
    assert pool.ready
    a.hung = False
    answer = await pool.session("m").generate(PROMPT, sampling=Sampling())
    assert answer.choices[0].text == "a"
    await pool.aclose()


async def test_a_replica_that_answers_health_checks_late_is_down_only_when_silent_n_times() -> None:
    a = FakeReplica("a")
    pool = make_pool(a, silences=3)
    await pool.check()
    a.health_delay = 1.0  # past the checks' 0.1 s
    for _ in range(2):
        await pool.check()
        assert pool.ready, "one late answer is a busy engine, not a dead one"
    a.health_delay = 0.0
    await pool.check()  # an answer starts the count again
    a.health_delay = 1.0
    for _ in range(2):
        await pool.check()
    assert pool.ready
    await pool.check()
    assert not pool.ready  # three in a row
    a.health_delay = 0.0
    await pool.check()
    assert pool.ready
    await pool.aclose()


async def test_a_replica_that_refuses_a_health_check_is_down_at_once() -> None:
    a = FakeReplica("a")
    pool = make_pool(a, silences=3)
    await pool.check()
    a.up = False
    await pool.check()
    assert not pool.ready
    await pool.aclose()


async def test_a_health_check_on_a_dropped_connection_is_tried_once_more(
    caplog: pytest.LogCaptureFixture,
) -> None:
    a = FakeReplica("a")
    pool = make_pool(a)
    await pool.check()
    caplog.set_level(logging.INFO, logger="ponder.server.engines")
    a.health_drops = 1
    await pool.check()
    assert pool.ready, "one dropped connection is not a dead engine"
    assert "health check of http://a failed once (" in caplog.text
    assert "is down" not in caplog.text
    a.health_drops = 2
    await pool.check()
    assert not pool.ready
    assert "engine http://a is down: " in caplog.text
    assert "Server disconnected" in caplog.text.split("is down: ")[1]
    await pool.aclose()


async def test_why_a_replica_is_down_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    a = FakeReplica("a")
    pool = make_pool(a, silences=2)
    await pool.check()
    caplog.set_level(logging.INFO, logger="ponder.server.engines")
    a.health_status = 503
    await pool.check()
    assert not pool.ready
    assert 'engine http://a is down: /health answered 503: {"status":"ok"}' in caplog.text
    a.health_status = 200
    await pool.check()
    assert "engine http://a is up" in caplog.text
    a.health_delay = 1.0
    await pool.check()
    await pool.check()
    assert not pool.ready
    assert "is down: no answer to /health within 0.1 s, 2 time(s) in a row" in caplog.text
    await pool.aclose()


async def test_a_silent_replica_that_was_down_stays_down() -> None:
    a = FakeReplica("a")
    a.health_delay = 1.0
    pool = make_pool(a)
    await pool.check()
    assert not pool.ready
    await pool.aclose()


async def test_a_trickling_stream_is_cut_at_the_call_deadline() -> None:
    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(100):
            chunk = {"choices": [{"index": 0, "delta": {"content": "a"}}]}
            yield f"data: {json.dumps(chunk)}\n\n".encode()
            await asyncio.sleep(0.05)  # each read well within any read timeout

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=trickle(), headers={"content-type": "text/event-stream"})

    engine = HTTPEngine(
        "http://slow", kind=EngineKind.VLLM, model="m", timeout=0.5,
        retry=RetryPolicy(attempts=1), transport=httpx.MockTransport(handler),
    )  # fmt: skip
    started = time.monotonic()
    with pytest.raises(EngineTimeout):
        async for _ in engine.stream(PROMPT, sampling=Sampling()):
            pass
    assert time.monotonic() - started < 1.5
    await engine.aclose()


class WordReplica:
    """A replica that streams ``w0 w1 ...`` (one word a token) up to the call's max_tokens,
    or dies (its connection drops) after ``dies_after`` words; it counts words as tokens."""

    def __init__(self, name: str, kind: str, *, dies_after: int | None = None) -> None:
        self.name = name
        self.kind = kind
        self.dies_after = dies_after
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/health":
            return httpx.Response(200, json={"status": "ok"})
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "m", "owned_by": self.kind}]})
        body = json.loads(request.content)
        if request.url.path == "/tokenize":
            text = str(body.get("content", body.get("prompt")))
            return httpx.Response(200, json={"count": len(text.split())})
        self.bodies.append(body)
        limit = int(body["max_tokens"])

        async def words() -> AsyncIterator[bytes]:
            for i in range(limit):
                if i == self.dies_after:
                    raise httpx.ReadError("connection reset")
                chunk = {"choices": [{"index": 0, "delta": {"content": f"{self.name}{i} "}}]}
                yield f"data: {json.dumps(chunk)}\n\n".encode()
            end = {
                "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 10 + len(str(body).split()), "completion_tokens": limit},
            }
            yield f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode()

        return httpx.Response(200, content=words(), headers={"content-type": "text/event-stream"})


async def word_pool(*replicas: WordReplica) -> EnginePool:
    pool = EnginePool(
        [
            HTTPEngine(
                f"http://{r.name}",
                kind=EngineKind(r.kind),
                model="m",
                retry=RetryPolicy(attempts=1, backoff_base=0.0),
                transport=httpx.MockTransport(r),
            )
            for r in replicas
        ],
        health_interval=3600,
    )
    await pool.check()
    return pool


async def streamed(pool: EnginePool, prompt: Prompt, max_tokens: int) -> tuple[str, StreamEnd]:
    text = ""
    async for event in pool.session("m").stream(prompt, sampling=Sampling(max_tokens=max_tokens)):
        if isinstance(event, TextDelta):
            text += event.text
        else:
            return text, event
    raise AssertionError("the stream had no end")


@pytest.mark.parametrize("kind", ["vllm", "llamacpp"])
async def test_a_reply_cut_mid_stream_is_finished_by_another_replica(kind: str) -> None:
    a, b = WordReplica("a", kind, dies_after=3), WordReplica("b", kind)
    pool = await word_pool(a, b)
    text, end = await streamed(pool, PROMPT, max_tokens=8)
    # One reply: what a sent, then b's rest of it, to the call's token limit in all.
    assert text == "a0 a1 a2 b0 b1 b2 b3 b4 "
    assert end.choice.text == text
    assert end.choice.completion_tokens == 8
    resent = b.bodies[0]
    assert resent["max_tokens"] == 5
    assert resent["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "a0 a1 a2 "},
    ]
    if kind == "vllm":
        assert resent["continue_final_message"] is True
        assert resent["add_generation_prompt"] is False
    else:  # llama.cpp goes on from a last assistant message by itself
        assert "continue_final_message" not in resent
    assert pool.session("m").replica is not pool.replicas[0]  # a is marked down
    await pool.aclose()


async def test_a_text_prompt_is_resumed_by_concatenation_and_a_client_prefill_extended() -> None:
    a, b = WordReplica("a", "vllm", dies_after=2), WordReplica("b", "vllm")
    pool = await word_pool(a, b)
    text, end = await streamed(pool, "Once upon", max_tokens=4)
    assert text == "a0 a1 b0 b1 "
    assert end.choice.completion_tokens == 4
    assert b.bodies[0]["prompt"] == "Once upona0 a1 "

    a, b = WordReplica("a", "vllm", dies_after=1), WordReplica("b", "vllm")
    pool = await word_pool(a, b)
    prefilled = [Message("user", "hi"), Message("assistant", "Sure: ")]
    await streamed(pool, prefilled, max_tokens=3)
    assert b.bodies[0]["messages"][-1] == {"role": "assistant", "content": "Sure: a0 "}
    await pool.aclose()


async def test_a_reply_is_not_resumed_where_the_engine_might_start_it_anew() -> None:
    a, b = WordReplica("a", "openai", dies_after=2), WordReplica("b", "openai")
    pool = await word_pool(a, b)
    with pytest.raises(EngineUnavailable):
        await streamed(pool, PROMPT, max_tokens=6)
    assert not b.bodies
    await pool.aclose()


async def test_a_reply_whose_tokens_were_all_sent_ends_without_another_call() -> None:
    a, b = WordReplica("a", "vllm", dies_after=4), WordReplica("b", "vllm")
    pool = await word_pool(a, b)
    text, end = await streamed(pool, PROMPT, max_tokens=4)
    # a sent all four words and dropped before its end: b has nothing left to write.
    assert text == "a0 a1 a2 a3 "
    assert (end.choice.completion_tokens, end.choice.finish_reason) == (4, "length")
    assert not b.bodies
    await pool.aclose()
