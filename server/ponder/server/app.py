"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ponder.server.admission import InFlightLimit
from ponder.server.body_limit import BodyLimit
from ponder.server.engines.http_engine import HTTPEngine
from ponder.server.engines.pool import EnginePool
from ponder.server.engines.provider import EngineProvider
from ponder.server.engines.retry import RetryPolicy
from ponder.server.errors import install_error_handlers
from ponder.server.gateway import Gateway
from ponder.server.metrics import Metrics
from ponder.server.routes import router
from ponder.server.settings import Settings
from ponder.strategies.registry import Registry


def build_pool(settings: Settings) -> EnginePool:
    """A pool over ``settings.engine_urls``."""
    retry = RetryPolicy(attempts=settings.engine_retries)
    replicas = [
        HTTPEngine(
            url,
            timeout=settings.engine_timeout,
            connect_timeout=settings.engine_connect_timeout,
            retry=retry,
            api_key=settings.engine_api_key,
        )
        for url in settings.engine_urls
    ]
    return EnginePool(replicas, health_interval=settings.health_interval)


def create_app(
    settings: Settings,
    *,
    engines: EngineProvider | None = None,
    registry: Registry | None = None,
    metrics: Metrics | None = None,
) -> FastAPI:
    """The gateway over ``engines``, or over a pool of ``settings.engine_urls``."""
    pool: EnginePool | None = None
    if engines is None:
        pool = engines = build_pool(settings)
    gateway = Gateway(
        settings=settings,
        engines=engines,
        registry=registry or Registry.default(),
        metrics=metrics or Metrics(),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if pool is not None:
            await pool.start()
        try:
            yield
        finally:
            if pool is not None:
                await pool.aclose()

    app = FastAPI(title="Ponder", version="0.1.0", lifespan=lifespan)
    app.state.gateway = gateway
    install_error_handlers(app)
    app.include_router(router)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(InFlightLimit, max_in_flight=settings.max_in_flight)
    return app
