"""Ponder's own code per request, with no HTTP on either side: CPU and Python calls.

    python benchmarks/in_process_cost.py [--requests 3000] [--stream] [--profile 40]
        [--layers] [--concurrency 32] [--default-collector]

Chat completions (``direct``, cache off) are sent one after another straight into
the ASGI application, whose engine is the in-process scripted engine: no uvicorn,
no sockets, no engine client, so what is measured is the middleware, the route,
planning, the strategy, the response and the metrics. The count of Python calls
per request (cProfile's, C functions included) does not depend on what else the
machine runs, so it shows a change's effect even beside an evaluation; the CPU per
request does, so compare runs made back to back. ``--profile N`` prints the N
functions with the most cumulative time; ``--layers`` divides the profile's own time
(each function's time without its callees) between the layers a request passes
through (Starlette and FastAPI, Ponder's server, its strategies, pydantic,
prometheus-client, asyncio, the rest), which says how much of the cost any change to
one layer could remove. ``benchmarks/gateway_cost.py`` measures the whole gateway
over HTTP.

``--concurrency N`` keeps N requests in flight (the scripted engine yields to the loop
on each call, so their objects are alive together, as under load) and reports the time
the garbage collector took per request; ``--default-collector`` runs with the
interpreter's collector settings instead of those ``ponder serve`` sets
(``ponder.server.collector``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import pstats
import sys
import time
from pathlib import Path

from fastapi import FastAPI
from starlette.types import Message, Scope

from ponder.server.app import create_app
from ponder.server.engines.provider import StaticEngines
from ponder.server.settings import Settings
from ponder.strategies.testing import ScriptedEngine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.collector_clock import CollectorClock
from benchmarks.layers import print_shares, shares

QUESTION = "A pet store had 13 cats and sold 5. How many?"


def print_layers(stats: pstats.Stats, requests: int) -> None:
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, object]]
    raw = stats.stats  # type: ignore[attr-defined]
    own = [(file, function, entry[2]) for (file, _line, function), entry in raw.items()]
    title = f"own time by layer, {requests} requests (under cProfile: read the shares)"
    print_shares(title, shares(own))


def request_body(stream: bool) -> bytes:
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": 16,
        "temperature": 0,
        "stream": stream,
    }
    return json.dumps(body).encode()


async def post(app: FastAPI, body: bytes) -> None:
    """One request through the ASGI app, its whole response consumed."""
    delivered = False
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never leaves
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"localhost"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    await app(scope, receive, send)
    status = sent[0]["status"]
    if status != 200:
        raise SystemExit(f"the gateway answered {status}: {sent[1:]}")


async def measure(
    requests: int,
    stream: bool,
    profile: int | None,
    concurrency: int,
    tune: bool,
    layers: bool = False,
) -> None:
    engine = ScriptedEngine(model="tiny")
    settings = Settings(engine_urls=["http://unused"], cache=False)
    app = create_app(settings, engines=StaticEngines({"tiny": engine}), tune_collector=tune)
    body = request_body(stream)
    left = requests

    async def client() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await post(app, body)
            if left % 500 == 0:
                engine.calls.clear()  # the script's record of calls would grow

    async with app.router.lifespan_context(app):
        for _ in range(200):  # warm-up: imports, first-use caches
            await post(app, body)
        profiler = cProfile.Profile() if profile is not None else None
        clock = CollectorClock()
        gc.callbacks.append(clock)
        started = time.process_time()
        if profiler is not None:
            profiler.enable()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        if profiler is not None:
            profiler.disable()
        cpu = time.process_time() - started
        gc.callbacks.remove(clock)
    kind = "streamed" if stream else "plain"
    if profiler is None:
        print(
            f"{kind}, {concurrency} in flight: {1000 * cpu / requests:.3f} ms CPU per request "
            f"over {requests}; garbage collection {1000 * clock.seconds / requests:.3f} ms "
            f"per request (collections by generation: {clock.collections})"
        )
        return
    stats = pstats.Stats(profiler)
    calls = stats.total_calls  # type: ignore[attr-defined]
    print(f"{kind}: {calls / requests:.0f} Python calls per request (under cProfile)")
    if profile:
        stats.sort_stats("cumulative").print_stats(profile)
    if layers:
        print_layers(stats, requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--stream", action="store_true", help="ask for streamed answers")
    parser.add_argument(
        "--profile", type=int, nargs="?", const=0, help="count calls; print the top N"
    )
    parser.add_argument("--layers", action="store_true", help="profile; the own time of each layer")
    parser.add_argument("--concurrency", type=int, default=1, help="requests in flight")
    parser.add_argument(
        "--default-collector", action="store_true", help="the interpreter's collector settings"
    )
    args = parser.parse_args()
    asyncio.run(
        measure(
            args.requests,
            args.stream,
            0 if args.layers and args.profile is None else args.profile,
            args.concurrency,
            tune=not args.default_collector,
            layers=args.layers,
        )
    )


if __name__ == "__main__":
    main()
