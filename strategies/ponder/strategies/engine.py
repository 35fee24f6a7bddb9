"""The seam between strategies and inference engines.

Strategies see engines only through :class:`Engine`. The server implements it
over HTTP (vLLM, llama.cpp's server, any OpenAI-compatible engine); the
scripted engine in :mod:`ponder.strategies.testing` implements it in-process
for tests of control flow.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call a model asked for: its id, the function's name, its JSON arguments."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Message:
    """A chat message; an assistant's may carry tool calls, a tool's answers one of them."""

    role: str
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None


#: A chat prompt (sent to /v1/chat/completions) or raw text (/v1/completions).
Prompt = Sequence[Message] | str


@dataclass(frozen=True, slots=True)
class Sampling:
    """Sampling parameters for one engine call.

    ``extra`` carries OpenAI or engine-specific fields that Ponder does not
    interpret (``top_k``, ``min_p``, ``logit_bias`` ...); they are forwarded
    to the engine unchanged.
    """

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    #: Ask for each token's log-probability and this many top alternatives' (None: don't).
    logprobs: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_body(self) -> dict[str, Any]:
        """The OpenAI request fields this sampling sets (unset ones omitted).

        ``logprobs`` is spelt differently by the chat and completions APIs, so the
        engine client adds it.
        """
        body: dict[str, Any] = dict(self.extra)
        for name in (
            "max_tokens",
            "temperature",
            "top_p",
            "seed",
            "presence_penalty",
            "frequency_penalty",
        ):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if self.stop:
            body["stop"] = list(self.stop)
        return body


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token's log-probability, and the engine's top alternatives'."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()

    @property
    def top_values(self) -> tuple[float, ...]:
        return tuple(value for _, value in self.top)


@dataclass(frozen=True, slots=True)
class AnswerShape:
    """The request's fields that shape its answer rather than the work behind it.

    They apply to the call that produces the answer — never to drafts,
    distillations or verifications, which a JSON schema or a stop sequence
    would break: ``stop`` and ``logprobs`` to the answer's own call;
    ``response_format`` and ``tools`` (with ``tool_choice`` and
    ``parallel_tool_calls``) to a last call that writes the answer in that form.
    """

    response_format: Mapping[str, Any] | None = None
    tools: Sequence[Mapping[str, Any]] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    stop: tuple[str, ...] = ()
    #: Top alternatives per token to return (0: the chosen token's only; None: no logprobs).
    logprobs: int | None = None
    #: The completions API's echo: the answer starts with the prompt.
    echo: bool = False

    @property
    def structured(self) -> bool:
        """The answer must take a form (JSON, a tool call) a strategy's free text is not."""
        formatted = self.response_format is not None and self.response_format.get("type") not in (
            None,
            "text",
        )
        return formatted or (bool(self.tools) and self.tool_choice != "none")

    def free_text(self, sampling: Sampling) -> Sampling:
        """``sampling`` with what applies to any answer call: stop sequences, logprobs."""
        stop = tuple(dict.fromkeys((*sampling.stop, *self.stop))) if self.stop else sampling.stop
        logprobs = self.logprobs if self.logprobs is not None else sampling.logprobs
        if logprobs is not None and sampling.logprobs is not None:
            logprobs = max(logprobs, sampling.logprobs)
        if stop == sampling.stop and logprobs == sampling.logprobs:
            return sampling  # most answers: no shape at all, and a copy costs each call
        return replace(sampling, stop=stop, logprobs=logprobs)

    def apply(self, sampling: Sampling) -> Sampling:
        """``sampling`` with every field of the shape: for the call that writes the answer."""
        fields = {
            name: value
            for name in ("response_format", "tools", "tool_choice", "parallel_tool_calls")
            if (value := getattr(self, name)) is not None
        }
        if self.echo:
            fields["echo"] = True
        sampling = self.free_text(sampling)
        return replace(sampling, extra={**sampling.extra, **fields}) if fields else sampling


@dataclass(frozen=True, slots=True)
class Choice:
    """One generated sample and the tokens it took.

    ``text`` is the final part of the sample; a reasoning model's thinking is
    in ``reasoning`` (see :mod:`ponder.strategies.thinking`).
    """

    text: str
    completion_tokens: int
    finish_reason: str | None = None
    reasoning: str = ""
    #: Per-token log-probabilities, when the call asked the engine for them.
    logprobs: tuple[TokenLogprob, ...] | None = None
    #: Function calls the model asked for (``finish_reason`` is then ``tool_calls``).
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class Generation:
    """The result of one engine call: ``n`` choices over one shared prompt.

    ``prompt_tokens`` counts the prompt once, as the engine prefilled it.
    ``requests`` is the number of HTTP requests it took (1 when the engine
    batched ``n`` itself, ``n`` when it fell back to concurrent calls).
    ``cached`` says it came from a cache: it is billed as the call it
    replays, so a strategy's usage does not depend on what was cached.
    """

    choices: tuple[Choice, ...]
    prompt_tokens: int
    model: str
    requests: int = 1
    cached: bool = False

    @property
    def completion_tokens(self) -> int:
        return sum(choice.completion_tokens for choice in self.choices)


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of streamed text from the engine (and its tokens' log-probabilities, when the
    call asked for them)."""

    text: str
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The end of a stream: the whole choice and the prompt's token count."""

    choice: Choice
    prompt_tokens: int
    model: str
    cached: bool = False


StreamEvent = TextDelta | StreamEnd

#: Shown each sample of ``generate_until`` as it finishes (its index, the sample): True
#: when the samples still running are no longer needed.
SampleCheck = Callable[[int, Choice], bool]

#: Shown each sample's new tokens as they stream (its index, their log-probabilities):
#: False cancels that sample at the engine.
SampleWatch = Callable[[int, Sequence[TokenLogprob]], bool]

#: The finish reason of a sample cancelled at the engine before it finished.
ABORTED = "abort"


#: The role (draft, distill, refine ...) of the engine call being made. Strategies
#: set it around each call (``StrategyContext`` does) so that the engine side can
#: label its measurements; a context variable, so concurrent calls keep their own.
_call_role: ContextVar[str] = ContextVar("ponder_call_role", default="call")


def call_role() -> str:
    """The role of the engine call in progress in this task (``"call"`` when unset)."""
    return _call_role.get()


@contextmanager
def calling(role: str) -> Iterator[None]:
    """Engine calls made inside are made in ``role``."""
    token = _call_role.set(role)
    try:
        yield
    finally:
        _call_role.reset(token)


@runtime_checkable
class Engine(Protocol):
    """What a strategy may ask of an inference engine."""

    @property
    def model(self) -> str:
        """The model name the engine serves."""
        ...

    async def generate(self, prompt: Prompt, *, n: int = 1, sampling: Sampling) -> Generation:
        """``n`` samples for one prompt, in one batched call where possible."""
        ...

    def stream(self, prompt: Prompt, *, sampling: Sampling) -> AsyncIterator[StreamEvent]:
        """One sample, its text delivered as it is generated, then a ``StreamEnd``."""
        ...

    async def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in the engine's own tokenizer."""
        ...

    async def detokenize(self, tokens: Sequence[int]) -> str:
        """The text of token ids in the engine's own tokenizer (a token-id prompt)."""
        ...

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
        """``n`` samples generated side by side, each shown to ``done`` as it finishes; once
        ``done`` says so, the samples still running are cancelled at the engine and come
        back with the text they had, counted, and finish reason ``ABORTED``. ``keep`` sees
        each sample's tokens as they stream (the sampling must ask for log-probabilities)
        and cancels that sample alone when it returns False. At ``until`` (a moment on
        ``time.monotonic``'s clock: a deadline) the samples still running are cancelled
        the same way."""
        ...


@runtime_checkable
class RewardModel(Protocol):
    """A reward or classification model (vLLM's pooling runner): one score per text."""

    async def score(self, texts: Sequence[str]) -> tuple[list[float], int]:
        """The scores of ``texts`` (higher is better) and the prompt tokens the model read."""
        ...


class EngineError(Exception):
    """An engine call failed. ``status`` follows HTTP where it applies."""

    def __init__(self, message: str, *, status: int = 502, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class EngineTimeout(EngineError):
    def __init__(self, message: str) -> None:
        super().__init__(message, status=504, retryable=False)


class EngineUnavailable(EngineError):
    def __init__(self, message: str) -> None:
        super().__init__(message, status=503, retryable=True)


class EngineRejected(EngineError):
    """The engine refused the request as invalid (its 4xx); never retried."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message, status=status, retryable=False)
