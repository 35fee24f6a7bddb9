from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from ponder.server.app import create_app
from ponder.server.engines.provider import StaticEngines
from ponder.server.settings import Settings
from ponder.strategies.testing import ScriptedEngine


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine(model="tiny")


@pytest.fixture
def settings() -> Settings:
    return Settings(engine_urls=["http://unused"], max_n=8, max_tokens_per_call=1000)


@pytest.fixture
def app(engine: ScriptedEngine, settings: Settings) -> FastAPI:
    return create_app(settings, engines=StaticEngines({"tiny": engine}))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client
