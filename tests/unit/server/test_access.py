"""API keys, their scopes and the Host check, through the whole app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ponder.server.access import KeyRing, default_allowed_hosts
from ponder.server.app import create_app
from ponder.server.engines.provider import StaticEngines
from ponder.server.settings import Settings
from ponder.strategies.testing import ScriptedEngine

CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}


async def client_for(**settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        Settings(engine_urls=["http://unused"], **settings),
        engines=StaticEngines({"tiny": ScriptedEngine(model="tiny")}),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


@pytest.fixture
async def keyed() -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_for(api_keys=["sk-user"], admin_api_keys=["sk-admin"]):
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]


async def test_without_keys_the_server_is_open() -> None:
    async for client in client_for():
        assert (await client.post("/v1/chat/completions", json=CHAT)).status_code == 200


async def test_a_request_without_a_valid_key_is_a_401(keyed: httpx.AsyncClient) -> None:
    missing = await keyed.post("/v1/chat/completions", json=CHAT)
    assert_error(missing, 401, "invalid_api_key")
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = await keyed.post("/v1/chat/completions", json=CHAT, headers=bearer("sk-nope"))
    assert_error(wrong, 401, "invalid_api_key")
    basic = await keyed.get("/v1/models", headers={"Authorization": "Basic sk-user"})
    assert_error(basic, 401, "invalid_api_key")
    for key in ("sk-user", "sk-admin"):
        ok = await keyed.post("/v1/chat/completions", json=CHAT, headers=bearer(key))
        assert ok.status_code == 200


async def test_probes_stay_open_and_metrics_may_be_keyed(keyed: httpx.AsyncClient) -> None:
    for path in ("/health", "/ready", "/metrics"):
        assert (await keyed.get(path)).status_code == 200
    async for client in client_for(api_keys=["sk-user"], metrics_open=False):
        assert_error(await client.get("/metrics"), 401, "invalid_api_key")
        assert (await client.get("/metrics", headers=bearer("sk-user"))).status_code == 200


async def test_publishing_results_needs_an_admin_key(keyed: httpx.AsyncClient) -> None:
    report = {"dataset": "d", "results": [{"strategy": "cot", "config": "cot", "accuracy": 0.5}]}
    user = await keyed.post("/v1/eval/results", json=report, headers=bearer("sk-user"))
    assert_error(user, 403, "insufficient_scope")
    admin = await keyed.post("/v1/eval/results", json=report, headers=bearer("sk-admin"))
    assert admin.status_code not in (401, 403)


async def test_a_keys_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("# team keys\nsk-one\n")
    async for client in client_for(api_keys_file=keys):
        assert (await client.get("/v1/models", headers=bearer("sk-one"))).status_code == 200
        assert_error(
            await client.get("/v1/models", headers=bearer("sk-two")), 401, "invalid_api_key"
        )
        keys.write_text("sk-two admin  # rotated\n")
        assert (await client.get("/v1/models", headers=bearer("sk-two"))).status_code == 200
        assert_error(
            await client.get("/v1/models", headers=bearer("sk-one")), 401, "invalid_api_key"
        )


def test_a_malformed_keys_file_fails_at_start(tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("sk-one root\n")
    with pytest.raises(ValueError, match=r"keys\.txt:1"):
        KeyRing([], [], keys)


async def test_a_loopback_server_answers_only_to_loopback_names() -> None:
    assert default_allowed_hosts("127.0.0.1") == ["localhost", "127.0.0.1", "[::1]"]
    assert default_allowed_hosts("0.0.0.0") == ["*"]
    async for client in client_for():
        for host in ("localhost:8000", "127.0.0.1", "[::1]:8000"):
            assert (await client.get("/v1/models", headers={"Host": host})).status_code == 200
        rebound = await client.get("/v1/models", headers={"Host": "evil.example"})
        assert_error(rebound, 400, "invalid_host")
    async for client in client_for(allowed_hosts=["ponder.internal"]):
        ok = await client.get("/v1/models", headers={"Host": "ponder.internal:8000"})
        assert ok.status_code == 200


def test_keys_from_the_environment_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PONDER_API_KEYS", "sk-a, sk-b")
    monkeypatch.setenv("PONDER_ALLOWED_HOSTS", "*")
    settings = Settings()
    assert settings.api_keys == ["sk-a", "sk-b"]
    assert settings.allowed_hosts == ["*"]
