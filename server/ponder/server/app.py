"""The FastAPI application factory."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext

from fastapi import FastAPI

from ponder.server.access import Access, KeyRing, default_allowed_hosts
from ponder.server.admission import InFlightLimit
from ponder.server.body_limit import BodyLimit
from ponder.server.cache import Cache, CacheStore, MemoryStore, RedisStore
from ponder.server.collector import tuned_for_serving
from ponder.server.completion_routes import CompletionRoutes
from ponder.server.engines.discovery import DnsReplicas
from ponder.server.engines.http_engine import HTTPEngine
from ponder.server.engines.managed import die_with_parent
from ponder.server.engines.pool import EnginePool
from ponder.server.engines.provider import EngineProvider
from ponder.server.engines.retry import RetryPolicy
from ponder.server.engines.reward import HTTPRewardModel
from ponder.server.errors import install_error_handlers
from ponder.server.frontier import FileFrontier, FrontierStore, RedisFrontier, read_report
from ponder.server.gateway import Gateway
from ponder.server.metrics import Metrics
from ponder.server.openapi import install_openapi
from ponder.server.rate_limits import LocalCounters, RateLimit, RateLimiter, RedisCounters
from ponder.server.routes import router
from ponder.server.settings import Settings
from ponder.strategies.registry import Registry

#: Where ``ponder serve --workers N`` hands its settings to the worker processes.
SETTINGS_ENV = "PONDER_SETTINGS_JSON"


def build_pool(settings: Settings, metrics: Metrics | None = None) -> EnginePool:
    """A pool over ``settings.engine_urls`` and the replicas behind ``settings.engine_dns``."""
    retry = RetryPolicy(attempts=settings.engine_retries)

    def replica(url: str) -> HTTPEngine:
        return HTTPEngine(
            url,
            timeout=settings.engine_timeout,
            connect_timeout=settings.engine_connect_timeout,
            retry=retry,
            api_key=settings.engine_api_key,
            stream_calls=settings.engine_stream_calls,
            aiohttp_pool=settings.engine_aiohttp_pool,
        )

    return EnginePool(
        [replica(url) for url in settings.engine_urls],
        health_interval=settings.health_interval,
        health_silences=settings.health_silences,
        metrics=metrics,
        dns=[DnsReplicas(name) for name in settings.engine_dns],
        dns_interval=settings.engine_dns_interval,
        make_replica=replica,
    )


def build_cache(settings: Settings, metrics: Metrics) -> Cache | None:
    """The configured cache: Redis when ``redis_url`` is set, else in process; None when off."""
    if not settings.cache:
        return None
    store: CacheStore
    if settings.redis_url:
        store = RedisStore(settings.redis_url, timeout=settings.cache_timeout)
    else:
        store = MemoryStore(
            max_entries=settings.cache_max_entries, max_bytes=settings.cache_max_bytes
        )
    return Cache(
        store,
        ttl=settings.cache_ttl,
        timeout=settings.cache_timeout,
        cooldown=settings.cache_cooldown,
        metrics=metrics,
    )


def build_frontier(settings: Settings) -> FrontierStore:
    """Where evaluation results are kept: Redis when ``redis_url`` is set, else a file."""
    if settings.redis_url:
        return RedisFrontier(settings.redis_url, timeout=settings.cache_timeout)
    return FileFrontier(settings.frontier_path)


def create_app(
    settings: Settings,
    *,
    engines: EngineProvider | None = None,
    registry: Registry | None = None,
    metrics: Metrics | None = None,
    tune_collector: bool = False,
) -> FastAPI:
    """The gateway over ``engines``, or over a pool of ``settings.engine_urls``.

    ``tune_collector``: the process is this gateway's alone (``ponder serve``), so once
    started it may freeze its heap and tune the garbage collector (``ponder.server.collector``),
    unless ``settings.tune_collector`` says not to.
    """
    tune_collector = tune_collector and settings.tune_collector
    metrics = metrics or Metrics()
    pool: EnginePool | None = None
    if engines is None:
        pool = engines = build_pool(settings, metrics)
    cache = build_cache(settings, metrics)
    # Per-key counters: shared through Redis by every gateway on it, else this process's.
    counters: LocalCounters | RedisCounters = (
        RedisCounters(settings.redis_url, timeout=settings.cache_timeout)
        if settings.redis_url
        else LocalCounters()
    )
    limiter = RateLimiter(counters)
    reward = None
    if settings.reward_url:
        reward = HTTPRewardModel(
            settings.reward_url,
            model=settings.reward_model,
            timeout=settings.engine_timeout,
            api_key=settings.engine_api_key,
        )
    frontier = build_frontier(settings)
    gateway = Gateway(
        settings=settings,
        engines=engines,
        registry=registry or Registry.default(),
        metrics=metrics,
        cache=cache,
        reward=reward,
        frontier=frontier,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if pool is not None:
            await pool.start()
        for path in settings.frontier:
            report = read_report(path)
            gateway.evals.record(report)
            gateway.evals.flag_frontier(await frontier.save(report))
        try:
            with tuned_for_serving() if tune_collector else nullcontext():
                yield
        finally:
            await frontier.aclose()
            if pool is not None:
                await pool.aclose()
            if cache is not None:
                await cache.aclose()
            if reward is not None:
                await reward.aclose()
            if isinstance(counters, RedisCounters):
                await counters.aclose()

    app = FastAPI(title="Ponder", version="0.1.0", lifespan=lifespan)
    app.state.gateway = gateway
    install_error_handlers(app)
    app.include_router(router)
    install_openapi(app)
    limits = settings.limits
    # Innermost: an admitted completion goes straight to the serving layer.
    app.add_middleware(CompletionRoutes, gateway=gateway)
    app.add_middleware(InFlightLimit, max_in_flight=limits.max_in_flight, gauge=metrics.in_flight)
    # Outside admission: a body is read (or refused) before the request takes a place.
    app.add_middleware(
        BodyLimit,
        max_bytes=limits.max_body_bytes,
        timeout=settings.body_timeout_seconds,
        max_bytes_held=settings.max_body_bytes_held,
    )
    # Outermost: a request that may not be served costs no admission and no body read.
    app.add_middleware(
        Access,
        ring=KeyRing(
            settings.api_keys,
            settings.admin_api_keys,
            settings.api_keys_file,
            limit=RateLimit(
                requests_per_minute=settings.key_requests_per_minute,
                tokens_per_minute=settings.key_tokens_per_minute,
                concurrent=settings.key_concurrent_requests,
            ),
        ),
        allowed_hosts=settings.allowed_hosts or default_allowed_hosts(settings.host),
        metrics_open=settings.metrics_open,
        limiter=limiter,
    )
    return app


def app_from_environment() -> FastAPI:
    """The app of one worker process of ``ponder serve --workers N`` (a uvicorn factory)."""
    # Should `ponder serve` be killed outright, its workers must not serve on alone.
    die_with_parent(signal.SIGTERM)
    settings = Settings.model_validate_json(os.environ[SETTINGS_ENV])
    return create_app(settings, tune_collector=True)
