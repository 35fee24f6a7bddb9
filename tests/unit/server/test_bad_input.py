"""A hand-written set of bad inputs: each is a 4xx in OpenAI's envelope, never a 5xx, and
none reaches the engine."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from ponder.server.app import create_app
from ponder.server.engines.provider import StaticEngines
from ponder.server.settings import Settings
from ponder.strategies.registry import Registry
from ponder.strategies.testing import ScriptedEngine

CHAT = "/v1/chat/completions"
BIG = 2**63


def body(**overrides: Any) -> dict[str, Any]:
    return {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], **overrides}


def raw(value: Any) -> bytes:
    return json.dumps(value).encode()


RAW_CASES: dict[str, bytes] = {
    "not json": b"{this is not json",
    "invalid utf-8": b'{"model": "tiny", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
    "deep nesting": b'{"model": "tiny", "messages": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    "a list, not an object": raw([body()]),
    "a string": raw("hello"),
    "empty": b"",
    "role unknown": raw(body(messages=[{"role": "wizard", "content": "hi"}])),
    "content a number": raw(body(messages=[{"role": "user", "content": 5}])),
    "content an image": raw(
        body(
            messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
            ]
        )
    ),
    "messages an object": raw(body(messages={"role": "user", "content": "hi"})),
    "model missing": raw({"messages": [{"role": "user", "content": "hi"}]}),
    "model a list": raw(body(model=["tiny"])),
    "stop a number": raw(body(stop=7)),
    "ponder a list": raw(body(ponder=["cot"])),
}

NUMERIC: dict[str, list[Any]] = {
    "n": [-1, 0, 9, BIG, 1.5, "2", True],
    "max_tokens": [-1, 0, 1001, BIG, "10"],
    "temperature": [-1, 2.5, BIG, "hot"],
    "top_p": [-1, 1.5, BIG],
    "seed": [BIG, -BIG - 1, 1.5],
    "presence_penalty": [-3, 3, BIG],
}

STRATEGY_NUMERIC: dict[str, dict[str, list[Any]]] = {
    "self_consistency": {"n": [-1, 0, 65, BIG], "confidence": [0, 1, 2]},
    "best_of_n": {"n": [-1, 0, BIG]},
    "sr": {"rounds": [-1, 0, 9, BIG]},
    "pdr": {
        "schedule": [[], [0], [4, 2], [BIG, 1], [-1, 1], "4,1"],
        "workspace_tokens": [-1, 0, BIG],
        "k": [-1, 0, BIG],
    },
    "successive": {"max_steps": [-1, 0, 17, BIG], "step_max_tokens": [-1, 0, BIG]},
    "cot": {"max_tokens": [-1, 0, BIG]},
    "plan_and_solve": {"variant": [1, "ps_minus"]},
}


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine(model="tiny")


@pytest.fixture
async def client(engine: ScriptedEngine) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        engine_urls=["http://unused"], max_n=8, max_tokens_per_call=1000, max_body_bytes=1 << 20
    )
    app = create_app(settings, engines=StaticEngines({"tiny": engine}), registry=Registry.default())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


def assert_refused(response: httpx.Response, engine: ScriptedEngine) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    assert engine.calls == []


@pytest.mark.parametrize("name", sorted(RAW_CASES))
async def test_malformed_bodies(
    client: httpx.AsyncClient, engine: ScriptedEngine, name: str
) -> None:
    response = await client.post(
        CHAT, content=RAW_CASES[name], headers={"content-type": "application/json"}
    )
    assert_refused(response, engine)


async def test_a_body_over_the_size_cap(client: httpx.AsyncClient, engine: ScriptedEngine) -> None:
    huge = raw(body(messages=[{"role": "user", "content": "x" * (10 << 20)}]))
    response = await client.post(CHAT, content=huge, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert engine.calls == []


@pytest.mark.parametrize(
    ("field", "value"), [(f, v) for f, values in NUMERIC.items() for v in values]
)
async def test_request_numbers_out_of_range(
    client: httpx.AsyncClient, engine: ScriptedEngine, field: str, value: Any
) -> None:
    assert_refused(await client.post(CHAT, json=body(**{field: value})), engine)


@pytest.mark.parametrize(
    ("strategy", "field", "value"),
    [(s, f, v) for s, fields in STRATEGY_NUMERIC.items() for f, vs in fields.items() for v in vs],
)
async def test_strategy_parameters_out_of_range(
    client: httpx.AsyncClient, engine: ScriptedEngine, strategy: str, field: str, value: Any
) -> None:
    response = await client.post(CHAT, json=body(ponder={"strategy": strategy, field: value}))
    assert_refused(response, engine)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the body is empty"),
        (b"  \n", "the body is empty"),
        (b'{"model": "tiny",', "line 1, column 18"),
        (raw([body()]), "not an array"),
        (raw("hello"), "not a string"),
        (b"null", "not null"),
        (b"3", "not a number"),
        (b'{"model": "tiny", "n": ' + b"9" * 5000 + b"}", "a number in it is too long"),
    ],
)
async def test_a_body_that_is_not_a_json_object_says_what_it_is(
    client: httpx.AsyncClient, engine: ScriptedEngine, content: bytes, message: str
) -> None:
    response = await client.post(
        CHAT, content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_json"
    assert message in error["message"]
    assert engine.calls == []


@pytest.mark.parametrize("path", [CHAT, "/v1/completions"])
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_a_body_sent_as_another_media_type_gets_415(
    client: httpx.AsyncClient, engine: ScriptedEngine, path: str, content_type: str
) -> None:
    response = await client.post(path, content=raw(body()), headers={"content-type": content_type})
    assert response.status_code == 415
    error = response.json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert content_type in error["message"]
    assert engine.calls == []


@pytest.mark.parametrize(
    "content_type", [None, "application/json; charset=utf-8", "application/vnd.openai+json"]
)
async def test_json_is_read_with_or_without_a_content_type(
    client: httpx.AsyncClient, engine: ScriptedEngine, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post(CHAT, content=raw(body(max_tokens=4)), headers=headers)
    assert response.status_code == 200, response.text
    assert len(engine.calls) == 1
