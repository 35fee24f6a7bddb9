"""API keys on ``ponder serve`` as users start it, with the real openai client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from ponder.server.engines.managed import ManagedEngine
from tests.integration.conftest import MODEL, gateway_process
from tests.integration.services import RedisServer

QUESTION: list[ChatCompletionMessageParam] = [{"role": "user", "content": "What is 2 plus 2?"}]


@pytest.fixture(scope="module")
def keyed_gateway(
    llamacpp: ManagedEngine, logs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ManagedEngine]:
    keys = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys.write_text("sk-file-user\n")
    args = ["--engine-url", llamacpp.url + "/v1", "--api-key", "sk-flag-user"]
    with gateway_process(logs, *args, "--api-keys-file", str(keys), "--no-cache") as gateway:
        yield gateway


def client(gateway: ManagedEngine, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=120)


def test_the_openai_client_needs_a_key(keyed_gateway: ManagedEngine) -> None:
    with pytest.raises(openai.AuthenticationError) as error:
        client(keyed_gateway, "sk-wrong").chat.completions.create(
            model=MODEL,
            messages=QUESTION,
            max_tokens=4,
        )
    assert error.value.status_code == 401
    assert error.value.body["code"] == "invalid_api_key"  # type: ignore[index]
    for key in ("sk-flag-user", "sk-file-user"):
        completion = client(keyed_gateway, key).chat.completions.create(
            model=MODEL,
            messages=QUESTION,
            max_tokens=4,
        )
        assert completion.choices


def test_probes_stay_open_and_results_need_an_admin(keyed_gateway: ManagedEngine) -> None:
    assert httpx.get(keyed_gateway.url + "/ready", timeout=10).status_code == 200
    refused = httpx.post(
        keyed_gateway.url + "/v1/eval/results",
        json={"dataset": "d", "results": []},
        headers={"Authorization": "Bearer sk-flag-user"},
        timeout=10,
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "insufficient_scope"


def test_two_gateways_on_one_redis_share_a_keys_budget(
    llamacpp: ManagedEngine, logs: Path, tmp_path: Path
) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("sk-limited rpm=3\n")
    with RedisServer(tmp_path / "redis") as redis:
        args = [
            "--engine-url",
            llamacpp.url + "/v1",
            "--redis-url",
            redis.url,
            "--api-keys-file",
            str(keys),
            "--no-cache",
        ]
        with gateway_process(logs, *args) as first, gateway_process(logs, *args) as second:
            # Counts are per clock minute: start well inside one.
            while 60 - time.time() % 60 < 15:
                time.sleep(0.5)
            for gateway in (first, second, first):
                client(gateway, "sk-limited").chat.completions.create(
                    model=MODEL, messages=QUESTION, max_tokens=2
                )
            with pytest.raises(openai.RateLimitError) as error:  # three a minute, in all
                client(second, "sk-limited").chat.completions.create(
                    model=MODEL, messages=QUESTION, max_tokens=2
                )
    assert error.value.response.headers["retry-after"]
    assert error.value.body["code"] == "rate_limit_exceeded"  # type: ignore[index]
