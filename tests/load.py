"""Many streaming clients against one gateway: what the load test and ``benchmarks/load.py``
send and what they measure (latency, time to first token, the gateway's memory and its
open connections)."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field

import aiohttp
import psutil


@dataclass
class LoadResult:
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    first_tokens: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def percentile(self, values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    def summary(self) -> str:
        return (
            f"{self.requests} requests in {self.seconds:.1f} s "
            f"({self.requests / self.seconds:.1f}/s), {len(self.errors)} errors; "
            f"latency p50 {self.percentile(self.latencies, 0.5) * 1000:.0f} ms "
            f"p99 {self.percentile(self.latencies, 0.99) * 1000:.0f} ms; "
            f"first token p50 {self.percentile(self.first_tokens, 0.5) * 1000:.0f} ms "
            f"p99 {self.percentile(self.first_tokens, 0.99) * 1000:.0f} ms"
        )

    @property
    def mean_latency(self) -> float:
        return statistics.fmean(self.latencies) if self.latencies else float("nan")


async def stream_once(
    session: aiohttp.ClientSession, model: str, max_tokens: int, result: LoadResult
) -> None:
    """One streamed chat request read to its end; anything but a whole answer is an error.
    Only the lines that matter are parsed, so that the client is not what is measured."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Say something."}],
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ponder": {"strategy": "direct"},
        "ignore_eos": True,  # every answer max_tokens long, on a real engine too
    }
    started = time.perf_counter()
    first: float | None = None
    usage: dict[str, int] | None = None
    done = False
    try:
        async with session.post("/v1/chat/completions", json=body) as response:
            if response.status != 200:
                result.errors.append(f"{response.status}: {(await response.text())[:200]}")
                return
            async for raw in response.content:
                line = raw.strip()
                if not line.startswith(b"data: "):
                    continue
                if line == b"data: [DONE]":
                    done = True
                elif b'"error"' in line[:16]:
                    result.errors.append(line[:200].decode(errors="replace"))
                    return
                elif first is None and b'"content"' in line:
                    first = time.perf_counter() - started
                elif b'"usage"' in line:
                    usage = json.loads(line[len(b"data: ") :]).get("usage") or usage
    except aiohttp.ClientError as error:
        result.errors.append(repr(error))
        return
    if not done or usage is None or usage["completion_tokens"] != max_tokens:
        result.errors.append(f"incomplete stream: done={done} usage={usage}")
        return
    result.requests += 1
    result.latencies.append(time.perf_counter() - started)
    if first is not None:
        result.first_tokens.append(first)


async def run_load(
    base_url: str, *, model: str, clients: int, seconds: float, max_tokens: int
) -> LoadResult:
    """``clients`` clients, each streaming one request after another for ``seconds``."""
    result = LoadResult()
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as session:
        stop_at = time.perf_counter() + seconds

        async def one_client() -> None:
            while time.perf_counter() < stop_at:
                await stream_once(session, model, max_tokens, result)

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        result.seconds = time.perf_counter() - started
    return result


def rss_mib(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def open_connections(pid: int, port: int) -> tuple[int, int]:
    """The process's established TCP connections: (from clients to ``port``, all others)."""
    connections = [
        c for c in psutil.Process(pid).net_connections(kind="tcp") if c.status == "ESTABLISHED"
    ]
    served = sum(1 for c in connections if c.laddr.port == port)
    return served, len(connections) - served
