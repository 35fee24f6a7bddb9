"""Streaming clients by the hundred through ``ponder serve``, for a minute: latency, time to
first token, errors, the gateway's memory over the run and the connections it holds after.

    python benchmarks/load.py [--clients 200] [--seconds 60] [--max-tokens 32]
    python benchmarks/load.py --engine llamacpp --clients 200 --seconds 60 --max-tokens 32

The engine is the stub of ``tests/stub_engine.py`` (words at ``--token-interval``, so that
the gateway is what is measured), or llama.cpp's server with SmolLM2 (``--engine
llamacpp``, 8 slots: most clients queue). Run from the repository's root; starts its own
engine and gateway on free ports and stops them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from ponder.server.engines.catalog import SMOLLM2_135M, fetch
from ponder.server.engines.managed import ManagedEngine, free_port, llamacpp_engine
from ponder.server.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.load import open_connections, rss_mib, run_load


def engine_process(kind: str, token_interval: float, logs: Path) -> tuple[ManagedEngine, str]:
    port = free_port()
    if kind == "llamacpp":
        gguf = fetch(SMOLLM2_135M, Settings().cache_dir)
        engine = llamacpp_engine(gguf, alias="smollm2-135m", port=port, log_file=logs / "e.log")
        return engine, "smollm2-135m"
    argv = [sys.executable, "-m", "tests.stub_engine", "--port", str(port)]
    argv += ["--token-interval", str(token_interval)]
    return ManagedEngine("stub", argv, port=port, log_file=logs / "engine.log"), "stub"


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--token-interval", type=float, default=0.02, help="the stub's pace")
    parser.add_argument("--engine", choices=["stub", "llamacpp"], default="stub")
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="ponder-load-"))
    engine, model = engine_process(args.engine, args.token_interval, logs)
    port = free_port()
    argv = [sys.executable, "-m", "ponder.server", "serve", "--port", str(port)]
    argv += ["--engine-url", engine.url + "/v1", "--no-cache", "--log-level", "warning"]
    gateway = ManagedEngine("ponder", argv, port=port, ready_path="/ready", log_file=logs / "g")
    with engine, gateway:
        assert gateway.process is not None
        pid = gateway.process.pid
        asyncio.run(run_load(gateway.url, model=model, clients=10, seconds=2, max_tokens=4))
        samples = [rss_mib(pid)]
        cpu_before = cpu_seconds(pid)
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(1.0):
                samples.append(rss_mib(pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        result = asyncio.run(
            run_load(
                gateway.url,
                model=model,
                clients=args.clients,
                seconds=args.seconds,
                max_tokens=args.max_tokens,
            )
        )
        cpu = cpu_seconds(pid) - cpu_before
        stop.set()
        sampler.join()
        time.sleep(2)  # closed connections leave the table
        left_served, left_engine = open_connections(pid, port)
        end = rss_mib(pid)
    print(
        f"{args.clients} streaming clients for {args.seconds:.0f} s, max_tokens "
        f"{args.max_tokens}, engine {args.engine}"
        + (f" ({args.token_interval * 1000:.0f} ms a token)" if args.engine == "stub" else "")
    )
    print(result.summary())
    print(
        f"gateway RSS: {samples[0]:.0f} MiB before, {max(samples):.0f} MiB at most, "
        f"{end:.0f} MiB after"
    )
    tokens = result.requests * args.max_tokens
    print(
        f"gateway CPU: {cpu:.1f} s over {result.seconds:.0f} s "
        f"({cpu / max(result.requests, 1) * 1000:.1f} ms a stream, "
        f"{cpu / max(tokens, 1) * 1e6:.0f} us a token relayed)"
    )
    print(f"open after: {left_served} client connections, {left_engine} to the engine (pooled)")
    for error in result.errors[:5]:
        print("error:", error)
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
