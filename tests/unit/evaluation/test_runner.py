"""The runner's control flow over a fake server (httpx's MockTransport): what it sends,
what it records, and that a second run asks only what the first did not finish."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from ponder.clients.client import AsyncPonder
from ponder.clients.evaluation.configs import Configuration
from ponder.clients.evaluation.datasets import Dataset, Problem
from ponder.clients.evaluation.runner import (
    ITEMS_FILE,
    Runner,
    RunOptions,
    latest_records,
    load_finished,
)

DATASET = Dataset(
    "toy", "numeric", [Problem(i, f"What is {i} + {i}?", str(2 * i)) for i in range(4)]
)
PDR = Configuration("pdr [2,1]", "pdr", {"schedule": [2, 1]})


class FakeServer:
    """Answers 2i for problem i, except the questions in ``fail`` (a 400)."""

    def __init__(self, fail: set[int] | None = None) -> None:
        self.fail = fail or set()
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        i = int(body["messages"][0]["content"].split()[2])
        if i in self.fail:
            return httpx.Response(400, json={"error": {"message": "no", "type": "x"}})
        text = f"{i} plus {i} is {2 * i if i != 3 else 7}. #### {2 * i if i != 3 else 7}"
        return httpx.Response(
            200,
            json={
                "id": "c",
                "model": "m",
                "choices": [{"index": 0, "message": {"content": text}, "finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": 10,
                    "completion_tokens": 5,
                    "total_tokens": 15,
                    "ponder": {"calls": 3, "sequential_tokens": 40, "all_tokens": 90},
                },
                "ponder": {
                    "strategy": "pdr",
                    "answers": [None],
                    "details": {"rounds": 2, "stopped_after_round": None},
                },
            },
        )


async def run(server: FakeServer, out: Path, options: RunOptions) -> None:
    transport = httpx.MockTransport(server)
    async with AsyncPonder("http://ponder/v1", transport=transport, max_retries=0) as client:
        await Runner(client, DATASET, options, out).run(PDR)


async def test_items_are_recorded_graded_and_resumed(tmp_path: Path) -> None:
    first = FakeServer(fail={1})
    options = RunOptions(model="m", seed=7, max_tokens=64, concurrency=2)
    await run(first, tmp_path, options)
    body = first.bodies[0]
    assert body["ponder"] == {"strategy": "pdr", "schedule": [2, 1], "cache": "no-store"}
    assert (body["model"], body["seed"], body["max_tokens"]) == ("m", 7, 64)
    records = {r["item"]: r for r in latest_records(tmp_path / ITEMS_FILE).values()}
    assert sorted(records) == [0, 1, 2, 3]
    assert records[1]["error"]
    assert records[2]["prediction"] == "4"
    assert records[2]["correct"]
    assert not records[3]["correct"]  # the fake says 7 for 3 + 3
    assert records[2]["sequential_tokens"] == 40
    assert records[2]["all_tokens"] == 90
    assert records[2]["calls"] == 3
    assert records[2]["finish_reason"] == "stop"
    assert records[2]["details"] == {"rounds": 2, "stopped_after_round": None}
    # The run's settings, so that a resume or a report with other settings is refused.
    assert all((r["model"], r["seed"], r["max_tokens"]) == ("m", 7, 64) for r in records.values())
    assert set(load_finished(tmp_path / ITEMS_FILE)) == {(PDR.key, i) for i in (0, 2, 3)}

    # An interrupted write leaves half a line; the item it was is asked again.
    items = tmp_path / ITEMS_FILE
    lines = items.read_text().splitlines()
    last = json.loads(lines[-1])["item"]
    items.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])

    second = FakeServer()
    await run(second, tmp_path, options)
    asked = sorted(int(b["messages"][0]["content"].split()[2]) for b in second.bodies)
    assert asked == sorted({1, last})  # the failed one and the cut one, nothing else
    records = {r["item"]: r for r in latest_records(items).values()}
    assert not records[1].get("error")

    third = FakeServer()
    await run(third, tmp_path, options)
    assert third.bodies == []  # everything finished: nothing asked


async def test_trace_and_cache_options(tmp_path: Path) -> None:
    server = FakeServer()
    await run(server, tmp_path, RunOptions(model="m", trace=True, cache=True))
    assert server.bodies[0]["ponder"] == {"strategy": "pdr", "schedule": [2, 1], "trace": True}
    assert "seed" not in server.bodies[0]


async def test_a_budget_configuration_sends_the_budget_and_no_strategy(tmp_path: Path) -> None:
    server = FakeServer()
    budget = Configuration("budget 10s", "budget", {"budget": {"latency_s": 10}})
    transport = httpx.MockTransport(server)
    async with AsyncPonder("http://ponder/v1", transport=transport, max_retries=0) as client:
        await Runner(client, DATASET, RunOptions(model="m"), tmp_path).run(budget)
    assert server.bodies[0]["ponder"] == {"budget": {"latency_s": 10}, "cache": "no-store"}
    records = list(latest_records(tmp_path / ITEMS_FILE).values())
    assert {r["config"] for r in records} == {"budget 10s"}
