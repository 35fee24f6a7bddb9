"""Two gateways, one Redis, two engine replicas, all real and on this machine: what
the compose file and the Helm chart run, at the smallest size."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from ponder.server.engines.managed import ManagedEngine, free_port, llamacpp_engine
from tests.integration.conftest import MODEL, gateway_process, generation_work
from tests.integration.services import RedisServer


@pytest.fixture(scope="module")
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
            stop = threading.Event()
            lock = threading.Lock()

            def load(gateway: ManagedEngine) -> None:
                while not stop.is_set():
                    ask(gateway, f"Say a word ({uuid.uuid4().hex[:6]}).", temperature=0.8)
                    with lock:
                        done.append(gateway.url)

            with ThreadPoolExecutor(4) as pool:
                futures = [pool.submit(load, gateway) for gateway in (one, two, one, two)]
                time.sleep(3)
                replicas[0].stop()  # mid-load: calls in flight on it move to the other
                stopped_at = len(done)
                time.sleep(4)
                stop.set()
                for future in futures:
                    future.result()  # re-raises any failed request
            assert len(done) > stopped_at, "nothing was served after the replica stopped"
            for gateway in (one, two):
                ready = httpx.get(gateway.url + "/ready", timeout=10)
                assert ready.status_code == 200  # the other replica serves
