"""Real engines and real gateways, started once per test session on free ports.

- llama.cpp's server (the xllamacpp wheel) serving SmolLM2-135M-Instruct's GGUF,
- vLLM's CPU build serving the same model converted to a HF folder,
- ``ponder serve`` processes in front of them.

Every process is stopped by the fixture that started it.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ponder.server.engines.catalog import SMOLLM2_135M, fetch
from ponder.server.engines.launch import hf_folder_for, vllm_python
from ponder.server.engines.managed import ManagedEngine, free_port, llamacpp_engine, vllm_engine
from ponder.server.settings import Settings

MODEL = "smollm2-135m"
#: SmolLM2's own chat template has no tools; both engines get a ChatML one that has.
TOOLS_TEMPLATE = Path(__file__).resolve().parents[1] / "data" / "chatml_tools.jinja"
VLLM_TOOL_ARGS = [
    "--enable-auto-tool-choice",
    "--tool-call-parser",
    "hermes",
    "--chat-template",
    str(TOOLS_TEMPLATE),
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def logs(settings: Settings) -> Path:
    path = settings.cache_dir / "test-logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def gguf(settings: Settings) -> Path:
    return fetch(SMOLLM2_135M, settings.cache_dir)


@pytest.fixture(scope="session")
def llamacpp(gguf: Path, logs: Path) -> Iterator[ManagedEngine]:
    port = free_port()
    with llamacpp_engine(
        gguf,
        alias=MODEL,
        port=port,
        parallel=8,
        log_file=logs / f"llamacpp-{port}.log",
        chat_template=TOOLS_TEMPLATE,
    ) as engine:
        yield engine


def vllm_on_cpu(
    gguf: Path, settings: Settings, logs: Path, *, served_name: str, extra_args: list[str]
) -> ManagedEngine:
    """vLLM's CPU build serving the test model (converted once to a HF folder)."""
    python = vllm_python(settings)
    folder = hf_folder_for(python, gguf, settings.cache_dir)
    port = free_port()
    return vllm_engine(
        python,
        str(folder),
        served_name=served_name,
        port=port,
        cpu=True,
        max_model_len=2048,
        # The converted folder says bfloat16, which CPUs without bf16 instructions (these
        # machines: AVX2) emulate: in float32 four samples of 64 tokens took 5.9 s, not 9.8,
        # and eight 7.6 s, not 16.4 (one sample the same, 4.2 s).
        extra_args=["--dtype", "float32", *extra_args],
        log_file=logs / f"vllm-{port}.log",
    )


@pytest.fixture(scope="session")
def vllm(gguf: Path, settings: Settings, logs: Path) -> Iterator[ManagedEngine]:
    with vllm_on_cpu(gguf, settings, logs, served_name=MODEL, extra_args=VLLM_TOOL_ARGS) as engine:
        yield engine


def gateway_process(
    logs: Path, *args: str, env: dict[str, str] | None = None, ready_path: str = "/ready"
) -> ManagedEngine:
    """``ponder serve`` as users run it, in its own process."""
    port = free_port()
    argv = [sys.executable, "-m", "ponder.server", "serve", "--port", str(port), *args]
    return ManagedEngine(
        "ponder",
        argv,
        port=port,
        env=env,
        ready_path=ready_path,
        log_file=logs / f"ponder-{port}.log",
        ready_timeout=600.0,
    )


# A small question pool for Auto-CoT, in the MAWPS sets' format.
POOL = [
    "Debby had 32 pieces of candy and her sister had 42. They ate 35. How many are left?",
    "A pet store had 13 siamese cats and 5 house cats. They sold 10. How many are left?",
    "Luke bought 2 games from a friend and 2 more at a sale. 2 did not work. How many work?",
    "There are 8 bags with 6 apples in each. How many apples are there?",
    "Sam had 9 dimes and gave 7 to his dad. How many dimes does he have now?",
    "A baker made 24 cakes and sold 18. How many cakes are left?",
    "Each box holds 5 pens. How many pens are in 7 boxes?",
    "Tom read 12 pages on Monday and 15 on Tuesday. How many pages did he read?",
    "A class of 30 students splits into groups of 6. How many groups are there?",
    "Mary had 45 stickers and used 19 of them. How many stickers are left?",
    "A farmer has 4 rows of 9 trees. How many trees does he have?",
    "Jill had 3 dollars and earned 8 more. How many dollars does she have?",
]


def gateway_env(folder: Path) -> dict[str, str]:
    """A test gateway's settings: a question pool for Auto-CoT, and a cache of its own
    (so that Auto-CoT builds its demonstrations in every test session)."""
    pool = folder / "pool.jsonl"
    pool.write_text("".join(json.dumps({"input": question}) + "\n" for question in POOL))
    return {
        "PONDER_QUESTION_POOLS": json.dumps({"arithmetic": str(pool)}),
        "PONDER_CACHE_DIR": str(folder / "cache"),
    }


@pytest.fixture(scope="session")
def llamacpp_gateway(
    llamacpp: ManagedEngine, logs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ManagedEngine]:
    env = gateway_env(tmp_path_factory.mktemp("llamacpp-gateway"))
    with gateway_process(logs, "--engine-url", llamacpp.url + "/v1", env=env) as gateway:
        yield gateway


@pytest.fixture(scope="session")
def vllm_gateway(
    vllm: ManagedEngine, logs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ManagedEngine]:
    env = gateway_env(tmp_path_factory.mktemp("vllm-gateway"))
    with gateway_process(logs, "--engine-url", vllm.url, env=env) as gateway:
        yield gateway


@pytest.fixture(scope="session")
def embedded_gateway(logs: Path) -> Iterator[ManagedEngine]:
    """``ponder serve`` as the README's first command runs it: its own llama.cpp engine."""
    with gateway_process(logs) as gateway:
        yield gateway


class Served:
    """A gateway and the engine behind it."""

    def __init__(self, kind: str, gateway: ManagedEngine, engine: ManagedEngine) -> None:
        self.kind = kind
        self.gateway = gateway
        self.engine = engine

    @property
    def base_url(self) -> str:
        return self.gateway.url + "/v1"

    def engine_tokens(self, text: str) -> int:
        """``text``'s length in the engine's own tokenizer, asked of the engine directly."""
        if self.kind == "llamacpp":
            body: dict[str, object] = {"content": text, "add_special": False}
        else:
            body = {"model": MODEL, "prompt": text, "add_special_tokens": False}
        response = httpx.post(self.engine.url + "/tokenize", json=body, timeout=30)
        response.raise_for_status()
        return len(response.json()["tokens"])

    def generation_work(self) -> float:
        """A number that grows with every generation the engine does."""
        return generation_work(self.engine, self.kind)

    def generation_tokens(self) -> float:
        """Tokens the engine has generated, from its own metrics."""
        name = (
            "vllm:generation_tokens_total"
            if self.kind == "vllm"
            else "llamacpp:tokens_predicted_total"
        )
        return metric_sum(self.engine.url, name)

    def requests_running(self) -> float:
        """Requests the engine is generating for now, from its own metrics."""
        text = httpx.get(self.engine.url + "/metrics", timeout=10).text
        name = (
            "vllm:num_requests_running" if self.kind == "vllm" else "llamacpp:requests_processing"
        )
        values = [
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name)
        ]
        assert values, f"{name} not in the engine's metrics"
        return sum(values)

    def wait_until_idle(self, timeout: float = 10.0) -> None:
        """Fail unless the engine stops generating within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.requests_running() > 0:
            assert time.monotonic() < deadline, "the engine is still generating"
            time.sleep(0.05)


def metric_sum(url: str, sample: str, **labels: str) -> float:
    """The sum of ``sample`` over the series of ``url``'s /metrics whose labels include
    ``labels`` (read with prometheus-client's parser, on a new connection each time)."""
    text = httpx.get(url + "/metrics", timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == sample and labels.items() <= s.labels.items()
    )


#: Counters of the engines' own metrics that every generation moves.
GENERATION_COUNTERS = {
    "vllm": ("vllm:request_success_total", "vllm:generation_tokens_total"),
    "llamacpp": ("llamacpp:tokens_predicted_total", "llamacpp:prompt_tokens_total"),
}


def generation_work(engine: ManagedEngine, kind: str) -> float:
    """The sum of the engine's generation counters, read from its own /metrics."""
    text = httpx.get(engine.url + "/metrics", timeout=10).text
    total, found = 0.0, set()
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in GENERATION_COUNTERS[kind]:
            found.add(name)
            total += float(line.rsplit(" ", 1)[1])
    assert found == set(GENERATION_COUNTERS[kind]), f"{kind} metrics lack {GENERATION_COUNTERS}"
    return total


@pytest.fixture(scope="session", params=["llamacpp", "vllm"])
def served(request: pytest.FixtureRequest) -> Served:
    kind = request.param
    gateway = request.getfixturevalue(f"{kind}_gateway")
    engine = request.getfixturevalue(kind)
    return Served(kind, gateway, engine)


@pytest.fixture(scope="session")
def environ_without_engine_hints() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PONDER_ENGINE")}


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds.
    Tests wait on what they need to have happened, never for a fixed time."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout:g} s for {what}"
        time.sleep(0.05)


@contextmanager
def looping(*steps: Callable[[], None]) -> Iterator[None]:
    """Each of ``steps`` called again and again, each in a thread of its own, while the
    block runs; the first failure of a step is raised when the block ends.

    The loops stop when the block ends however it ends: a wait inside it that fails
    must fail the test, not leave clients looping while the test waits for them.
    """
    stop = threading.Event()

    def loop(step: Callable[[], None]) -> None:
        while not stop.is_set():
            step()

    with ThreadPoolExecutor(len(steps)) as pool:
        futures = [pool.submit(loop, step) for step in steps]
        try:
            yield
        finally:
            stop.set()
    for future in futures:
        future.result()
