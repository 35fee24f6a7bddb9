"""One OpenAI-compatible engine replica over HTTP: vLLM, llama.cpp's server, or any other."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from enum import StrEnum
from typing import Any, NamedTuple, TypeVar

import httpx

from ponder.server.engines.resume import continued
from ponder.server.engines.retry import RETRYABLE_STATUSES, RetryPolicy
from ponder.server.engines.transport import (
    AiohttpTransport,
    EngineResponse,
    EngineTransport,
    HttpxTransport,
    where,
)
from ponder.strategies.acceptance import an_engine_took_a_call
from ponder.strategies.cutoff import cut_at
from ponder.strategies.engine import (
    ABORTED,
    Choice,
    EngineError,
    EngineRejected,
    EngineTimeout,
    EngineUnavailable,
    Generation,
    Message,
    Prompt,
    SampleCheck,
    SampleWatch,
    Sampling,
    StreamEnd,
    StreamEvent,
    TextDelta,
    TokenLogprob,
    ToolCall,
)
from ponder.strategies.thinking import ThinkingFilter, split_thinking

logger = logging.getLogger(__name__)

T = TypeVar("T")


#: How long an idle engine connection is kept for reuse.
KEEPALIVE_SECONDS = 2.0


class Probe(StrEnum):
    """What one health check of a replica found."""

    UP = "up"
    #: Refused, or answered with anything but 200 (llama.cpp's 503 while it loads).
    DOWN = "down"
    #: No answer in time: hung, or only busy (llama.cpp can answer /health late while
    #: it processes a large batch of prompts).
    SILENT = "silent"


class ProbeResult(NamedTuple):
    state: Probe
    #: Why the replica is not up: the status and the start of the body, or the error.
    reason: str = ""


class EngineKind(StrEnum):
    VLLM = "vllm"
    LLAMACPP = "llamacpp"
    OPENAI = "openai"

    @classmethod
    def from_owner(cls, owned_by: str) -> EngineKind:
        """The kind an engine declares in /v1/models' ``owned_by``."""
        owner = owned_by.lower()
        if owner == "vllm":
            return cls.VLLM
        if owner in {"llamacpp", "llama.cpp"}:
            return cls.LLAMACPP
        return cls.OPENAI


def normalise_base_url(url: str) -> str:
    """``http://host:port`` from a URL given with or without ``/v1``."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


class HTTPEngine:
    """An :class:`~ponder.strategies.engine.Engine` over one replica's HTTP API.

    One pooled client per replica (:mod:`~ponder.server.engines.transport`: aiohttp's,
    or httpx's when ``aiohttp_pool`` is off or a ``transport`` is given). Calls are retried
    with backoff on connection errors and 502/503, only before anything of the call has
    reached the caller.
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str = "",
        kind: EngineKind | None = None,
        timeout: float = 300.0,
        connect_timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        api_key: str | None = None,
        max_connections: int = 256,
        transport: httpx.AsyncBaseTransport | None = None,
        stream_calls: bool = True,
        aiohttp_pool: bool = True,
    ) -> None:
        self.base_url = normalise_base_url(base_url)
        self._model = model
        self.kind = kind
        self.retry = retry or RetryPolicy()
        #: The whole call's bound (httpx's ``timeout`` bounds each read: a trickle passes it).
        self.call_timeout = timeout
        #: Make free-text calls as streams, which a cancelled call closes and engines abort.
        self.stream_calls = stream_calls
        #: Responses of cancelled calls being closed.
        self._closing: set[asyncio.Future[None]] = set()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        options: dict[str, Any] = {
            "headers": headers,
            "timeout": timeout,
            "connect_timeout": connect_timeout,
            "max_connections": max_connections,
            # Under the engines' own idle timeout (llama.cpp's and uvicorn's: 5 s), so that a
            # call never goes out on a connection the engine is closing: aiohttp, unlike
            # httpcore, does not poll an idle connection before it reuses it.
            "keepalive": KEEPALIVE_SECONDS,
        }
        self._transport: EngineTransport
        if aiohttp_pool and transport is None:
            self._transport = AiohttpTransport(self.base_url, **options)
        else:
            self._transport = HttpxTransport(self.base_url, transport=transport, **options)
        self._where = where(self.base_url)
        self.outstanding = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # Engines that ignore ``n`` are found out on the first call and then
        # fanned out to concurrent calls instead.
        self._batches_n = True
        #: Token ids the model has, when the engine says (llama.cpp's /v1/models meta).
        self.vocabulary: int | None = None

    def __repr__(self) -> str:
        return f"HTTPEngine({self.base_url!r}, model={self._model!r}, kind={self.kind})"

    @property
    def model(self) -> str:
        return self._model

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def drained(self) -> None:
        """Return once no call is in flight."""
        await self._idle.wait()

    # -- discovery and health -------------------------------------------------

    async def discover(self) -> None:
        """Learn the served model and the engine's kind from /v1/models."""
        async with asyncio.timeout(10.0):
            status, content = await self._transport.get("/v1/models")
        if status != 200:
            raise EngineUnavailable(f"{self._where} answered {status} to /v1/models")
        models = json.loads(content).get("data") or []
        if not models:
            raise EngineUnavailable(f"{self.base_url} serves no model")
        entry = next((m for m in models if m.get("id") == self._model), models[0])
        self._model = self._model or str(entry["id"])
        if self.kind is None:
            self.kind = EngineKind.from_owner(str(entry.get("owned_by", "")))
        vocabulary = (entry.get("meta") or {}).get("n_vocab")
        self.vocabulary = int(vocabulary) if isinstance(vocabulary, int) else None

    async def probe(self, seconds: float = 5.0) -> ProbeResult:
        """Whether the replica answers within ``seconds`` (vLLM and llama.cpp both serve
        /health), and why not when it does not."""
        path = "/v1/models" if self.kind is EngineKind.OPENAI else "/health"
        try:
            async with asyncio.timeout(seconds):
                try:
                    status, body = await self._transport.get(path)
                except EngineUnavailable as error:
                    # A kept-alive connection the engine closed as the check went out fails
                    # as a dead engine does; a second try on another connection tells them
                    # apart (a dead engine refuses it too).
                    status, body = await self._transport.get(path)
                    logger.info("health check of %s failed once (%s)", self.base_url, error)
        except (TimeoutError, EngineTimeout):
            return ProbeResult(Probe.SILENT, f"no answer to {path} within {seconds:g} s")
        except EngineError as error:
            return ProbeResult(Probe.DOWN, str(error))
        if status == 200:
            return ProbeResult(Probe.UP)
        said = body[:200].decode("utf-8", "replace")
        return ProbeResult(Probe.DOWN, f"{path} answered {status}: {said}")

    # -- generation ------------------------------------------------------------

    async def generate(self, prompt: Prompt, *, n: int = 1, sampling: Sampling) -> Generation:
        if n < 1:
            raise ValueError("n must be at least 1")
        if self._streams(sampling):
            return await self._generate_streamed(prompt, n, sampling)
        if n == 1 or self._batches_n:
            generation = await self._generate_once(prompt, n, sampling)
            if len(generation.choices) >= n:
                return generation
            logger.warning(
                "%s returned %d of %d choices; fanning out instead",
                self.base_url,
                len(generation.choices),
                n,
            )
            self._batches_n = False
            missing = n - len(generation.choices)
            rest = await self._fan_out(
                prompt, missing, sampling, seed_offset=len(generation.choices)
            )
            return _merge([generation, *rest])
        return _merge(await self._fan_out(prompt, n, sampling, seed_offset=0))

    def _streams(self, sampling: Sampling) -> bool:
        """Whether a call is made as a stream, so that closing it (its client left) aborts
        it. vLLM cancels a plain request whose connection closes (its OpenAI routes are
        cancelled with their client), so its calls are plain: a stream costs the gateway
        two and a half times the CPU of a plain call (docs/benchmarks.md). llama.cpp's server
        notices a gone client only when it writes a stream chunk; another server is not
        known to do better."""
        return self.stream_calls and _abortable(sampling) and self.kind is not EngineKind.VLLM

    async def _generate_streamed(self, prompt: Prompt, n: int, sampling: Sampling) -> Generation:
        """A call made as a stream and read to its end: a call that is cancelled (its client
        left) closes the stream, which engines abort at once; llama.cpp's server goes on
        generating for a closed non-streamed request."""
        if n > 1:
            return await self._with_retries(
                lambda: self.generate_until(prompt, n=n, sampling=sampling, done=_never)
            )
        end: StreamEnd | None = None
        async for event in self.stream(prompt, sampling=sampling):
            if isinstance(event, StreamEnd):
                end = event
        if end is None:  # pragma: no cover - a stream always ends with its StreamEnd
            raise EngineError(f"{self.base_url} ended a stream without its end")
        return Generation(choices=(end.choice,), prompt_tokens=end.prompt_tokens, model=end.model)

    async def _fan_out(
        self, prompt: Prompt, n: int, sampling: Sampling, *, seed_offset: int
    ) -> list[Generation]:
        # Identical seeds would make identical samples, so each call gets its own.
        def seeded(i: int) -> Sampling:
            if sampling.seed is None:
                return sampling
            return replace(sampling, seed=sampling.seed + seed_offset + i)

        return list(
            await asyncio.gather(*(self._generate_once(prompt, 1, seeded(i)) for i in range(n)))
        )

    async def _generate_once(self, prompt: Prompt, n: int, sampling: Sampling) -> Generation:
        path, body = self._request(prompt, sampling, n=n)
        payload = await self._with_retries(lambda: self._post_json(path, body))
        choices_json = sorted(payload.get("choices") or [], key=lambda c: c.get("index", 0))
        parts = [_choice_parts(choice) for choice in choices_json]
        texts = [text for _, text in parts]
        usage = payload.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        counts = await self._completion_counts(choices_json, texts, usage)
        return Generation(
            choices=tuple(
                Choice(
                    text=text,
                    completion_tokens=count,
                    finish_reason=c.get("finish_reason"),
                    reasoning=reasoning,
                    logprobs=token_logprobs(c.get("logprobs")),
                    tool_calls=tool_calls_of(c.get("message")),
                )
                for (reasoning, text), count, c in zip(parts, counts, choices_json, strict=True)
            ),
            prompt_tokens=prompt_tokens,
            model=str(payload.get("model") or self._model),
        )

    async def _completion_counts(
        self, choices: list[dict[str, Any]], texts: list[str], usage: dict[str, Any]
    ) -> list[int]:
        """Completion tokens per choice.

        vLLM returns each choice's token ids when asked. llama.cpp's server
        reports one choice's count as the whole call's when ``n`` > 1, so
        there each choice is counted with its /tokenize.
        """
        if all(isinstance(c.get("token_ids"), list) for c in choices):
            return [len(c["token_ids"]) for c in choices]
        if len(choices) == 1 and "completion_tokens" in usage:
            return [int(usage["completion_tokens"])]
        return list(await asyncio.gather(*(self.count_tokens(text) for text in texts)))

    async def stream(self, prompt: Prompt, *, sampling: Sampling) -> AsyncIterator[StreamEvent]:
        path, body = self._request(prompt, sampling, n=1)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        attempt = 0
        while True:
            attempt += 1
            sent_anything = False
            try:
                async for event in self._stream_once(path, body):
                    sent_anything = True
                    yield event
                return
            except EngineError as error:
                if sent_anything or not error.retryable or attempt >= self.retry.attempts:
                    raise
            await asyncio.sleep(self.retry.delay(attempt))

    @property
    def resumes_replies(self) -> bool:
        """Whether a reply that another replica began can be finished here: vLLM
        (``continue_final_message``) and llama.cpp (assistant prefill) go on from a last
        assistant message; another OpenAI-compatible server might start a new reply."""
        return self.kind in (EngineKind.VLLM, EngineKind.LLAMACPP)

    async def stream_rest(
        self, prompt: Prompt, begun: str, *, sampling: Sampling
    ) -> AsyncIterator[StreamEvent]:
        """The rest of a reply to ``prompt`` that starts with ``begun``: only the new text
        is streamed, and the end counts only the new tokens."""
        if self.kind is EngineKind.VLLM and not isinstance(prompt, str):
            extra = {**sampling.extra, "continue_final_message": True}
            extra["add_generation_prompt"] = False
            sampling = replace(sampling, extra=extra)
        async for event in self.stream(continued(prompt, begun), sampling=sampling):
            yield event

    async def _stream_once(
        self, path: str, body: dict[str, Any]
    ) -> AsyncGenerator[StreamEvent, None]:
        parts: list[str] = []
        thinking: list[str] = []
        inline = ThinkingFilter()
        usage: dict[str, Any] = {}
        finish_reason: str | None = None
        token_ids: list[int] | None = None
        logprobs: list[TokenLogprob] | None = None
        tools = ToolCallAssembler()
        model = self._model
        deadline = self._deadline()
        async with self._exchange(path, body) as response:
            async for chunk in _chunks(response, deadline, self._overran(path)):
                usage = chunk.get("usage") or usage
                model = str(chunk.get("model") or model)
                for choice in chunk.get("choices") or []:
                    reasoning, text = _delta_parts(choice)
                    thought, text = inline.feed(text)
                    thinking.append(reasoning + thought)
                    streamed = token_logprobs(choice.get("logprobs"))
                    if streamed is not None:
                        logprobs = logprobs if logprobs is not None else []
                        logprobs.extend(streamed)
                    if text or streamed:
                        parts.append(text)
                        yield TextDelta(text, streamed or ())
                    tools.feed(choice.get("delta"))
                    if isinstance(choice.get("token_ids"), list):
                        token_ids = token_ids if token_ids is not None else []
                        token_ids.extend(choice["token_ids"])
                    finish_reason = choice.get("finish_reason") or finish_reason
        thought, rest = inline.close()
        if rest:
            parts.append(rest)
            yield TextDelta(rest)
        thinking.append(thought)
        text = "".join(parts)
        if token_ids is not None:
            completion_tokens = len(token_ids)
        elif "completion_tokens" in usage:
            completion_tokens = int(usage["completion_tokens"])
        else:
            completion_tokens = await self.count_tokens(text)
        yield StreamEnd(
            choice=Choice(
                text=text,
                completion_tokens=completion_tokens,
                finish_reason=finish_reason,
                reasoning="".join(thinking).strip(),
                logprobs=tuple(logprobs) if logprobs is not None else None,
                tool_calls=tools.calls(),
            ),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            model=model,
        )

    async def generate_until(
        self,
        prompt: Prompt,
        *,
        n: int,
        sampling: Sampling,
        done: SampleCheck,
        keep: SampleWatch | None = None,
        until: float | None = None,
    ) -> Generation:
        path, body = self._request(prompt, sampling, n=n)
        body["stream"] = True
        if keep is not None or self.kind is EngineKind.LLAMACPP or not self._batches_n:
            # A sample cancelled alone needs a request of its own (llama.cpp streams one
            # sample per request anyway): n requests, each closed when no longer needed.
            body.pop("n", None)
            body["stream_options"] = {"include_usage": True}
            return await self._race_streams(path, body, n, sampling, done, keep, until)
        # Every chunk carries usage, so the prompt is counted even when the stream is cut.
        body["stream_options"] = {"include_usage": True, "continuous_usage_stats": True}
        return await self._batched_until(path, body, n, done, until)

    async def _batched_until(
        self, path: str, body: dict[str, Any], n: int, done: SampleCheck, until: float | None
    ) -> Generation:
        """One request of n samples, its stream left (the engine aborts it) once decided or
        at ``until``."""
        samples = [_Sample() for _ in range(n)]
        finished: dict[int, Choice] = {}
        prompt_tokens, model = 0, self._model
        deadline = self._deadline()
        async with cut_at(until), self._exchange(path, body) as response:
            async for chunk in _chunks(response, deadline, self._overran(path)):
                usage = chunk.get("usage") or {}
                prompt_tokens = int(usage.get("prompt_tokens") or prompt_tokens)
                model = str(chunk.get("model") or model)
                stop = False
                for choice in chunk.get("choices") or []:
                    index = int(choice.get("index", 0))
                    if not 0 <= index < n or index in finished:
                        continue
                    samples[index].feed(*_delta_parts(choice), choice.get("token_ids"))
                    samples[index].logprobs.extend(token_logprobs(choice.get("logprobs")) or ())
                    reason = choice.get("finish_reason")
                    if reason:
                        finished[index] = await samples[index].choice(self, str(reason))
                        stop = done(index, finished[index]) or stop
                if stop:
                    break
        choices = [finished.get(i) or await samples[i].choice(self, ABORTED) for i in range(n)]
        return Generation(choices=tuple(choices), prompt_tokens=prompt_tokens, model=model)

    async def _race_streams(
        self,
        path: str,
        body: dict[str, Any],
        n: int,
        sampling: Sampling,
        done: SampleCheck,
        keep: SampleWatch | None,
        until: float | None,
    ) -> Generation:
        """n one-sample streams side by side; those still running are cancelled once decided
        or at ``until``, and each one ``keep`` turns down on its own. Cut at ``until`` before
        any finished, the call counts no prompt tokens (only a finished stream says them)."""
        samples = [_Sample() for _ in range(n)]
        ends: asyncio.Queue[tuple[int, StreamEnd | EngineError | None]] = asyncio.Queue()

        async def one(index: int) -> None:
            seeded = dict(body)
            if sampling.seed is not None:  # identical seeds would make identical samples
                seeded["seed"] = sampling.seed + index
            try:
                async with contextlib.aclosing(self._stream_once(path, seeded)) as events:
                    async for event in events:
                        if isinstance(event, StreamEnd):
                            await ends.put((index, event))
                            return
                        samples[index].parts.append(event.text)
                        samples[index].logprobs.extend(event.logprobs)
                        if keep is not None and event.logprobs and not keep(index, event.logprobs):
                            break  # closing the stream cancels the sample at the engine
                await ends.put((index, None))
            except EngineError as error:
                await ends.put((index, error))

        tasks = [asyncio.create_task(one(i)) for i in range(n)]
        finished: dict[int, Choice] = {}
        turned_down = 0
        prompt_tokens = 0
        try:
            async with cut_at(until):
                while len(finished) + turned_down < n:
                    index, end = await ends.get()
                    if isinstance(end, EngineError):
                        raise end
                    if end is None:
                        turned_down += 1
                        continue
                    finished[index] = end.choice
                    prompt_tokens = prompt_tokens or end.prompt_tokens
                    if done(index, end.choice):
                        break
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        choices = [finished.get(i) or await samples[i].choice(self, ABORTED) for i in range(n)]
        return Generation(choices=tuple(choices), prompt_tokens=prompt_tokens, model=self._model)

    async def count_tokens(self, text: str) -> int:
        if self.kind is EngineKind.LLAMACPP:
            body: dict[str, Any] = {"content": text, "add_special": False}
        else:
            body = {"model": self._model, "prompt": text, "add_special_tokens": False}
        payload = await self._with_retries(lambda: self._post_json("/tokenize", body))
        if "count" in payload:
            return int(payload["count"])
        return len(payload.get("tokens") or [])

    async def detokenize(self, tokens: Sequence[int]) -> str:
        # llama.cpp answers an id past its vocabulary with a 500: refuse it here instead.
        beyond = [t for t in tokens if self.vocabulary is not None and t >= self.vocabulary]
        if beyond:
            raise EngineRejected(
                f"token id {beyond[0]} is not in the model's vocabulary of {self.vocabulary}"
            )
        body: dict[str, Any] = {"tokens": list(tokens)}
        if self.kind is not EngineKind.LLAMACPP:
            body["model"] = self._model
        payload = await self._with_retries(lambda: self._post_json("/detokenize", body))
        # vLLM answers {"prompt": ...}, llama.cpp {"content": ...}.
        return str(payload.get("prompt", payload.get("content", "")))

    async def embed(self, texts: list[str]) -> list[list[float]] | None:
        """Embeddings from /v1/embeddings, or ``None`` when the engine serves none.

        vLLM serves them only for embedding models, llama.cpp only when started
        with embeddings on; a generative engine answers 4xx/501, taken as "none".
        """
        body = {"model": self._model, "input": texts}
        try:
            payload = await self._with_retries(lambda: self._post_json("/v1/embeddings", body))
        except EngineRejected:
            return None
        rows = sorted(payload.get("data") or [], key=lambda row: row.get("index", 0))
        vectors = [row.get("embedding") for row in rows]
        if len(vectors) != len(texts) or not all(isinstance(v, list) for v in vectors):
            return None
        return [[float(x) for x in vector] for vector in vectors]

    # -- plumbing --------------------------------------------------------------

    def _request(self, prompt: Prompt, sampling: Sampling, *, n: int) -> tuple[str, dict[str, Any]]:
        body = sampling.to_body()
        body["model"] = self._model
        if n != 1:
            body["n"] = n
        if self.kind is EngineKind.VLLM:
            body.setdefault("return_token_ids", True)
        if self.kind is EngineKind.LLAMACPP:
            _name_the_tool_for_llamacpp(body)
        if isinstance(prompt, str):
            body["prompt"] = prompt
            if sampling.logprobs is not None:
                body["logprobs"] = sampling.logprobs
            return "/v1/completions", body
        body["messages"] = [_message_json(m) for m in prompt]
        if sampling.logprobs is not None:
            body["logprobs"] = True
            if sampling.logprobs:
                body["top_logprobs"] = sampling.logprobs
        return "/v1/chat/completions", body

    async def _post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self.call_timeout):
                async with self._exchange(path, body) as response:
                    content = await response.read()
        except TimeoutError as error:
            raise self._overran(path) from error
        payload = json.loads(content)
        if not isinstance(payload, dict):
            raise EngineError(f"{self.base_url}{path} answered with {type(payload).__name__}")
        return payload

    @contextlib.asynccontextmanager
    async def _exchange(self, path: str, body: dict[str, Any]) -> AsyncIterator[EngineResponse]:
        """POST ``body``; hold the response open while the caller reads it.

        A response the caller leaves unread (it was cancelled: its client went away) has
        its connection shut, which is how vLLM and llama.cpp learn to abort the request.
        """
        self.outstanding += 1
        self._idle.clear()
        response: EngineResponse | None = None
        completed = False
        # llama.cpp's server closes the connection after a stream although its headers say
        # keep-alive. Read to its end, the connection went back to the pool at once, and a
        # call made before it was hung up (the finished sample's /tokenize) went out on it
        # and met the close ("Server disconnected", seen in a packet capture). Asked to
        # close, the server says so and nothing pools it.
        closing = self.kind is EngineKind.LLAMACPP and bool(body.get("stream"))
        try:
            response = await self._send(path, body, close=closing)
            if response.status >= 400:
                content = await response.read()
                completed = True
                raise _status_error(response.status, content, self._where)
            if path.endswith("completions"):
                an_engine_took_a_call()
            yield response
            completed = True
            if closing:
                response.hang_up()  # for a server that ignores the header
        finally:
            self.outstanding -= 1
            if not self.outstanding:
                self._idle.set()
            if response is not None:
                if not completed:
                    response.hang_up()
                await response.aclose()

    async def _send(self, path: str, body: dict[str, Any], *, close: bool) -> EngineResponse:
        """Send in a task of its own: a call cancelled before the engine answered (its
        client left) then has its connection closed, as a plain cancellation does, which
        the engine notices; inside a cancelled server task it would stay open, and the
        engine would generate on for nobody."""
        sending = asyncio.ensure_future(self._transport.post(path, body, close=close))
        try:
            return await asyncio.shield(sending)
        except asyncio.CancelledError:
            sending.cancel()
            sending.add_done_callback(self._close_if_answered)
            raise

    def _close_if_answered(self, sending: asyncio.Future[EngineResponse]) -> None:
        """A response that arrived for a call already cancelled: hung up, and closed."""
        if sending.cancelled() or sending.exception() is not None:
            return
        response = sending.result()
        response.hang_up()
        closing = asyncio.ensure_future(response.aclose())
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    def _overran(self, path: str) -> EngineTimeout:
        return EngineTimeout(f"{self.base_url} took over {self.call_timeout:g} s on {path}")

    def _deadline(self) -> float:
        """When a call starting now must be done (streams check it as each line arrives)."""
        return time.monotonic() + self.call_timeout

    async def _with_retries(self, call: Callable[[], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await call()
            except EngineError as error:
                if not error.retryable or attempt >= self.retry.attempts:
                    raise
                logger.info("retrying %s after %s (attempt %d)", self.base_url, error, attempt)
            await asyncio.sleep(self.retry.delay(attempt))


async def _chunks(
    response: EngineResponse, deadline: float, overran: EngineTimeout
) -> AsyncIterator[dict[str, Any]]:
    """The JSON chunks of an engine's SSE stream, up to ``[DONE]``; an error event raises,
    and so does a stream still going at ``deadline`` (``overran``: a trickle that each read's
    timeout lets pass)."""
    lines = response.lines()
    async for line in lines:
        if time.monotonic() > deadline:
            raise overran
        if not line.startswith("data:"):
            continue
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            # Read the body to its end, so that the connection goes back to the pool
            # instead of being dropped (a new one, and a handshake, for every stream).
            async for _ in lines:
                pass
            return
        chunk = json.loads(data)
        if "error" in chunk:
            raise EngineError(_error_message(chunk), status=502)
        yield chunk


class _Sample:
    """One streamed sample's text so far."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.thinking: list[str] = []
        self.inline = ThinkingFilter()
        self.token_ids: list[int] | None = None
        self.logprobs: list[TokenLogprob] = []

    def feed(self, reasoning: str, text: str, token_ids: Any) -> None:
        thought, text = self.inline.feed(text)
        self.thinking.append(reasoning + thought)
        self.parts.append(text)
        if isinstance(token_ids, list):
            self.token_ids = (self.token_ids or []) + token_ids

    async def choice(self, engine: HTTPEngine, finish_reason: str) -> Choice:
        thought, rest = self.inline.close()
        self.inline = ThinkingFilter()
        self.thinking.append(thought)
        self.parts.append(rest)
        text = "".join(self.parts)
        if self.token_ids is not None:
            tokens = len(self.token_ids)
        else:
            tokens = await engine.count_tokens(text) if text else 0
        return Choice(
            text=text,
            completion_tokens=tokens,
            finish_reason=finish_reason,
            reasoning="".join(self.thinking).strip(),
            logprobs=tuple(self.logprobs) if self.logprobs else None,
        )


#: Fields of a call whose streamed form Ponder does not read the way it reads the whole
#: response (tool calls and JSON answers, echoed prompts, log-probabilities).
_READ_WHOLE = frozenset(
    {"tools", "tool_choice", "parallel_tool_calls", "functions", "response_format", "echo"}
)


def _abortable(sampling: Sampling) -> bool:
    """Whether a call is made as a stream (which a cancelled call closes, and engines abort)."""
    return sampling.logprobs is None and not _READ_WHOLE & set(sampling.extra)


def _never(index: int, choice: Choice) -> bool:
    return False


def _merge(generations: list[Generation]) -> Generation:
    return Generation(
        choices=tuple(choice for g in generations for choice in g.choices),
        prompt_tokens=generations[0].prompt_tokens,
        model=generations[0].model,
        requests=sum(g.requests for g in generations),
    )


def _name_the_tool_for_llamacpp(body: dict[str, Any]) -> None:
    """llama.cpp takes ``tool_choice`` as a string only; a named function becomes
    ``required`` over that one tool, which is what the name asks for."""
    choice = body.get("tool_choice")
    if not isinstance(choice, dict):
        return
    name = (choice.get("function") or {}).get("name")
    body["tools"] = [
        tool for tool in body.get("tools") or () if (tool.get("function") or {}).get("name") == name
    ]
    body["tool_choice"] = "required"


def _message_json(message: Message) -> dict[str, Any]:
    """A message as the engine takes it: tool calls and tool results stay structured."""
    body: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        body["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
        if not message.content:
            body["content"] = None
    if message.tool_call_id is not None:
        body["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        body["name"] = message.name
    return body


def tool_calls_of(message: Any) -> tuple[ToolCall, ...]:
    """The ``tool_calls`` of an engine's message, as :class:`ToolCall`."""
    calls = message.get("tool_calls") if isinstance(message, dict) else None
    result = []
    for call in calls or ():
        function = call.get("function") or {}
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {})
        result.append(
            ToolCall(str(call.get("id") or ""), str(function.get("name") or ""), arguments)
        )
    return tuple(result)


class ToolCallAssembler:
    """Tool calls streamed as deltas (by index: id and name once, arguments in pieces)."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}

    def feed(self, delta: Any) -> None:
        for piece in (delta.get("tool_calls") if isinstance(delta, dict) else None) or ():
            call = self._calls.setdefault(
                int(piece.get("index", len(self._calls))), {"id": "", "name": "", "arguments": ""}
            )
            function = piece.get("function") or {}
            call["id"] = piece.get("id") or call["id"]
            call["name"] = function.get("name") or call["name"]
            call["arguments"] += function.get("arguments") or ""

    def calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(call["id"], call["name"], call["arguments"])
            for _, call in sorted(self._calls.items())
        )


def token_logprobs(value: Any) -> tuple[TokenLogprob, ...] | None:
    """A choice's ``logprobs`` in either OpenAI form: chat's ``content`` list, or the
    completions API's parallel ``tokens`` / ``token_logprobs`` / ``top_logprobs``."""
    if not isinstance(value, dict):
        return None
    content = value.get("content")
    if isinstance(content, list):
        return tuple(
            TokenLogprob(
                str(entry.get("token", "")),
                float(entry.get("logprob", 0.0)),
                tuple(
                    (str(top.get("token", "")), float(top.get("logprob", 0.0)))
                    for top in entry.get("top_logprobs") or ()
                    if isinstance(top, dict)
                ),
            )
            for entry in content
            if isinstance(entry, dict)
        )
    tokens, values = value.get("tokens"), value.get("token_logprobs")
    if isinstance(tokens, list) and isinstance(values, list):
        tops = value.get("top_logprobs") or [None] * len(tokens)
        return tuple(
            TokenLogprob(
                str(token),
                float(logprob or 0.0),
                tuple((str(k), float(v)) for k, v in (top or {}).items()),
            )
            for token, logprob, top in zip(tokens, values, tops, strict=False)
        )
    return None


def _reasoning_field(message: dict[str, Any]) -> str:
    # vLLM's reasoning parsers and llama.cpp's --reasoning-format: reasoning_content;
    # newer vLLM releases: reasoning.
    return str(message.get("reasoning_content") or message.get("reasoning") or "")


def _choice_parts(choice: dict[str, Any]) -> tuple[str, str]:
    """A choice's (thinking, final text): a reasoning field, or inline <think>."""
    if "message" in choice:
        message = choice["message"] or {}
        field, content = _reasoning_field(message), str(message.get("content") or "")
    else:
        field, content = "", str(choice.get("text") or "")
    inline, final = split_thinking(content)
    return "\n".join(part for part in (field.strip(), inline) if part), final


def _delta_parts(choice: dict[str, Any]) -> tuple[str, str]:
    """A streamed delta's (thinking, text); inline <think> is left to the stream's filter."""
    if "delta" in choice:
        delta = choice["delta"] or {}
        return _reasoning_field(delta), str(delta.get("content") or "")
    return "", str(choice.get("text") or "")


def _error_message(payload: Any) -> str:
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict):
            return str(error.get("message") or error)
        return str(error)
    return str(payload)


def _status_error(status: int, content: bytes, where: str) -> EngineError:
    try:
        message = _error_message(json.loads(content))
    except ValueError:
        message = content.decode(errors="replace")[:500]
    if status in RETRYABLE_STATUSES:
        return EngineUnavailable(f"{where} answered {status}: {message}")
    if status == 504:
        return EngineTimeout(f"{where} timed out: {message}")
    if status == 501:  # an endpoint this engine does not serve
        return EngineRejected(f"{where} does not support this: {message}", status=400)
    if 400 <= status < 500:
        return EngineRejected(f"{where} rejected the request: {message}", status=400)
    return EngineError(f"{where} failed with {status}: {message}", status=502)
