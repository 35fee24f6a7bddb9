"""Engine calls of a strategy served from the cache: a repeated seeded run costs no engine time."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ponder.server.cache.cache import Cache
from ponder.server.cache.keys import call_keys, deterministic
from ponder.server.cache.mode import CacheMode
from ponder.strategies.autocot import Embedder
from ponder.strategies.engine import (
    Choice,
    Engine,
    Generation,
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


class CachingEngine:
    """An :class:`Engine` that looks each deterministic call up before making it.

    Each sample of a call is its own entry, keyed by its index in the batch; a
    call is served from the cache only when every one of its samples is there
    (samples of one batch are never mixed from two runs). ``deterministic``
    stays true while every call made through it could be cached, which is
    when the whole response may be.
    """

    def __init__(self, inner: Engine, cache: Cache, mode: CacheMode) -> None:
        self._inner = inner
        self._cache = cache
        self._mode = mode
        self.deterministic = True

    @property
    def model(self) -> str:
        return self._inner.model

    def _keys(self, prompt: Prompt, sampling: Sampling, n: int) -> list[str] | None:
        if not deterministic(sampling):
            self.deterministic = False
            return None
        if self._mode is CacheMode.NO_STORE:
            return None
        return call_keys(self.model, prompt, sampling, n)

    async def _lookup(self, keys: list[str]) -> list[dict[str, Any]] | None:
        if not self._mode.reads:
            return None
        values = await self._cache.get_many(keys, level="call")
        if any(value is None for value in values):
            return None
        return [json.loads(value) for value in values if value is not None]

    async def _store(
        self, keys: list[str], choices: tuple[Choice, ...], prompt_tokens: int
    ) -> None:
        await self._cache.set_many(
            {key: _encode(choice, prompt_tokens) for key, choice in zip(keys, choices, strict=True)}
        )

    async def generate(self, prompt: Prompt, *, n: int = 1, sampling: Sampling) -> Generation:
        keys = self._keys(prompt, sampling, n)
        if keys is None:
            return await self._inner.generate(prompt, n=n, sampling=sampling)
        found = await self._lookup(keys)
        if found is not None:
            return Generation(
                choices=tuple(_choice(entry) for entry in found),
                prompt_tokens=found[0]["prompt_tokens"],
                model=self.model,
                cached=True,
            )
        generation = await self._inner.generate(prompt, n=n, sampling=sampling)
        await self._store(keys, generation.choices, generation.prompt_tokens)
        return generation

    async def stream(self, prompt: Prompt, *, sampling: Sampling) -> AsyncIterator[StreamEvent]:
        # A streamed call is the one-sample call it streams: they share their entry.
        keys = self._keys(prompt, sampling, 1)
        found = await self._lookup(keys) if keys is not None else None
        if found is not None:
            choice = _choice(found[0])
            if choice.text:
                yield TextDelta(choice.text)
            yield StreamEnd(choice, found[0]["prompt_tokens"], self.model, cached=True)
            return
        async for event in self._inner.stream(prompt, sampling=sampling):
            if isinstance(event, StreamEnd) and keys is not None:
                await self._store(keys, (event.choice,), event.prompt_tokens)
            yield event

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
        # Which samples finish first depends on timing: never cached, and the response
        # it goes into is not either.
        self.deterministic = False
        return await self._inner.generate_until(
            prompt, n=n, sampling=sampling, done=done, keep=keep, until=until
        )

    async def count_tokens(self, text: str) -> int:
        return await self._inner.count_tokens(text)

    async def detokenize(self, tokens: Sequence[int]) -> str:
        return await self._inner.detokenize(tokens)

    async def embed(self, texts: list[str]) -> list[list[float]] | None:
        if isinstance(self._inner, Embedder):
            return await self._inner.embed(texts)
        return None


def _encode(choice: Choice, prompt_tokens: int) -> bytes:
    return json.dumps(
        {
            "text": choice.text,
            "completion_tokens": choice.completion_tokens,
            "finish_reason": choice.finish_reason,
            "reasoning": choice.reasoning,
            "logprobs": None
            if choice.logprobs is None
            else [[t.token, t.logprob, [list(pair) for pair in t.top]] for t in choice.logprobs],
            "tool_calls": [[c.id, c.name, c.arguments] for c in choice.tool_calls],
            "prompt_tokens": prompt_tokens,
        },
        separators=(",", ":"),
    ).encode()


def _choice(entry: dict[str, Any]) -> Choice:
    return Choice(
        entry["text"],
        entry["completion_tokens"],
        entry["finish_reason"],
        entry.get("reasoning") or "",
        None
        if entry.get("logprobs") is None
        else tuple(
            TokenLogprob(t, lp, tuple((tok, value) for tok, value in top))
            for t, lp, top in entry["logprobs"]
        ),
        tuple(ToolCall(*call) for call in entry.get("tool_calls") or ()),
    )
