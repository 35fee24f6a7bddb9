"""Two gateways, one Redis, two engine replicas, all real and on this machine: what
the compose file and the Helm chart run, at the smallest size."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from ponder.server.engines.managed import ManagedEngine, free_port, llamacpp_engine
from tests.integration.conftest import (
    MODEL,
    gateway_process,
    generation_work,
    looping,
    metric_sum,
    wait_until,
)
from tests.integration.services import RedisServer


@pytest.fixture
def replicas(gguf: Path, logs: Path) -> Iterator[list[ManagedEngine]]:
    engines = []
    try:
        for _ in range(2):
            port = free_port()
            engine = llamacpp_engine(
                gguf, alias=MODEL, port=port, parallel=4, log_file=logs / f"llamacpp-{port}.log"
            )
            engine.__enter__()
            engines.append(engine)
        yield engines
    finally:
        for engine in engines:
            engine.stop()


def client(gateway: ManagedEngine) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)


def ask(gateway: ManagedEngine, content: str, temperature: float) -> str:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": content}],
        max_tokens=8,
        temperature=temperature,
    )
    assert raw.parse().choices[0].message.content is not None
    return raw.headers["x-ponder-cache"]


def test_gateways_share_one_cache_and_survive_a_replica_stopping(
    replicas: list[ManagedEngine], logs: Path, tmp_path: Path
) -> None:
    with RedisServer(tmp_path / "redis") as redis_server:
        args = [f"--engine-url={engine.url}/v1" for engine in replicas]
        args.append(f"--redis-url={redis_server.url}")
        with gateway_process(logs, *args) as one, gateway_process(logs, *args) as two:
            content = f"Question {uuid.uuid4().hex[:8]}: what is 5 times 6?"
            assert ask(one, content, temperature=0) == "miss"
            work = sum(generation_work(engine, "llamacpp") for engine in replicas)
            assert ask(two, content, temperature=0) == "hit"  # the other gateway's answer
            assert sum(generation_work(engine, "llamacpp") for engine in replicas) == work

            done: list[str] = []
            lock = threading.Lock()

            def load(gateway: ManagedEngine) -> Callable[[], None]:
                def step() -> None:
                    ask(gateway, f"Say a word ({uuid.uuid4().hex[:6]}).", temperature=0.8)
                    with lock:
                        done.append(gateway.url)

                return step

            with looping(*(load(gateway) for gateway in (one, two, one, two))):
                wait_until(lambda: len(done) >= 8, "requests served by both replicas")
                replicas[0].stop()  # mid-load: calls in flight on it move to the other
                stopped_at = len(done)
                wait_until(lambda: len(done) >= stopped_at + 8, "requests served after it")
            assert len(done) > stopped_at, "nothing was served after the replica stopped"
            for gateway in (one, two):
                ready = httpx.get(gateway.url + "/ready", timeout=10)
                assert ready.status_code == 200  # the other replica serves


def requests_processing(engine: ManagedEngine) -> float:
    return metric_sum(engine.url, "llamacpp:requests_processing")


def test_a_replica_killed_mid_stream_fails_no_request(
    replicas: list[ManagedEngine], logs: Path
) -> None:
    args = [f"--engine-url={engine.url}/v1" for engine in replicas]
    with gateway_process(logs, *args, "--no-cache") as gateway:
        openai_client = client(gateway)
        max_tokens = 160
        body: dict[str, object] = {"ignore_eos": True, "ponder": {"strategy": "direct"}}
        received: list[int] = [0] * 4

        def stream(slot: int) -> tuple[str, int, str | None]:
            text, usage, finish = "", 0, None
            for chunk in openai_client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": f"Tell story number {slot}."}],
                max_tokens=max_tokens,
                temperature=0.8,
                stream=True,
                stream_options={"include_usage": True},
                extra_body=body,
            ):
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
                    finish = chunk.choices[0].finish_reason or finish
                    received[slot] += 1
                if chunk.usage is not None:
                    usage = chunk.usage.completion_tokens
            return text, usage, finish

        def whole(slot: int) -> tuple[str, int, str | None]:
            completion = openai_client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": f"Tell tale number {slot}."}],
                max_tokens=max_tokens,
                temperature=0.8,
                extra_body=body,
            )
            assert completion.usage is not None
            choice = completion.choices[0]
            return (
                choice.message.content or "",
                completion.usage.completion_tokens,
                choice.finish_reason,
            )

        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(stream, slot) for slot in range(4)]
            futures += [pool.submit(whole, slot) for slot in range(2)]
            deadline = time.monotonic() + 60
            # Every stream under way, and the doomed replica generating for some of them.
            while min(received) < 5 or requests_processing(replicas[0]) < 1:
                assert time.monotonic() < deadline, f"streams stalled at {received}"
                time.sleep(0.05)
            process = replicas[0].process
            assert process is not None
            os.killpg(process.pid, signal.SIGKILL)
            results = [future.result() for future in futures]  # none may raise
        for text, completion_tokens, finish in results:
            assert text
            # The rest of a reply is asked for the tokens the first replica did not write.
            assert completion_tokens == max_tokens
            assert finish == "length"
        resumed = metric_sum(gateway.url, "ponder_engine_replies_resumed_total")
        assert resumed >= 1, "no stream was on the killed replica mid-reply"
