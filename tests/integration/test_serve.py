"""``ponder serve`` as a process: the embedded engine, its shutdown, config, engine failures."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import openai
import pytest

from ponder.server.engines.managed import ManagedEngine, free_port
from tests.integration.conftest import MODEL, gateway_process

QUESTION: list[openai.types.chat.ChatCompletionMessageParam] = [
    {"role": "user", "content": "Name three colours."}
]


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status  # a zombie has exited


def group_members(pgid: int) -> list[int]:
    """Live processes in process group ``pgid``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def wait_gone(pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still runs {timeout}s later"
        time.sleep(0.2)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_embedded_engine_serves_and_dies_with_the_gateway(
    logs: Path, stop_signal: signal.Signals
) -> None:
    gateway = gateway_process(logs)  # no engine URL: Ponder starts llama.cpp itself
    gateway.start()
    try:
        gateway.wait_ready()
        assert gateway.process is not None
        engines = children(gateway.process.pid)
        assert len(engines) == 1, "one embedded engine process"
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="-", max_retries=0)
        completion = client.chat.completions.create(
            model=MODEL, messages=QUESTION, max_tokens=8, n=3, temperature=0.7
        )
        assert len(completion.choices) == 3
        assert completion.usage is not None
        assert completion.usage.completion_tokens >= 3
        stream = client.chat.completions.create(
            model=MODEL, messages=QUESTION, max_tokens=8, stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        os.kill(gateway.process.pid, stop_signal)
        gateway.process.wait(timeout=60)
        wait_gone(engines[0])
    finally:
        gateway.stop()


def test_no_engine_ready_is_503(logs: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with gateway_process(logs, "--engine-url", dead, ready_path="/health") as gateway:
        assert httpx.get(gateway.url + "/ready").status_code == 503
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="-", max_retries=0)
        with pytest.raises(openai.APIStatusError) as error:
            client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=4)
        assert error.value.status_code == 503
        assert error.value.body["code"] == "engine_unavailable"  # type: ignore[index]


def test_engine_timeout_is_504(llamacpp: ManagedEngine, logs: Path) -> None:
    env = {"PONDER_ENGINE_TIMEOUT": "0.3"}
    with gateway_process(logs, "--engine-url", llamacpp.url, env=env) as gateway:
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="-", max_retries=0)
        with pytest.raises(openai.APIStatusError) as error:
            client.chat.completions.create(
                model=MODEL,
                messages=QUESTION,
                max_tokens=1000,
                extra_body={"ignore_eos": True},
            )
        assert error.value.status_code == 504
        assert error.value.body["code"] == "engine_timeout"  # type: ignore[index]
        # A slow engine that is the only one stays in service for the next request.
        assert httpx.get(gateway.url + "/ready", timeout=10).status_code == 200


def test_settings_from_yaml_file_with_flags_on_top(
    llamacpp: ManagedEngine, logs: Path, tmp_path: Path
) -> None:
    config = tmp_path / "ponder.yaml"
    config.write_text(f"engine_urls: ['{llamacpp.url}']\nmax_n: 2\nport: 1\n")
    port = free_port()
    gateway = gateway_process(logs, "--config", str(config))
    gateway.argv[gateway.argv.index("--port") + 1] = str(port)  # the flag beats the file
    gateway.port = port
    with gateway:
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="-", max_retries=0)
        with pytest.raises(openai.BadRequestError) as error:
            client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=4, n=3)
        assert "max_n" in error.value.message


def test_vllm_model_starts_a_pooled_vllm_engine(gguf: Path, logs: Path) -> None:
    # A catalog model given to --vllm-model: its GGUF, converted once to a HF folder vLLM
    # loads, served under the catalog's name.
    with gateway_process(logs, "--vllm-model", MODEL) as gateway:
        assert gateway.process is not None
        engines = children(gateway.process.pid)
        assert len(engines) == 1, "no GPU here: one CPU engine"
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="-", max_retries=0)
        completion = client.chat.completions.create(
            model=MODEL, messages=QUESTION, max_tokens=6, n=2, temperature=0.5
        )
        assert len(completion.choices) == 2
        assert completion.usage is not None
        assert completion.usage.prompt_tokens > 0
        assert len(group_members(engines[0])) > 1  # vLLM runs helper processes
    wait_gone(engines[0])
    deadline = time.monotonic() + 30
    while group_members(engines[0]):  # each engine has a process group of its own
        assert time.monotonic() < deadline, "vLLM's processes outlived the gateway"
        time.sleep(0.2)


def test_sigterm_lets_a_stream_in_flight_finish(llamacpp: ManagedEngine, logs: Path) -> None:
    gateway = gateway_process(logs, "--engine-url", llamacpp.url + "/v1", "--no-cache")
    gateway.start()
    try:
        gateway.wait_ready()
        assert gateway.process is not None
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="-", max_retries=0)
        stream = client.chat.completions.create(
            model=MODEL,
            messages=QUESTION,
            max_tokens=96,
            stream=True,
            extra_body={"ignore_eos": True},  # long enough to be cut, were it cut
        )
        chunks = iter(stream)
        first = next(chunks)
        os.kill(gateway.process.pid, signal.SIGTERM)
        rest = list(chunks)
        finish = [c.choices[0].finish_reason for c in [first, *rest] if c.choices]
        assert finish[-1] == "length"  # the whole answer, not a cut stream
        gateway.process.wait(timeout=30)  # and then the gateway stops
        with pytest.raises(httpx.ConnectError):
            httpx.get(gateway.url + "/health", timeout=2)
    finally:
        gateway.stop()
