"""What the gateway adds to a call: the same non-streamed request sent to llama.cpp
directly and through ``ponder serve`` (strategy ``direct``), one at a time, interleaved.

    python benchmarks/gateway_overhead.py [--requests 50] [--max-tokens 1]

Two gateways run side by side, their caches off (the requests repeat): one makes its
engine calls as streams (the default, ``engine_stream_calls``: a call whose client leaves
is closed and the engine stops), one as plain requests. For comparison the engine is also
asked directly with ``"stream": true``, read to its end. Starts its own engine and
gateways on free ports and stops them.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from ponder.server.engines.catalog import SMOLLM2_135M, fetch
from ponder.server.engines.managed import ManagedEngine, free_port, llamacpp_engine
from ponder.server.settings import Settings

BODY = {
    "model": "smollm2-135m",
    "messages": [{"role": "user", "content": "What is 12 plus 30?"}],
    "temperature": 0,
}


def gateway(engine: ManagedEngine, logs: Path, *, stream_calls: bool) -> ManagedEngine:
    port = free_port()
    argv = [sys.executable, "-m", "ponder.server", "serve", "--port", str(port)]
    argv += ["--engine-url", engine.url, "--log-level", "warning", "--no-cache"]
    return ManagedEngine(
        "ponder",
        argv,
        port=port,
        ready_path="/ready",
        log_file=logs / f"ponder-{port}.log",
        env={"PONDER_ENGINE_STREAM_CALLS": str(stream_calls).lower()},
    )


def summary(name: str, latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return (
        f"{name:<34} mean {statistics.mean(ordered):7.1f} ms   "
        f"p50 {statistics.median(ordered):7.1f} ms   p95 {p95:7.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--max-tokens", type=int, default=1)
    args = parser.parse_args()
    settings = Settings()
    logs = Path(tempfile.mkdtemp(prefix="ponder-bench-"))
    engine = llamacpp_engine(
        fetch(SMOLLM2_135M, settings.cache_dir),
        alias="smollm2-135m",
        port=free_port(),
        log_file=logs / "engine.log",
    )
    with contextlib.ExitStack() as running:
        running.enter_context(engine)
        streamed = running.enter_context(gateway(engine, logs, stream_calls=True))
        plain = running.enter_context(gateway(engine, logs, stream_calls=False))
        client = running.enter_context(httpx.Client(timeout=120))
        body = {**BODY, "max_tokens": args.max_tokens}

        def post(url: str) -> Callable[[], None]:
            def send() -> None:
                client.post(url, json=body).raise_for_status()

            return send

        def stream(url: str) -> Callable[[], None]:
            def read() -> None:
                with client.stream("POST", url, json={**body, "stream": True}) as response:
                    response.raise_for_status()
                    for _ in response.iter_bytes():
                        pass

            return read

        path = "/v1/chat/completions"
        ways: dict[str, Callable[[], None]] = {
            "engine directly": post(engine.url + path),
            "engine directly, streamed": stream(engine.url + path),
            "through ponder (calls streamed)": post(streamed.url + path),
            "through ponder (calls plain)": post(plain.url + path),
        }
        latencies: dict[str, list[float]] = {name: [] for name in ways}
        for round_ in range(args.requests + 3):
            for name, send in ways.items():
                started = time.perf_counter()
                send()
                if round_ >= 3:  # the first rounds warm every path
                    latencies[name].append((time.perf_counter() - started) * 1000)
    print(
        f"{args.requests} requests each way, interleaved, max_tokens={args.max_tokens}, "
        "llama.cpp serving SmolLM2-135M"
    )
    for name, values in latencies.items():
        print(summary(name, values))
    direct = statistics.median(latencies["engine directly"])
    for name in ("through ponder (calls streamed)", "through ponder (calls plain)"):
        print(f"{'added, ' + name.removeprefix('through '):<34} p50 "
              f"{statistics.median(latencies[name]) - direct:7.1f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
