"""Serving a completion: validate, pick the strategy, run it, answer (streamed or not)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ponder.server import sse
from ponder.server.engines.provider import EngineProvider
from ponder.server.errors import (
    InvalidRequest,
    ModelNotFound,
    NoEngineReady,
    PonderError,
    error_response,
    to_ponder_error,
)
from ponder.server.metrics import Metrics
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
from ponder.strategies.engine import Message, Prompt, Sampling
from ponder.strategies.registry import Registry

logger = logging.getLogger("ponder.requests")

T = TypeVar("T")

#: OpenAI fields that describe the caller, not the generation: never forwarded.
_NOT_FORWARDED = frozenset(
    {"metadata", "store", "service_tier", "prompt_cache_key", "safety_identifier"}
)

Kind = Literal["chat", "text"]


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


class CompletionServing:
    """The work behind /v1/chat/completions and /v1/completions."""

    def __init__(
        self, settings: Settings, engines: EngineProvider, registry: Registry, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.engines = engines
        self.registry = registry
        self.metrics = metrics
        self.resources = settings.resources

    async def handle(
        self, body: ChatCompletionRequest | CompletionRequest, request: Request
    ) -> Response:
        """Plan the request and serve it; any failure becomes an OpenAI error."""
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
        return await self.serve(plan, request)

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
        selection = select(
            model=body.model,
            ponder=body.ponder,
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
        )

    # -- running ---------------------------------------------------------------

    async def _run(
        self,
        plan: Plan,
        on_delta: Callable[[int, str], Awaitable[None]] | None = None,
        on_progress: Callable[[str], Awaitable[None]] | None = None,
    ) -> Outcome:
        engine = self.engines.session(plan.selection.model)

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
        )

    # -- answering -------------------------------------------------------------

    async def serve(self, plan: Plan, request: Request) -> Response:
        started = time.perf_counter()
        if plan.stream:
            return await self._serve_stream(plan, request, started)
        status = 200
        outcome: Outcome | None = None
        try:
            if not self.engines.ready:
                raise NoEngineReady("no engine is ready")
            outcome = await _unless_client_leaves(self._run(plan), request)
            return JSONResponse(self._response(plan, outcome).model_dump(exclude_none=True))
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
        roles_sent: set[int] = set()
        streamed: dict[int, bool] = {}
        created = int(time.time())
        chunk_id = ("chatcmpl-" if plan.kind == "chat" else "cmpl-") + plan.request_id

        def chunk(index: int, text: str | None, finish: str | None = None, **more: Any) -> bytes:
            choice: dict[str, Any] = {"index": index, "finish_reason": finish}
            if plan.kind == "chat":
                delta: dict[str, str] = {}
                if index not in roles_sent:
                    roles_sent.add(index)
                    delta["role"] = "assistant"
                if text is not None:
                    delta["content"] = text
                choice["delta"] = delta
            else:
                choice["text"] = text or ""
            return sse.event(
                {
                    "id": chunk_id,
                    "object": _chunk_object(plan),
                    "created": created,
                    "model": plan.response_model,
                    "choices": [choice],
                    **more,
                }
            )

        async def on_delta(index: int, text: str) -> None:
            streamed[index] = True
            await queue.put(chunk(index, text))

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
                    info = self._info(plan, outcome).model_dump(exclude_none=True)
                    for index, answer in enumerate(outcome.answers):
                        if not streamed.get(index) and answer.text:
                            yield chunk(index, answer.text)
                        yield chunk(index, None, answer.finish_reason or "stop")
                    usage = outcome.usage.model_dump()
                    if plan.include_usage:
                        yield sse.event(
                            {
                                "id": chunk_id,
                                "object": _chunk_object(plan),
                                "created": created,
                                "model": plan.response_model,
                                "choices": [],
                                "usage": usage,
                                "ponder": info,
                            }
                        )
                    else:
                        yield sse.comment(
                            "ponder "
                            + json.dumps({"usage": usage, "ponder": info}, separators=(",", ":"))
                        )
                    yield sse.DONE
                    return
            except asyncio.CancelledError:
                status = 499
                raise
            finally:
                await _cancel(task)
                self._log(plan, status, started, outcome)

        return StreamingResponse(
            body(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

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

    def _log(self, plan: Plan, status: int, started: float, outcome: Outcome | None) -> None:
        self.metrics.requests.labels(
            plan.selection.strategy, plan.selection.model, str(status)
        ).inc()
        line: dict[str, Any] = {
            "event": "request",
            "id": plan.request_id,
            "endpoint": plan.kind,
            "strategy": plan.selection.strategy,
            "model": plan.selection.model,
            "stream": plan.stream,
            "status": status,
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
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
