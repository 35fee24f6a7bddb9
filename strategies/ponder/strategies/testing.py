"""An in-process scripted engine, for tests of control flow (yours and ours).

It answers from a script instead of a model, counts tokens as words, and
records every call, so a test can assert which calls a strategy made, in
what order, with what ``n`` and what budget. It is never a stand-in for a
real engine in a test of behaviour that depends on one.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ponder.strategies.acceptance import an_engine_took_a_call
from ponder.strategies.base import StrategyResult, render_prompt
from ponder.strategies.engine import (
    ABORTED,
    Choice,
    EngineError,
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

#: Writes the text of sample ``index`` for a rendered prompt.
Script = Callable[[str, int], str]


def echo_script(prompt: str, index: int) -> str:
    return f"answer {index} to: {prompt.splitlines()[-1] if prompt else ''}"


def count_words(text: str) -> int:
    return len(text.split())


@dataclass(frozen=True, slots=True)
class ScriptedCall:
    kind: str  # "generate" or "stream"
    prompt: str
    n: int
    sampling: Sampling


@dataclass
class ScriptedEngine:
    """An :class:`~ponder.strategies.engine.Engine` that follows a script.

    ``delay`` seconds pass before each call answers (and between streamed
    words), which lets a test cancel a call in flight; ``fail_with`` makes
    the next calls raise (a None in it lets its call answer); ``cancelled`` counts
    calls cancelled mid-way.
    """

    script: Script = echo_script
    model: str = "scripted"
    #: Each word's log-probability in sample ``index`` of a prompt, when a call asks for them.
    token_logprob: Callable[[str, int], float] = lambda prompt, index: -1.0
    #: Given tools, answer with a call of the first (arguments: the scripted text as JSON).
    calls_tools: bool = False
    delay: float = 0.0
    #: Seconds each word step of ``generate_until`` takes: lets a deadline fall mid-way.
    step_delay: float = 0.0
    fail_with: list[EngineError | None] = field(default_factory=list)
    calls: list[ScriptedCall] = field(default_factory=list)
    in_flight: int = 0
    cancelled: int = 0

    async def generate(self, prompt: Prompt, *, n: int = 1, sampling: Sampling) -> Generation:
        rendered = render_prompt(prompt)
        self.calls.append(ScriptedCall("generate", rendered, n, sampling))
        await self._wait()
        texts = [self._limit(self.script(rendered, i), sampling) for i in range(n)]
        return Generation(
            choices=tuple(
                self._tool_call(i, t, sampling)
                or Choice(
                    t, count_words(t), "stop", logprobs=self._logprobs(rendered, i, t, sampling)
                )
                for i, t in enumerate(texts)
            ),
            prompt_tokens=count_words(rendered),
            model=self.model,
        )

    async def stream(self, prompt: Prompt, *, sampling: Sampling) -> AsyncIterator[StreamEvent]:
        rendered = render_prompt(prompt)
        self.calls.append(ScriptedCall("stream", rendered, 1, sampling))
        await self._wait()
        text = self._limit(self.script(rendered, 0), sampling)
        called = self._tool_call(0, text, sampling)
        if called is not None:
            yield StreamEnd(called, count_words(rendered), self.model)
            return
        self.in_flight += 1
        try:
            for i, word in enumerate(text.split(" ")):
                if self.delay:
                    await asyncio.sleep(self.delay)
                yield TextDelta(word if i == 0 else " " + word)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1
        yield StreamEnd(
            self._choice(rendered, 0, text, sampling), count_words(rendered), self.model
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
        """The samples advance a word a step, side by side (shorter ones finish first);
        ``keep`` sees each word, ``done`` each finished sample; at ``until`` the rest are
        cut. A sample cut short comes back with the words it had."""
        rendered = render_prompt(prompt)
        self.calls.append(ScriptedCall("generate_until", rendered, n, sampling))
        await self._wait()
        texts = [self._limit(self.script(rendered, i), sampling) for i in range(n)]
        tokens = [
            self._logprobs(rendered, i, t, sampling)
            or tuple(TokenLogprob(w, 0.0) for w in t.split())
            for i, t in enumerate(texts)
        ]
        emitted = [0] * n
        choices: dict[int, Choice] = {}

        def cut(index: int) -> None:
            words = [t.token for t in tokens[index][: emitted[index]]]
            choices[index] = Choice(" ".join(words), len(words), ABORTED)
            self.cancelled += 1

        def cut_the_rest() -> None:
            for rest in range(n):
                if rest not in choices:
                    cut(rest)

        step = 0
        while len(choices) < n:
            if until is not None and time.monotonic() >= until:
                cut_the_rest()
                break
            for i in range(n):
                if i in choices:
                    continue
                if step < len(tokens[i]):
                    emitted[i] += 1
                    if keep is not None and not keep(i, tokens[i][step : step + 1]):
                        cut(i)
                        continue
                if emitted[i] == len(tokens[i]):
                    choices[i] = Choice(
                        texts[i],
                        count_words(texts[i]),
                        "stop",
                        logprobs=self._logprobs(rendered, i, texts[i], sampling),
                    )
                    if done(i, choices[i]):
                        cut_the_rest()
                        break
            step += 1
            if self.step_delay and len(choices) < n:
                await asyncio.sleep(self.step_delay)
        return Generation(
            choices=tuple(choices[i] for i in range(n)),
            prompt_tokens=count_words(rendered),
            model=self.model,
        )

    async def count_tokens(self, text: str) -> int:
        return count_words(text)

    async def detokenize(self, tokens: Sequence[int]) -> str:
        """Word ``w<id>`` per token id: the scripted tokenizer counts words."""
        return " ".join(f"w{token}" for token in tokens)

    async def _wait(self) -> None:
        failure = self.fail_with.pop(0) if self.fail_with else None
        if failure is not None:
            raise failure
        an_engine_took_a_call()  # as a real engine's response headers say
        self.in_flight += 1
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1

    def _choice(self, prompt: str, index: int, text: str, sampling: Sampling) -> Choice:
        logprobs = self._logprobs(prompt, index, text, sampling)
        return Choice(text, count_words(text), "stop", logprobs=logprobs)

    def _tool_call(self, index: int, text: str, sampling: Sampling) -> Choice | None:
        tools = sampling.extra.get("tools")
        if not (self.calls_tools and tools):
            return None
        name = str(tools[0]["function"]["name"])
        arguments = json.dumps({"text": text})
        call = ToolCall(f"call_{index}", name, arguments)
        return Choice("", count_words(arguments), "tool_calls", tool_calls=(call,))

    def _logprobs(
        self, prompt: str, index: int, text: str, sampling: Sampling
    ) -> tuple[TokenLogprob, ...] | None:
        if sampling.logprobs is None:
            return None
        value = self.token_logprob(prompt, index)
        return tuple(
            TokenLogprob(
                word,
                value,
                tuple((f"alt{k}", value - k) for k in range(max(1, sampling.logprobs))),
            )
            for word in text.split()
        )

    @staticmethod
    def _limit(text: str, sampling: Sampling) -> str:
        if sampling.max_tokens is None:
            return text
        return " ".join(text.split(" ")[: sampling.max_tokens])


def details_json(result: StrategyResult) -> dict[str, Any]:
    """A result's details as ``ponder.details`` shows them (a result without details fails)."""
    assert result.details is not None, "the strategy reported no details"
    return result.details.to_json()
