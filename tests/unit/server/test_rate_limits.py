"""Per-key limits through the whole app, with counters in process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ponder.server.access import read_keys_file
from ponder.server.app import create_app
from ponder.server.engines.provider import StaticEngines
from ponder.server.rate_limits import RateLimit, RateLimiter
from ponder.server.settings import Settings
from ponder.strategies.engine import EngineError, Generation, Prompt, Sampling
from ponder.strategies.testing import ScriptedEngine


class EngineGone(EngineError):
    pass


CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "two plus two"}]}


async def client_for(
    engine: ScriptedEngine | None = None, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        Settings(engine_urls=["http://unused"], **settings),
        engines=StaticEngines({"tiny": engine or ScriptedEngine(model="tiny")}),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


@pytest.fixture(autouse=True)
def one_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request of a test falls in one window, however the clock turns."""
    monkeypatch.setattr(RateLimiter, "clock", staticmethod(lambda: 6_000_030.0))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_requests_per_minute_then_a_429_with_retry_after() -> None:
    async for client in client_for(api_keys=["sk-a", "sk-b"], key_requests_per_minute=2):
        first = await client.post("/v1/chat/completions", json=CHAT, headers=bearer("sk-a"))
        assert first.headers["x-ratelimit-limit-requests"] == "2"
        assert first.headers["x-ratelimit-remaining-requests"] == "1"
        assert first.headers["x-ratelimit-reset-requests"].endswith("s")
        await client.post("/v1/chat/completions", json=CHAT, headers=bearer("sk-a"))
        over = await client.post("/v1/chat/completions", json=CHAT, headers=bearer("sk-a"))
        assert over.status_code == 429
        assert over.json()["error"]["code"] == "rate_limit_exceeded"
        assert 1 <= int(over.headers["retry-after"]) <= 60
        assert over.headers["x-ratelimit-remaining-requests"] == "0"
        # Another key has its own budget; other paths are not counted.
        other = await client.post("/v1/chat/completions", json=CHAT, headers=bearer("sk-b"))
        assert other.status_code == 200
        assert (await client.get("/v1/models", headers=bearer("sk-a"))).status_code == 200


async def test_tokens_per_minute_count_what_the_engines_spent() -> None:
    async for client in client_for(api_keys=["sk-a"], key_tokens_per_minute=20):
        first = await client.post("/v1/chat/completions", json=CHAT, headers=bearer("sk-a"))
        assert first.status_code == 200
        usage = first.json()["usage"]
        assert usage["prompt_tokens"] + usage["completion_tokens"] > 0
        assert first.headers["x-ratelimit-remaining-tokens"] == "20"  # counted after it
        second = await client.post("/v1/chat/completions", json=CHAT, headers=bearer("sk-a"))
        spent = usage["prompt_tokens"] + usage["completion_tokens"]
        assert second.headers["x-ratelimit-remaining-tokens"] == str(max(0, 20 - spent))
        while (
            await client.post("/v1/chat/completions", json=CHAT, headers=bearer("sk-a"))
        ).status_code == 200:
            pass  # a few tokens each: the minute's 20 run out
        over = await client.post("/v1/chat/completions", json=CHAT, headers=bearer("sk-a"))
        assert over.status_code == 429
        assert "tokens per minute" in over.json()["error"]["message"]


@dataclass
class FailsAfterOneCall(ScriptedEngine):
    """Answers the first call of each request (``fresh``), fails the ones after."""

    fresh: bool = True

    async def generate(self, prompt: Prompt, *, n: int = 1, sampling: Sampling) -> Generation:
        if not self.fresh:
            raise EngineGone("gone")
        self.fresh = False
        return await super().generate(prompt, n=n, sampling=sampling)


async def test_a_request_that_fails_after_some_calls_still_pays_for_them() -> None:
    engine = FailsAfterOneCall(model="tiny")
    sr = {**CHAT, "ponder": {"strategy": "sr", "rounds": 1}}
    async for client in client_for(engine, api_keys=["sk-a"], key_tokens_per_minute=1000):
        # The draft is made, the refinement fails: a 5xx, and the draft's tokens are spent.
        failed = await client.post("/v1/chat/completions", json=sr, headers=bearer("sk-a"))
        assert failed.status_code >= 500
        engine.fresh = True
        after = await client.post("/v1/chat/completions", json=CHAT, headers=bearer("sk-a"))
        assert after.status_code == 200
        assert int(after.headers["x-ratelimit-remaining-tokens"]) < 1000


async def test_requests_at_once() -> None:
    engine = ScriptedEngine(model="tiny", delay=0.5)
    async for client in client_for(engine, api_keys=["sk-a"], key_concurrent_requests=1):
        slow = asyncio.create_task(
            client.post("/v1/chat/completions", json=CHAT, headers=bearer("sk-a"))
        )
        await asyncio.sleep(0.1)
        busy = await client.post("/v1/chat/completions", json=CHAT, headers=bearer("sk-a"))
        assert busy.status_code == 429
        assert "at once" in busy.json()["error"]["message"]
        assert (await slow).status_code == 200
        after = await client.post("/v1/chat/completions", json=CHAT, headers=bearer("sk-a"))
        assert after.status_code == 200  # the place was given back


def test_a_keys_file_line_may_set_limits_of_its_own(tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("sk-a rpm=5 concurrent=2\nsk-b admin\n")
    default = RateLimit(requests_per_minute=100, tokens_per_minute=1000)
    a, b = read_keys_file(keys, default)
    assert a.limit == RateLimit(requests_per_minute=5, tokens_per_minute=1000, concurrent=2)
    assert (b.admin, b.limit) == (True, default)
    keys.write_text("sk-a rpm=0\n")
    with pytest.raises(ValueError, match="rpm=0"):
        read_keys_file(keys)
