"""Serving a completion: plan it, answer from the cache or run it, reply (streamed or not).

The request's path, one module a step: :mod:`~ponder.server.planning` (the
plan), :mod:`~ponder.server.running` (the strategy runs),
:mod:`~ponder.server.responses` (the response object),
:mod:`~ponder.server.streaming` (SSE and disconnects) and
:mod:`~ponder.server.request_log`; chat and text completions differ only in
their :mod:`~ponder.server.endpoints`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import Response

from ponder.server import sse
from ponder.server.cache import Cache
from ponder.server.endpoints import CompletionBody, CompletionResponse
from ponder.server.engines.provider import EngineProvider
from ponder.server.errors import NoEngineReady, PonderError, error_response, to_ponder_error
from ponder.server.frontier import FrontierStore
from ponder.server.metrics import Metrics
from ponder.server.note_gate import NoteGate
from ponder.server.planning import Plan, PlanBuilder
from ponder.server.request_log import record_request
from ponder.server.responses import JSONResponse, json_of, response_of
from ponder.server.running import Outcome, Runner
from ponder.server.settings import Settings
from ponder.server.streaming import (
    CACHE_HEADER,
    ChunkWriter,
    ClientGone,
    cancel,
    event_stream,
    unless_client_leaves,
    wait_for_disconnect,
)
from ponder.strategies.acceptance import watch_engines_taking_calls
from ponder.strategies.budget import combine_parallel
from ponder.strategies.engine import RewardModel
from ponder.strategies.pace import Paces
from ponder.strategies.registry import Registry

__all__ = ["CACHE_HEADER", "CompletionServing"]


@dataclass
class _Finished:
    outcome: Outcome | None = None
    response: CompletionResponse | None = None
    error: PonderError | None = None
    #: The client left before the answer was computed.
    gone: bool = False


class CompletionServing:
    """The work behind /v1/chat/completions and /v1/completions."""

    def __init__(
        self,
        settings: Settings,
        engines: EngineProvider,
        registry: Registry,
        metrics: Metrics,
        cache: Cache | None = None,
        reward: RewardModel | None = None,
        frontier: FrontierStore | None = None,
    ) -> None:
        self.engines = engines
        self.metrics = metrics
        self.cache = cache
        self.keepalive = settings.stream_keepalive_seconds
        paces = Paces(settings.assumed_tokens_per_second, settings.assumed_call_overhead_seconds)
        self.plans = PlanBuilder(
            settings,
            engines,
            registry,
            caching=cache is not None,
            reward_model=reward is not None,
            frontier=frontier,
            paces=paces,
        )
        self.runner = Runner(engines, cache, settings.limits, settings.resources, reward, paces)
        #: Cache keys being computed now, and when each is done: identical requests that
        #: arrive meanwhile wait for the first instead of computing it again.
        self._computing: dict[str, asyncio.Event] = {}

    async def handle(self, body: CompletionBody, request: Request) -> Response:
        """Plan the request and serve it, from the cache when it can; failures are OpenAI errors."""
        started = time.perf_counter()
        try:
            body = await self.plans.with_text_prompts(body)
            prompts = await self.plans.check_prompt_size(body)
            plan = self.plans.build(body, await self.plans.reports_for(body), prompts)
        except Exception as exc:
            error = to_ponder_error(exc)
            # Labels take no user strings: a refused request's model or
            # strategy may be anything the client typed.
            self.metrics.series(self.metrics.requests, "-", "-", str(error.status)).inc()
            return error_response(error)
        key = plan.caching.lookup_key
        if self.cache is not None and key is not None:
            computing = self._computing.get(key)
            if computing is not None:
                try:
                    await unless_client_leaves(computing.wait(), request)
                except ClientGone:
                    record_request(self.metrics, plan, 499, started, None)
                    return Response(status_code=499)
            stored = await self.cache.get(key, level="response")
            if stored is not None:
                return self._serve_cached(plan, plan.endpoint.parse(json.loads(stored)), started)
        if not self.engines.ready:
            error = NoEngineReady("no engine is ready")
            record_request(self.metrics, plan, error.status, started, None)
            return error_response(error)
        done = self._leading(key)
        if plan.stream:
            return await self._serve_stream(plan, request, started, done)
        try:
            return await self._serve(plan, request, started)
        finally:
            done()

    def _leading(self, key: str | None) -> Callable[[], None]:
        """Mark ``key`` as being computed (when no one else is); what ends that."""
        if key is None or self.cache is None or key in self._computing:
            return lambda: None
        event = self._computing[key] = asyncio.Event()

        def done() -> None:
            if self._computing.get(key) is event:
                del self._computing[key]
            event.set()

        return done

    def _response(self, plan: Plan, outcome: Outcome) -> CompletionResponse:
        return response_of(plan, outcome, caching=self.cache is not None)

    async def _remember(self, plan: Plan, response: bytes, outcome: Outcome) -> None:
        """Keep ``response`` (its JSON) for the identical requests to come, when it may be."""
        key = plan.caching.store_key(outcome.deterministic)
        if self.cache is not None and key is not None:
            await self.cache.set_many({key: response})

    async def _serve(self, plan: Plan, request: Request, started: float) -> Response:
        status = 200
        outcome: Outcome | None = None
        try:
            outcome = await unless_client_leaves(self.runner.run(plan), request)
            response = self._response(plan, outcome)
            body = json_of(response)
            await self._remember(plan, body, outcome)
            return JSONResponse(body, headers={CACHE_HEADER: "miss"})
        except ClientGone:
            status = 499
            return Response(status_code=499)
        except Exception as exc:
            error = to_ponder_error(exc)
            status = error.status
            return error_response(error)
        finally:
            record_request(self.metrics, plan, status, started, outcome)
            await _spent(request, plan, outcome)

    async def _serve_stream(
        self, plan: Plan, request: Request, started: float, done: Callable[[], None]
    ) -> Response:
        """``done`` is called once the answer is computed (or failed), whichever way."""
        try:
            return await self._stream(plan, request, started, done)
        except BaseException:
            done()
            raise

    async def _stream(
        self, plan: Plan, request: Request, started: float, done: Callable[[], None]
    ) -> Response:
        queue: asyncio.Queue[bytes | _Finished] = asyncio.Queue()
        chunks = ChunkWriter(
            plan.endpoint,
            id=plan.response_id,
            model=plan.response_model,
            include_usage=plan.include_usage,
        )
        first_text: float | None = None
        notes = NoteGate(queue.put_nowait, watch_engines_taking_calls())

        async def on_delta(index: int, text: str) -> None:
            nonlocal first_text
            if first_text is None:
                first_text = time.perf_counter()
            notes.open()
            await queue.put(chunks.chunk(index, text))

        async def on_reasoning(index: int, text: str) -> None:
            notes.note(chunks.reasoning(index, text))

        async def produce() -> None:
            try:
                outcome = await self.runner.run(plan, on_delta, on_reasoning)
            except Exception as exc:
                await queue.put(_Finished(error=to_ponder_error(exc)))
                return
            # Stored here, not where the stream ends: identical requests waiting for this
            # one read it as soon as it is computed, whether or not the stream is read.
            response = self._response(plan, outcome)
            await self._remember(plan, json_of(response), outcome)
            notes.open()
            await queue.put(_Finished(outcome=outcome, response=response))

        task = asyncio.create_task(produce())
        task.add_done_callback(lambda _: done())
        try:
            first = await unless_client_leaves(queue.get(), request)
        except ClientGone:
            await cancel(task)
            record_request(self.metrics, plan, 499, started, None)
            await _spent(request, plan, None)
            return Response(status_code=499)
        finally:
            notes.close()
        if isinstance(first, _Finished) and first.error is not None:
            # Nothing has been sent yet, so the error can have its own status.
            record_request(self.metrics, plan, first.error.status, started, None)
            return error_response(first.error)

        # A client that leaves while the strategy works silently (drafting, distilling) would
        # be noticed only at the next write; its engine work is stopped as soon as it leaves.
        watch = asyncio.create_task(wait_for_disconnect(request))

        def left(watched: asyncio.Task[None]) -> None:
            if not watched.cancelled():
                task.cancel()
                queue.put_nowait(_Finished(gone=True))

        watch.add_done_callback(left)

        async def body() -> AsyncGenerator[bytes, None]:
            nonlocal first_text
            status, outcome = 200, None
            item: bytes | _Finished | None = first
            try:
                while not isinstance(item, _Finished):
                    # What queued up while the last write went out leaves in one write.
                    batch = [item] if item is not None else []
                    item = None
                    while not queue.empty():
                        queued = queue.get_nowait()
                        if isinstance(queued, _Finished):
                            item = queued
                            break
                        batch.append(queued)
                    if batch:
                        yield b"".join(batch)
                    if item is None:
                        item = await self._next(queue)
                if item.gone:
                    status = 499
                    return
                if item.error is not None:
                    status = item.error.status
                    yield sse.event(item.error.envelope())
                    yield sse.DONE
                    return
                outcome, response = item.outcome, item.response
                assert outcome is not None
                assert response is not None
                endings = [
                    plan.endpoint.ending(i, a, chunks.started(i), plan.shape.logprobs)
                    for i, a in enumerate(outcome.run.answers)
                ]
                if first_text is None and any(end.text for end in endings):
                    first_text = time.perf_counter()
                # The endings, the usage and [DONE] leave in one write.
                yield b"".join(chunks.ending(endings, response.usage, response.ponder))
            except asyncio.CancelledError:
                status = 499
                raise
            finally:
                await cancel(watch)
                await cancel(task)
                record_request(self.metrics, plan, status, started, outcome, first_text=first_text)
                await _spent(request, plan, outcome)

        return event_stream(body(), cache="miss")

    async def _next(self, queue: asyncio.Queue[bytes | _Finished]) -> bytes | _Finished:
        """The stream's next event; a keep-alive comment after a silence, so that proxies
        that cut idle connections do not cut a strategy that is still working."""
        if not queue.empty():
            return queue.get_nowait()
        try:
            return await asyncio.wait_for(queue.get(), timeout=self.keepalive)
        except TimeoutError:
            return sse.comment("keep-alive")

    def _serve_cached(self, plan: Plan, stored: CompletionResponse, started: float) -> Response:
        """A response from the cache: the stored answer under this request's id and time."""
        stored.ponder.cache = "hit"
        if not plan.stream:
            hit = stored.model_copy(update={"id": plan.response_id, "created": int(time.time())})
            record_request(self.metrics, plan, 200, started, None, cached=True)
            return JSONResponse(json_of(hit), headers={CACHE_HEADER: "hit"})
        chunks = ChunkWriter(
            plan.endpoint,
            id=plan.response_id,
            model=plan.response_model,
            include_usage=plan.include_usage,
        )

        async def body() -> AsyncGenerator[bytes, None]:
            status = 200
            first_text = time.perf_counter()
            try:
                yield b"".join(
                    chunks.ending(plan.endpoint.endings(stored), stored.usage, stored.ponder)
                )
            except asyncio.CancelledError:
                status = 499
                raise
            finally:
                record_request(
                    self.metrics, plan, status, started, None, cached=True, first_text=first_text
                )

        return event_stream(body(), cache="hit")


async def _spent(request: Request, plan: Plan, outcome: Outcome | None) -> None:
    """Tell the key's rate limits (when it has some) what the engines spent; for a request
    that did not finish (its client left, a call failed), what its calls recorded so far."""
    # Read from the scope's state as Access put it there: `getattr(request.state, ...)` on
    # a missing name raises and catches an AttributeError, on every request without a key.
    spend: Callable[[int], Awaitable[None]] | None = request.scope.get("state", {}).get(
        "spend_tokens"
    )
    if spend is None:
        return
    usage = (
        outcome.run.usage
        if outcome is not None
        else combine_parallel([job.budget.usage() for job in plan.jobs])
    )
    if usage.prompt_tokens + usage.completion_tokens:
        await spend(usage.prompt_tokens + usage.completion_tokens)
