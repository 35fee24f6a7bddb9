"""Streaming clients by the hundred against a real gateway and a stub engine (real
processes over HTTP): every answer whole, memory flat, no connection left open.
``benchmarks/load.py`` runs the longer version and prints the figures."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from ponder.server.engines.managed import ManagedEngine, free_port
from tests.integration.conftest import gateway_process
from tests.load import open_connections, rss_mib, run_load

CLIENTS = 100


def stub_engine(logs: Path) -> ManagedEngine:
    port = free_port()
    argv = [sys.executable, "-m", "tests.stub_engine", "--port", str(port)]
    return ManagedEngine("stub", argv, port=port, log_file=logs / f"stub-{port}.log")


def test_a_hundred_streaming_clients_get_whole_answers_and_leave_nothing_behind(
    logs: Path,
) -> None:
    with (
        stub_engine(logs) as engine,
        gateway_process(logs, f"--engine-url={engine.url}/v1", "--no-cache") as gateway,
    ):
        assert gateway.process is not None
        pid = gateway.process.pid

        def load(seconds: float) -> None:
            result = asyncio.run(
                run_load(gateway.url, model="stub", clients=CLIENTS, seconds=seconds, max_tokens=16)
            )
            print(result.summary(), f"gateway RSS {rss_mib(pid):.0f} MiB")
            assert result.errors == []
            assert result.requests >= CLIENTS

        load(3)  # warm: the gateway's pools and buffers reach their size
        warm = rss_mib(pid)
        load(6)
        load(6)
        # Flat: a thousand more requests leave no per-request memory behind.
        assert rss_mib(pid) - warm < 24
        deadline = time.monotonic() + 10
        while open_connections(pid, gateway.port)[0]:
            assert time.monotonic() < deadline, "client connections left open"
            time.sleep(0.1)
        # Connections to the engine are pooled for reuse while requests come, and closed once
        # idle past the pool's keep-alive: none is left behind (the health check's may be
        # open at the moment it is read).
        while (left := open_connections(pid, gateway.port)[1]) > 1:
            assert time.monotonic() < deadline + 10, f"{left} engine connections left open"
            time.sleep(0.1)
