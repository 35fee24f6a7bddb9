"""Serving a completion: validate, pick the strategy, run it, answer (streamed or not)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ponder.server import sse
from ponder.server.cache import Cache, CacheMode, CachingEngine, cache_key
from ponder.server.cache.keys import prompt_form
from ponder.server.engines.provider import EngineProvider
from ponder.server.errors import (
    InvalidRequest,
    ModelNotFound,
    NoEngineReady,
    PonderError,
    error_response,
    to_ponder_error,
)
from ponder.server.metrics import Metrics, workspace_sizes
from ponder.server.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionChoice,
    CompletionRequest,
    PonderInfo,
    PonderUsage,
    TraceCall,
    Usage,
)
from ponder.server.selection import Selection, select
from ponder.server.settings import Settings
from ponder.strategies.base import Answer, Strategy, StrategyContext, StrategyResult
from ponder.strategies.budget import Budget, CallRecord, combine_parallel
from ponder.strategies.budget import Usage as BudgetUsage
from ponder.strategies.engine import Engine, Message, Prompt, Sampling
from ponder.strategies.registry import Registry

logger = logging.getLogger("ponder.requests")

T = TypeVar("T")

#: OpenAI fields that describe the caller, not the generation: never forwarded.
_NOT_FORWARDED = frozenset(
    {"metadata", "store", "service_tier", "prompt_cache_key", "safety_identifier"}
)

Kind = Literal["chat", "text"]

#: Response header: whether the answer came from the cache ("hit") or not ("miss").
CACHE_HEADER = "X-Ponder-Cache"


class ClientGone(Exception):
    """The client closed the connection; its engine calls were cancelled."""


@dataclass
class Job:
    """One run of a strategy: ``n`` answers for one prompt, numbered from ``offset``."""

    prompt: Prompt
    n: int
    offset: int
    budget: Budget


@dataclass
class Outcome:
    answers: list[Answer]
    usage: Usage
    records: list[CallRecord]
    details: list[dict[str, Any]] = field(default_factory=list)
    #: Every engine call was greedy or seeded: the response may be cached.
    deterministic: bool = False


@dataclass
class Plan:
    """Everything decided before the first engine call."""

    request_id: str
    kind: Kind
    selection: Selection
    strategy: Strategy[Any]
    sampling: Sampling
    jobs: list[Job]
    response_model: str
    stream: bool
    include_usage: bool
    cache_mode: CacheMode = CacheMode.DEFAULT
    #: The whole response's cache key; None when it cannot be cached.
    response_key: str | None = None


class CompletionServing:
    """The work behind /v1/chat/completions and /v1/completions."""

    def __init__(
        self,
        settings: Settings,
        engines: EngineProvider,
        registry: Registry,
        metrics: Metrics,
        cache: Cache | None = None,
    ) -> None:
        self.settings = settings
        self.engines = engines
        self.registry = registry
        self.metrics = metrics
        self.cache = cache
        self.resources = settings.resources

    async def handle(
        self, body: ChatCompletionRequest | CompletionRequest, request: Request
    ) -> Response:
        """Plan the request and serve it, from the cache when it can; failures are OpenAI errors."""
        started = time.perf_counter()
        try:
            if isinstance(body, ChatCompletionRequest):
                plan = self.plan_chat(body)
            else:
                plan = self.plan_text(body)
        except Exception as exc:
            error = to_ponder_error(exc)
            # Labels take no user strings: a refused request's model or
            # strategy may be anything the client typed.
            self.metrics.requests.labels("-", "-", str(error.status)).inc()
            return error_response(error)
        if self.cache is not None and plan.response_key is not None and plan.cache_mode.reads:
            stored = await self.cache.get(plan.response_key, level="response")
            if stored is not None:
                return self._serve_cached(plan, json.loads(stored), started)
        return await self.serve(plan, request, started)

    # -- planning --------------------------------------------------------------

    def plan_chat(self, body: ChatCompletionRequest) -> Plan:
        try:
            messages = [Message(m.role, m.text()) for m in body.messages]
        except ValueError as error:
            raise InvalidRequest(str(error), param="messages") from None
        max_tokens = body.max_completion_tokens or body.max_tokens
        return self._plan("chat", body, [messages], max_tokens, body.reasoning_effort)

    def plan_text(self, body: CompletionRequest) -> Plan:
        prompts: list[Prompt] = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
        return self._plan("text", body, prompts, body.max_tokens, body.reasoning_effort)

    def _plan(
        self,
        kind: Kind,
        body: ChatCompletionRequest | CompletionRequest,
        prompts: list[Prompt],
        max_tokens: int | None,
        reasoning_effort: str | None,
    ) -> Plan:
        settings = self.settings
        ponder = dict(body.ponder or {})
        cache_mode = _cache_mode(ponder.pop("cache", None))
        selection = select(
            model=body.model,
            ponder=ponder,
            reasoning_effort=reasoning_effort,
            registry=self.registry,
            default_strategy=settings.default_strategy,
            presets=settings.presets,
        )
        strategy = self.registry.build(selection.strategy, selection.params)
        if body.n * len(prompts) > settings.max_n:
            raise InvalidRequest(
                f"n is {body.n * len(prompts)} answers; the server's cap (max_n) is "
                f"{settings.max_n}",
                param="n",
                code="over_cap",
            )
        if max_tokens is not None and max_tokens > settings.max_tokens_per_call:
            raise InvalidRequest(
                f"max_tokens {max_tokens} is over the server's cap (max_tokens_per_call) of "
                f"{settings.max_tokens_per_call}",
                param="max_tokens",
                code="over_cap",
            )
        if selection.model not in self.engines.models():
            if not self.engines.ready and not self.engines.models():
                raise NoEngineReady("no engine is ready yet")
            raise ModelNotFound(
                f"model {body.model!r} does not exist; GET /v1/models lists the models",
                param="model",
            )
        extra = {k: v for k, v in (body.model_extra or {}).items() if k not in _NOT_FORWARDED}
        if kind == "chat":
            extra.pop("max_completion_tokens", None)
        stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
        sampling = Sampling(
            max_tokens=max_tokens or settings.default_max_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            seed=body.seed,
            stop=stop,
            presence_penalty=body.presence_penalty,
            frequency_penalty=body.frequency_penalty,
            extra=extra,
        )
        per_call = strategy.params.max_tokens or sampling.max_tokens or settings.default_max_tokens
        if per_call > settings.max_tokens_per_call:
            raise InvalidRequest(
                f"ponder.max_tokens {per_call} is over the server's cap (max_tokens_per_call) "
                f"of {settings.max_tokens_per_call}",
                param="ponder.max_tokens",
                code="over_cap",
            )
        try:
            strategy.check_limits(settings.limits, per_call)
        except ValueError as error:
            raise InvalidRequest(str(error), param="ponder", code="over_cap") from None
        jobs: list[Job] = []
        for p, prompt in enumerate(prompts):
            runs = [(body.n, 0)] if strategy.answers_n else [(1, i) for i in range(body.n)]
            for n, start in runs:
                jobs.append(
                    Job(
                        prompt,
                        n,
                        p * body.n + start,
                        Budget(max_total_tokens=settings.max_total_tokens),
                    )
                )
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        response_key = None
        temperature = (
            strategy.params.temperature
            if strategy.params.temperature is not None
            else sampling.temperature
        )
        deterministic = sampling.seed is not None or temperature == 0
        if self.cache is not None and cache_mode.writes and deterministic:
            response_key = cache_key(
                "response",
                {
                    "kind": kind,
                    "model": selection.model,
                    "response_model": body.model,
                    "strategy": selection.strategy,
                    "params": strategy.params.model_dump(mode="json"),
                    "prompts": [prompt_form(prompt) for prompt in prompts],
                    "n": body.n,
                    "sampling": sampling.to_body(),
                },
            )
        return Plan(
            request_id=uuid.uuid4().hex,
            kind=kind,
            selection=selection,
            strategy=strategy,
            sampling=sampling,
            jobs=jobs,
            response_model=body.model,
            stream=body.stream,
            include_usage=include_usage,
            cache_mode=cache_mode,
            response_key=response_key,
        )

    # -- running ---------------------------------------------------------------

    async def _run(
        self,
        plan: Plan,
        on_delta: Callable[[int, str], Awaitable[None]] | None = None,
        on_progress: Callable[[str], Awaitable[None]] | None = None,
    ) -> Outcome:
        engine: Engine = self.engines.session(plan.selection.model)
        caching = None
        if self.cache is not None:
            engine = caching = CachingEngine(engine, self.cache, plan.cache_mode)

        async def run_job(job: Job) -> StrategyResult:
            sink = None
            if on_delta is not None:

                async def sink(index: int, text: str, job: Job = job) -> None:
                    await on_delta(job.offset + index, text)

            ctx = StrategyContext(
                engine=engine,
                prompt=job.prompt,
                sampling=plan.sampling,
                budget=job.budget,
                n=job.n,
                limits=self.settings.limits,
                seed=plan.sampling.seed or 0,
                resources=self.resources,
                on_delta=sink,
                on_progress=on_progress,
            )
            return await plan.strategy.run(ctx)

        results = await asyncio.gather(*(run_job(job) for job in plan.jobs))
        answers = [answer for result in results for answer in result.answers]
        return Outcome(
            answers=answers,
            usage=_usage(combine_parallel([job.budget.usage() for job in plan.jobs])),
            records=[record for job in plan.jobs for record in job.budget.records],
            details=[result.details for result in results if result.details],
            deterministic=caching is not None and caching.deterministic,
        )

    async def _remember(self, plan: Plan, response: dict[str, Any], outcome: Outcome) -> None:
        """Cache a fresh response when the request may be and every call was deterministic."""
        if (
            self.cache is not None
            and plan.response_key is not None
            and plan.cache_mode.writes
            and outcome.deterministic
        ):
            await self.cache.set_many(
                {plan.response_key: json.dumps(response, separators=(",", ":")).encode()}
            )

    # -- answering -------------------------------------------------------------

    async def serve(self, plan: Plan, request: Request, started: float) -> Response:
        if plan.stream:
            return await self._serve_stream(plan, request, started)
        status = 200
        outcome: Outcome | None = None
        try:
            if not self.engines.ready:
                raise NoEngineReady("no engine is ready")
            outcome = await _unless_client_leaves(self._run(plan), request)
            response = self._response(plan, outcome).model_dump(exclude_none=True)
            await self._remember(plan, response, outcome)
            return JSONResponse(response, headers={CACHE_HEADER: "miss"})
        except ClientGone:
            status = 499
            return Response(status_code=499)
        except Exception as exc:
            error = to_ponder_error(exc)
            status = error.status
            return error_response(error)
        finally:
            self._log(plan, status, started, outcome)

    async def _serve_stream(self, plan: Plan, request: Request, started: float) -> Response:
        queue: asyncio.Queue[bytes | _Finished] = asyncio.Queue()
        streamed: dict[int, bool] = {}
        chunks = _Chunks(plan)
        first_text: float | None = None

        async def on_delta(index: int, text: str) -> None:
            nonlocal first_text
            streamed[index] = True
            if first_text is None:
                first_text = time.perf_counter()
            await queue.put(chunks.chunk(index, text))

        async def on_progress(note: str) -> None:
            await queue.put(sse.comment(note))

        async def produce() -> None:
            try:
                outcome = await self._run(plan, on_delta, on_progress)
            except Exception as exc:
                await queue.put(_Finished(error=to_ponder_error(exc)))
                return
            await queue.put(_Finished(outcome=outcome))

        if not self.engines.ready:
            error = NoEngineReady("no engine is ready")
            self._log(plan, error.status, started, None)
            return error_response(error)
        task = asyncio.create_task(produce())
        try:
            first = await _unless_client_leaves(queue.get(), request)
        except ClientGone:
            await _cancel(task)
            self._log(plan, 499, started, None)
            return Response(status_code=499)
        if isinstance(first, _Finished) and first.error is not None:
            # Nothing has been sent yet, so the error can have its own status.
            self._log(plan, first.error.status, started, None)
            return error_response(first.error)

        async def body() -> AsyncIterator[bytes]:
            nonlocal first_text
            status, outcome, item = 200, None, first
            try:
                while True:
                    if not isinstance(item, _Finished):
                        yield item
                        item = await queue.get()
                        continue
                    if item.error is not None:
                        status = item.error.status
                        yield sse.event(item.error.envelope())
                        yield sse.DONE
                        return
                    outcome = item.outcome
                    assert outcome is not None
                    response = self._response(plan, outcome).model_dump(exclude_none=True)
                    endings = [
                        (i, None if streamed.get(i) else a.text, a.finish_reason or "stop")
                        for i, a in enumerate(outcome.answers)
                    ]
                    if first_text is None and any(text for _, text, _ in endings):
                        first_text = time.perf_counter()
                    await self._remember(plan, response, outcome)
                    for event in chunks.ending(endings, response["usage"], response["ponder"]):
                        yield event
                    return
            except asyncio.CancelledError:
                status = 499
                raise
            finally:
                await _cancel(task)
                self._log(plan, status, started, outcome, first_text=first_text)

        return _event_stream(body(), cache="miss")

    def _serve_cached(self, plan: Plan, stored: dict[str, Any], started: float) -> Response:
        """A response from the cache: the stored answer under this request's id and time."""
        stored["ponder"]["cache"] = "hit"
        if not plan.stream:
            stored["id"] = ("chatcmpl-" if plan.kind == "chat" else "cmpl-") + plan.request_id
            stored["created"] = int(time.time())
            self._log(plan, 200, started, None, cached=True)
            return JSONResponse(stored, headers={CACHE_HEADER: "hit"})
        chunks = _Chunks(plan)
        endings = [
            (
                choice["index"],
                choice["message"]["content"] if plan.kind == "chat" else choice["text"],
                choice.get("finish_reason") or "stop",
            )
            for choice in stored["choices"]
        ]

        async def body() -> AsyncIterator[bytes]:
            status = 200
            first_text = time.perf_counter()
            try:
                for event in chunks.ending(endings, stored["usage"], stored["ponder"]):
                    yield event
            except asyncio.CancelledError:
                status = 499
                raise
            finally:
                self._log(plan, status, started, None, cached=True, first_text=first_text)

        return _event_stream(body(), cache="hit")

    def _info(self, plan: Plan, outcome: Outcome) -> PonderInfo:
        params = plan.strategy.params
        trace = None
        if params.trace:
            trace = [
                TraceCall(
                    role=r.role,
                    round=r.round,
                    index=r.index,
                    step=r.step,
                    prompt=r.prompt,
                    output=r.output,
                    prompt_tokens=r.prompt_tokens,
                    completion_tokens=r.completion_tokens,
                    meta=r.meta or None,
                )
                for r in outcome.records
            ]
        details = None
        if outcome.details:
            details = outcome.details[0] if len(outcome.details) == 1 else {"runs": outcome.details}
        answers = [a.answer for a in outcome.answers]
        return PonderInfo(
            strategy=plan.selection.strategy,
            params=params.model_dump(),
            answers=answers if any(a is not None for a in answers) else None,
            trace=trace,
            details=details,
            cache=None if self.cache is None else "miss",
        )

    def _response(self, plan: Plan, outcome: Outcome) -> ChatCompletion | Completion:
        info = self._info(plan, outcome)
        if plan.kind == "chat":
            return ChatCompletion(
                id="chatcmpl-" + plan.request_id,
                model=plan.response_model,
                choices=[
                    ChatChoice(
                        index=i,
                        message=AssistantMessage(content=a.text),
                        finish_reason=a.finish_reason,
                    )
                    for i, a in enumerate(outcome.answers)
                ],
                usage=outcome.usage,
                ponder=info,
            )
        return Completion(
            id="cmpl-" + plan.request_id,
            model=plan.response_model,
            choices=[
                CompletionChoice(index=i, text=a.text, finish_reason=a.finish_reason)
                for i, a in enumerate(outcome.answers)
            ],
            usage=outcome.usage,
            ponder=info,
        )

    def _log(
        self,
        plan: Plan,
        status: int,
        started: float,
        outcome: Outcome | None,
        *,
        cached: bool = False,
        first_text: float | None = None,
    ) -> None:
        """The request's log line and metrics."""
        strategy, model = plan.selection.strategy, plan.selection.model
        elapsed = time.perf_counter() - started
        self.metrics.requests.labels(strategy, model, str(status)).inc()
        if status == 200:
            self.metrics.request_duration.labels(strategy, model).observe(elapsed)
            if first_text is not None:
                self.metrics.time_to_first_token.labels(strategy, model).observe(
                    first_text - started
                )
        if outcome is not None and status == 200:
            usage = outcome.usage
            self.metrics.observe_answer(
                strategy=strategy,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                sequential_tokens=usage.ponder.sequential_tokens,
                total_tokens=usage.ponder.total_tokens,
                rounds=usage.ponder.rounds,
                drafts=usage.ponder.drafts,
                workspaces=[size for d in outcome.details for size in workspace_sizes(d)],
            )
        line: dict[str, Any] = {
            "event": "request",
            "id": plan.request_id,
            "endpoint": plan.kind,
            "strategy": plan.selection.strategy,
            "model": plan.selection.model,
            "stream": plan.stream,
            "status": status,
            "latency_ms": round(elapsed * 1000, 1),
            "cache": "hit" if cached else "miss",
        }
        if outcome is not None:
            usage = outcome.usage
            line.update(
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                calls=usage.ponder.calls,
                sequential_tokens=usage.ponder.sequential_tokens,
                total_tokens=usage.ponder.total_tokens,
            )
        logger.info(json.dumps(line, separators=(",", ":")))


@dataclass
class _Finished:
    outcome: Outcome | None = None
    error: PonderError | None = None


def _chunk_object(plan: Plan) -> str:
    return "chat.completion.chunk" if plan.kind == "chat" else "text_completion"


class _Chunks:
    """The SSE chunks of one streamed response, in OpenAI's format."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.id = ("chatcmpl-" if plan.kind == "chat" else "cmpl-") + plan.request_id
        self.created = int(time.time())
        self._roles_sent: set[int] = set()

    def _event(self, choices: list[dict[str, Any]], **more: Any) -> bytes:
        return sse.event(
            {
                "id": self.id,
                "object": _chunk_object(self.plan),
                "created": self.created,
                "model": self.plan.response_model,
                "choices": choices,
                **more,
            }
        )

    def chunk(self, index: int, text: str | None, finish: str | None = None) -> bytes:
        choice: dict[str, Any] = {"index": index, "finish_reason": finish}
        if self.plan.kind == "chat":
            delta: dict[str, str] = {}
            if index not in self._roles_sent:
                self._roles_sent.add(index)
                delta["role"] = "assistant"
            if text is not None:
                delta["content"] = text
            choice["delta"] = delta
        else:
            choice["text"] = text or ""
        return self._event([choice])

    def ending(
        self,
        answers: Sequence[tuple[int, str | None, str]],
        usage: dict[str, Any],
        info: dict[str, Any],
    ) -> Iterator[bytes]:
        """Each answer's text not streamed yet and its finish, then usage, then ``[DONE]``."""
        for index, text, finish in answers:
            if text:
                yield self.chunk(index, text)
            yield self.chunk(index, None, finish)
        if self.plan.include_usage:
            yield self._event([], usage=usage, ponder=info)
        else:
            payload = json.dumps({"usage": usage, "ponder": info}, separators=(",", ":"))
            yield sse.comment("ponder " + payload)
        yield sse.DONE


def _event_stream(body: AsyncIterator[bytes], *, cache: str) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", CACHE_HEADER: cache},
    )


def _cache_mode(value: Any) -> CacheMode:
    if value is None:
        return CacheMode.DEFAULT
    try:
        return CacheMode(value)
    except ValueError:
        raise InvalidRequest(
            "ponder.cache must be one of " + ", ".join(repr(m.value) for m in CacheMode),
            param="ponder.cache",
            code="invalid_parameter",
        ) from None


def _usage(usage: BudgetUsage) -> Usage:
    return Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.prompt_tokens + usage.completion_tokens,
        ponder=PonderUsage(
            calls=usage.calls,
            rounds=usage.rounds,
            drafts=usage.drafts,
            sequential_tokens=usage.sequential_tokens,
            total_tokens=usage.total_tokens,
        ),
    )


async def _wait_for_disconnect(request: Request) -> None:
    # The body has been read, so the next ASGI message is the disconnect.
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _unless_client_leaves(work: Awaitable[T], request: Request) -> T:
    """``work``'s result, or ``ClientGone`` (with ``work`` cancelled) if the client leaves."""
    task: asyncio.Future[T] = asyncio.ensure_future(work)
    watch = asyncio.create_task(_wait_for_disconnect(request))
    try:
        waiting: set[asyncio.Future[Any]] = {task, watch}
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        raise ClientGone
    finally:
        await _cancel(watch)
        await _cancel(task)


async def _cancel(task: asyncio.Future[Any]) -> None:
    if task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
