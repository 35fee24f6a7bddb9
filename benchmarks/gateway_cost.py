"""The gateway's own cost: requests/s, CPU per request and RSS of one ``ponder serve`` worker
at concurrency 32 in front of the instant stub engine, optionally with a py-spy profile;
before it, the engine client's own share.

    python benchmarks/gateway_cost.py [--seconds 8] [--runs 3] [--stream] [--profile FILE]
        [--layers] [--floor] [--collector] [--env NAME=VALUE]

The stub (``tests/stub_engine.py``) answers at once, so what is left is the gateway: its
HTTP parsing, validation, strategy, engine call and response. CPU time is read from /proc
for the gateway's process (the stub and the load generator are not counted).

The engine client's share is measured in this process first: 32 tasks calling
``HTTPEngine.generate`` against the stub for ``--seconds``, with its calls streamed (the
default for llama.cpp and other servers) and plain (vLLM's; the stub says it is vLLM, so the
gateway's calls to it are plain), over aiohttp's client (the default) and over httpx's
(httpcore's pool),
beside the floor of a bare aiohttp POST whose JSON is read. ``--floor`` measures, after the
gateway, ``benchmarks/relay_floor.py`` the same way: uvicorn relaying each request to the
stub with aiohttp and nothing else, the least any Python gateway on uvicorn costs. ``--env
NAME=VALUE`` passes settings to the gateway (e.g. ``PONDER_ENGINE_STREAM_CALLS=false``) to
compare variants; ``--collector`` starts the gateway under
``benchmarks/collector_clock.py`` and reports the garbage collector's share of each
request's CPU; ``--profile`` records the last run with ``py-spy record`` (top-down
flame graph as SVG, or ``--format raw`` collapsed stacks for a file ending in ``.txt``);
``--layers`` profiles the last run the same way and prints each layer's share of the samples
(charged to the innermost frame: ``benchmarks/layers.py``).
Starts the stub and the gateway on free ports and stops them. Run from the repository's root.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from ponder.server.engines.http_engine import EngineKind, HTTPEngine
from ponder.server.engines.managed import ManagedEngine, free_port
from ponder.strategies.engine import Message, Sampling

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.collector_clock import read as read_collector_clock
from benchmarks.layers import collapsed_stack_costs, print_shares, shares
from benchmarks.peer_servers import machine, tree
from benchmarks.peers import closed_loop, closed_loop_cost, spread

BODY: dict[str, Any] = {
    "model": "stub",
    "messages": [{"role": "user", "content": "A pet store had 13 cats and sold 5. How many?"}],
    "max_tokens": 16,
    "temperature": 0,
}


def gateway(
    engine_url: str, logs: Path, env: dict[str, str], clock: Path | None = None
) -> ManagedEngine:
    port = free_port()
    command = ["-m", "ponder.server"]
    if clock is not None:
        command = ["-m", "benchmarks.collector_clock", str(clock)]
        env = {**env, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    argv = [sys.executable, *command, "serve", "--port", str(port)]
    argv += ["--engine-url", engine_url + "/v1", "--log-level", "warning", "--no-cache"]
    return ManagedEngine(
        "ponder", argv, port=port, ready_path="/ready", log_file=logs / "ponder.log", env=env
    )


def collector_seconds(clock: Path | None) -> float:
    """The gateway's garbage collection so far (its clock writes every half second)."""
    if clock is None:
        return 0.0
    time.sleep(0.6)
    return read_collector_clock(clock)[0]


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def cpu_ms_per_call(
    call: Callable[[], Awaitable[object]], seconds: float, clients: int
) -> float:
    """This process's CPU per call, ``clients`` tasks calling in a closed loop."""
    done = 0
    deadline = time.monotonic() + seconds

    async def client() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await call()
            done += 1

    started = own_cpu_seconds()
    await asyncio.gather(*(client() for _ in range(clients)))
    return (own_cpu_seconds() - started) / max(done, 1) * 1000


async def engine_client_rows(url: str, seconds: float, clients: int) -> list[tuple[str, float]]:
    prompt = [Message(role="user", content=BODY["messages"][0]["content"])]
    sampling = Sampling(max_tokens=BODY["max_tokens"], temperature=0.0)
    rows = []
    for aiohttp_pool in (True, False):
        for streamed in (True, False):
            # Another OpenAI-compatible server: its calls are streams when asked (vLLM's are
            # always plain, llama.cpp's streams close their connections).
            engine = HTTPEngine(
                url + "/v1", model="stub", kind=EngineKind.OPENAI, stream_calls=streamed,
                aiohttp_pool=aiohttp_pool,
            )  # fmt: skip

            async def generate(engine: HTTPEngine = engine) -> object:
                return await engine.generate(prompt, sampling=sampling)

            await cpu_ms_per_call(generate, 1.0, clients)  # warm
            name = f"HTTPEngine, {'aiohttp' if aiohttp_pool else 'httpx (httpcore)'}, "
            name += "calls streamed" if streamed else "calls plain"
            rows.append((name, await cpu_ms_per_call(generate, seconds, clients)))
            await engine.aclose()
    async with aiohttp.ClientSession() as session:
        body = {**BODY, "stream": False}

        async def bare() -> object:
            async with session.post(url + "/v1/chat/completions", json=body) as response:
                return await response.json()

        await cpu_ms_per_call(bare, 1.0, clients)
        rows.append(("bare aiohttp POST, JSON read", await cpu_ms_per_call(bare, seconds, clients)))
    return rows


def relay_floor(engine_url: str, logs: Path) -> ManagedEngine:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "benchmarks.relay_floor:app", "--port", str(port)]
    argv += ["--log-level", "warning", "--no-access-log", "--loop", "asyncio"]
    return ManagedEngine(
        "relay", argv, port=port, ready_path="/ready", log_file=logs / "relay.log",
        env={"ENGINE": engine_url},
    )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="each run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--stream", action="store_true", help="clients ask for streams")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the gateway")
    parser.add_argument("--profile", type=Path, help="py-spy output of the last run")
    parser.add_argument(
        "--layers", action="store_true", help="profile the last run; each layer's share"
    )
    parser.add_argument("--floor", action="store_true", help="then the bare relay's cost")
    parser.add_argument(
        "--collector", action="store_true", help="the garbage collector's share of the CPU"
    )
    args = parser.parse_args()
    if args.layers and args.profile is None:
        args.profile = Path(tempfile.mkdtemp(prefix="ponder-layers-")) / "raw.txt"
    env = dict(item.split("=", 1) for item in args.env)
    body = {**BODY, "stream": True} if args.stream else BODY
    logs = Path(tempfile.mkdtemp(prefix="ponder-gateway-cost-"))
    print("machine:", machine())
    print("gateway settings:", env or "defaults", "| streams" if args.stream else "")
    stub_port = free_port()
    stub_argv = [sys.executable, "-m", "tests.stub_engine", "--port", str(stub_port)]
    stub = ManagedEngine(
        "stub",
        [*stub_argv, "--token-interval", "0"],
        port=stub_port,
        log_file=logs / "stub.log",
    )
    rates: list[float] = []
    cpu_ms: list[float] = []
    collector_ms: list[float] = []
    with contextlib.ExitStack() as running:
        running.enter_context(stub)
        print(f"\nengine client alone, {args.clients} tasks, {args.seconds:.0f} s each: "
              "CPU ms per call")  # fmt: skip
        for name, ms in asyncio.run(engine_client_rows(stub.url, args.seconds, args.clients)):
            print(f"{name:<44}{ms:>8.3f}")
        clock = logs / "collector.json" if args.collector else None
        ponder = running.enter_context(gateway(stub.url, logs, env, clock))
        url = ponder.url + "/v1/chat/completions"
        process = tree(ponder)
        asyncio.run(closed_loop(url, body, args.clients, 2.0))  # warm
        for run in range(args.runs):
            profiler = None
            if args.profile and run == args.runs - 1:
                fmt = "raw" if args.profile.suffix == ".txt" else "flamegraph"
                profiler = subprocess.Popen(
                    ["py-spy", "record", "-p", str(process.pid), "-r", "200", "-f", fmt,
                     "-o", str(args.profile), "-d", str(int(args.seconds) + 1),
                     "--full-filenames"],
                    stdout=subprocess.DEVNULL,
                )  # fmt: skip
                time.sleep(0.5)
            collected = collector_seconds(clock)
            cpu = process.cpu_seconds()
            rate, ms = closed_loop_cost(ponder, url, body, args.clients, args.seconds)
            rates.append(rate)
            cpu_ms.append(ms)
            if clock is not None:
                share = (collector_seconds(clock) - collected) / (process.cpu_seconds() - cpu)
                collector_ms.append(share * ms)
            if profiler is not None:
                profiler.wait()
        rss = process.rss_mib()
        floor: list[tuple[float, float]] = []
        if args.floor:
            relay = running.enter_context(relay_floor(stub.url, logs))
            relay_url = relay.url + "/v1/chat/completions"
            asyncio.run(closed_loop(relay_url, BODY, args.clients, 2.0))  # warm
            floor = [closed_loop_cost(relay, relay_url, BODY, args.clients, args.seconds)
                     for _ in range(args.runs)]  # fmt: skip
    print(f"\ngateway, concurrency {args.clients}, {args.seconds:.0f} s a run, {args.runs} runs: "
          "median (min-max)")  # fmt: skip
    print(f"requests/s      {spread(rates, 0):>20}")
    print(f"CPU ms/request  {spread(cpu_ms):>20}")
    print(f"RSS MiB after   {rss:>20.0f}")
    if collector_ms:
        print(f"of it, garbage collection ms/request {spread(collector_ms, 3):>9}")
    print(f"mean CPU ms/request {statistics.mean(cpu_ms):.2f}")
    if args.layers:
        with args.profile.open() as samples:
            ranked = shares(collapsed_stack_costs(samples))
        print_shares("samples by layer, the last run (py-spy, innermost frame)", ranked)
    if floor:
        print("\nthe floor: uvicorn relaying with aiohttp, nothing else (relay_floor.py)")
        print(f"requests/s      {spread([rate for rate, _ in floor], 0):>20}")
        print(f"CPU ms/request  {spread([ms for _, ms in floor]):>20}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
