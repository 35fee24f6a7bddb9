"""Which layer of the gateway a profiled function belongs to, by the file it is defined in.

Used by ``in_process_cost.py --layers`` (cProfile's own time per function) and by
``gateway_cost.py --layers`` (py-spy's samples, charged to the innermost frame): both say
how much of a request's cost each layer holds, which bounds what any change to one layer
can remove.
"""

from __future__ import annotations

from collections.abc import Iterable

#: A file-path fragment -> its layer; the first match wins, so the narrower come first.
_BY_PATH: list[tuple[str, str]] = [
    ("/benchmarks/", "the benchmark's own code and scripted engine"),
    ("/ponder/strategies/testing.py", "the benchmark's own code and scripted engine"),
    ("/ponder/strategies/", "Ponder: strategies (planning a run, budgets, the engine seam)"),
    ("/ponder/server/engines/", "Ponder: engine client"),
    ("/ponder/server/", "Ponder: server (middleware, planning, serving, responses, metrics)"),
    ("/ponder/", "Ponder: other packages"),
    ("/uvicorn/", "uvicorn and httptools (HTTP server)"),
    ("/httptools/", "uvicorn and httptools (HTTP server)"),
    ("/starlette/", "Starlette and FastAPI"),
    ("/fastapi/", "Starlette and FastAPI"),
    ("/aiohttp/", "aiohttp, yarl, multidict (engine HTTP client)"),
    ("/yarl/", "aiohttp, yarl, multidict (engine HTTP client)"),
    ("/multidict/", "aiohttp, yarl, multidict (engine HTTP client)"),
    ("/pydantic", "pydantic"),
    ("/prometheus_client/", "prometheus-client"),
    # asyncio's transports make the send and recv system calls: on loopback the kernel's
    # delivery to the receiving socket runs inside the sender's send.
    ("/asyncio/selector_events.py", "sockets (asyncio's transports: send, recv)"),
    ("/asyncio/", "asyncio (tasks, the event loop)"),
    ("/selectors.py", "asyncio (tasks, the event loop)"),
    ("/json/", "json"),
]

#: C functions as cProfile names them ("<method 'run' of '_contextvars.Context' objects>").
_C_FUNCTIONS: list[tuple[str, str]] = [
    ("pydantic", "pydantic"),
    ("_asyncio", "asyncio (tasks, the event loop)"),
    ("_contextvars", "asyncio (tasks, the event loop)"),
    ("_json", "json"),
]


def layer_of(file: str, function: str = "") -> str:
    """The layer of a function defined in ``file`` (cProfile's ``"~"`` for C functions)."""
    if file == "~":
        for library, layer in _C_FUNCTIONS:
            if library in function:
                return layer
        return "built-in functions called from any layer"
    for fragment, layer in _BY_PATH:
        if fragment in file:
            return layer
    return "the standard library's other modules"


def shares(own: Iterable[tuple[str, str, float]]) -> list[tuple[str, float]]:
    """(file, function, own cost) triples -> each layer's share of the whole, largest first."""
    by_layer: dict[str, float] = {}
    for file, function, cost in own:
        layer = layer_of(file, function)
        by_layer[layer] = by_layer.get(layer, 0.0) + cost
    total = sum(by_layer.values()) or 1.0
    ranked = sorted(by_layer.items(), key=lambda item: -item[1])
    return [(layer, cost / total) for layer, cost in ranked]


def collapsed_stack_costs(lines: Iterable[str]) -> list[tuple[str, str, float]]:
    """py-spy's raw output (``--full-filenames``), each sample charged to its innermost
    frame: ``function (path:line)`` -> (path, function, samples)."""
    own: list[tuple[str, str, float]] = []
    for line in lines:
        line = line.rstrip()
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        innermost = stack.rsplit(";", 1)[-1]
        function, _, where = innermost.partition(" (")
        own.append((where.rsplit(":", 1)[0], function, float(count)))
    return own


def print_shares(title: str, ranked: list[tuple[str, float]]) -> None:
    print(f"\n{title}")
    for layer, share in ranked:
        print(f"{100 * share:6.1f}%  {layer}")
