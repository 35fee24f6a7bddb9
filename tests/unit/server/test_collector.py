"""The serving process's garbage collector: frozen and tuned while the gateway runs, as it
was once it stops; an app in a shared process (tests, embedding) leaves it alone."""

from __future__ import annotations

import gc

import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from ponder.server import cli
from ponder.server.app import create_app
from ponder.server.collector import YOUNG_THRESHOLD, tuned_for_serving
from ponder.server.engines.provider import StaticEngines
from ponder.server.settings import Settings
from ponder.strategies.testing import ScriptedEngine


def test_the_heap_is_frozen_and_young_collections_rarer_until_the_end() -> None:
    before = gc.get_threshold()
    # Container objects alive when the heap is frozen.
    kept: list[list[int]] = [[] for _ in range(100)]
    with tuned_for_serving():
        assert gc.get_freeze_count() >= len(kept)
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *before[1:])
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


async def test_only_the_serving_process_tunes_its_collector() -> None:
    before = gc.get_threshold()
    for tune, threshold in ((False, before[0]), (True, YOUNG_THRESHOLD)):
        app = create_app(
            Settings(engine_urls=["http://unused"]),
            engines=StaticEngines({"tiny": ScriptedEngine(model="tiny")}),
            tune_collector=tune,
        )
        async with app.router.lifespan_context(app):
            assert gc.get_threshold()[0] == threshold
            assert (gc.get_freeze_count() > 0) is tune
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() == 0


def served_app(monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    """The app `ponder serve` hands uvicorn (which is not started)."""
    served: list[FastAPI] = []
    monkeypatch.setattr("ponder.server.cli.uvicorn.run", lambda app, **_: served.append(app))
    result = CliRunner().invoke(cli.app, ["serve", "--engine-url", "http://127.0.0.1:9/v1"])
    assert result.exit_code == 0, result.output
    (app,) = served
    return app


async def test_ponder_serve_runs_an_app_that_tunes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    app = served_app(monkeypatch)
    async with app.router.lifespan_context(app):
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    assert gc.get_freeze_count() == 0


async def test_an_operator_can_keep_pythons_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PONDER_TUNE_COLLECTOR", "false")
    app = served_app(monkeypatch)
    before = gc.get_threshold()
    async with app.router.lifespan_context(app):
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() == 0
