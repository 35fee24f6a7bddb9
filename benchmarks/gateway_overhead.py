"""What the gateway adds to a call: the same requests sent to llama.cpp directly
and through ``ponder serve`` (strategy ``direct``), one at a time.

    python benchmarks/gateway_overhead.py [--requests 50] [--max-tokens 1] [--plain-calls]

The gateway's cache is off (the requests repeat). ``--plain-calls`` makes its engine
calls plain requests instead of streams (``PONDER_ENGINE_STREAM_CALLS=false``).

Starts its own engine and gateway on free ports and stops them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
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


def timed(client: httpx.Client, url: str, requests: int, max_tokens: int) -> list[float]:
    latencies = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.post(url, json={**BODY, "max_tokens": max_tokens})
        response.raise_for_status()
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def summary(name: str, latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return (
        f"{name:<22} mean {statistics.mean(ordered):7.1f} ms   "
        f"p50 {statistics.median(ordered):7.1f} ms   p95 {p95:7.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--max-tokens", type=int, default=1)
    parser.add_argument("--plain-calls", action="store_true", help="engine calls not streamed")
    args = parser.parse_args()
    settings = Settings()
    logs = Path(tempfile.mkdtemp(prefix="ponder-bench-"))
    engine = llamacpp_engine(
        fetch(SMOLLM2_135M, settings.cache_dir),
        alias="smollm2-135m",
        port=free_port(),
        log_file=logs / "engine.log",
    )
    port = free_port()
    gateway = ManagedEngine(
        "ponder",
        [
            sys.executable,
            "-m",
            "ponder.server",
            "serve",
            "--port",
            str(port),
            "--engine-url",
            engine.url,
            "--log-level",
            "warning",
            "--no-cache",
        ],
        port=port,
        env={"PONDER_ENGINE_STREAM_CALLS": "false" if args.plain_calls else "true"},
        ready_path="/ready",
        log_file=logs / "ponder.log",
    )
    with engine, gateway, httpx.Client(timeout=120) as client:
        direct_url = engine.url + "/v1/chat/completions"
        gateway_url = gateway.url + "/v1/chat/completions"
        timed(client, direct_url, 3, args.max_tokens)  # warm both paths
        timed(client, gateway_url, 3, args.max_tokens)
        direct = timed(client, direct_url, args.requests, args.max_tokens)
        through = timed(client, gateway_url, args.requests, args.max_tokens)
    calls = "plain" if args.plain_calls else "streamed"
    print(
        f"{args.requests} sequential requests, max_tokens={args.max_tokens}, llama.cpp, "
        f"engine calls {calls}"
    )
    print(summary("engine directly", direct))
    print(summary("through ponder", through))
    print(
        f"{'added by ponder':<22} p50 "
        f"{statistics.median(through) - statistics.median(direct):7.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
