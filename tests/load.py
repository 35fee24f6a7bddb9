"""Many streaming clients against one gateway: what the load test and ``benchmarks/load.py``
send and what they measure (latency, time to first token, the gateway's memory and its
open connections)."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field

import httpx
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
    client: httpx.AsyncClient, model: str, max_tokens: int, result: LoadResult
) -> None:
    """One streamed chat request read to its end; anything but a whole answer is an error."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Say something."}],
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ponder": {"strategy": "direct"},
    }
    started = time.perf_counter()
    first: float | None = None
    usage: dict[str, int] | None = None
    done = False
    try:
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                await response.aread()
                result.errors.append(f"{response.status_code}: {response.text[:200]}")
                return
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    done = True
                    continue
                event = json.loads(line[len("data: ") :])
                if "error" in event:
                    result.errors.append(str(event["error"])[:200])
                    return
                if first is None and any(c["delta"].get("content") for c in event["choices"]):
                    first = time.perf_counter() - started
                usage = event.get("usage") or usage
    except httpx.HTTPError as error:
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
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    timeout = httpx.Timeout(120.0)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as client:
        stop_at = time.perf_counter() + seconds

        async def one_client() -> None:
            while time.perf_counter() < stop_at:
                await stream_once(client, model, max_tokens, result)

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
