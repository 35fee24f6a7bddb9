"""A streamed reply that one replica began and another finishes.

When a replica dies mid-stream, the client has already been sent part of the
answer. The pool sends the prompt to another replica with that part as the
start of the assistant's reply (vLLM's ``continue_final_message``, llama.cpp's
assistant prefill, plain concatenation for a text prompt), so the client sees
one uninterrupted answer and the usage of one reply.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ponder.strategies.engine import (
    Choice,
    Message,
    Prompt,
    Sampling,
    StreamEnd,
    TextDelta,
    TokenLogprob,
)


def continued(prompt: Prompt, begun: str) -> Prompt:
    """``prompt`` with ``begun`` as the start of the reply to it."""
    if isinstance(prompt, str):
        return prompt + begun
    messages = list(prompt)
    last = messages[-1] if messages else None
    if last is not None and last.role == "assistant" and not last.tool_calls:
        # The client's own prefill: the reply goes on from it.
        messages[-1] = replace(last, content=last.content + begun)
    else:
        messages.append(Message(role="assistant", content=begun))
    return messages


@dataclass(slots=True)
class BegunReply:
    """What a stream has sent so far, across the replicas it ran on."""

    text: str = ""
    logprobs: list[TokenLogprob] = field(default_factory=list)
    #: Whether anything reached the caller (a delta may carry log-probabilities only).
    sent: bool = False
    #: The text and the tokens the earlier replicas generated, before the current one.
    earlier_text: str = ""
    earlier_tokens: int = 0
    resumptions: int = 0

    def add(self, delta: TextDelta) -> None:
        self.sent = True
        self.text += delta.text
        self.logprobs.extend(delta.logprobs)

    def resume(self, tokens_so_far: int) -> None:
        """A new replica takes over from here; ``tokens_so_far`` is ``text``'s token count."""
        self.earlier_text = self.text
        self.earlier_tokens = tokens_so_far
        self.resumptions += 1

    def rest_of(self, sampling: Sampling) -> Sampling | None:
        """``sampling`` for the rest of the reply; None when its token limit is spent."""
        if sampling.max_tokens is None:
            return sampling
        left = sampling.max_tokens - self.earlier_tokens
        return replace(sampling, max_tokens=left) if left > 0 else None

    def spent(self, model: str) -> StreamEnd:
        """The end of the rest of a reply whose token limit the earlier replicas used up."""
        return StreamEnd(
            choice=Choice(text="", completion_tokens=0, finish_reason="length"),
            prompt_tokens=0,
            model=model,
        )

    def end(self, end: StreamEnd) -> StreamEnd:
        """The last replica's end, made the end of the whole reply: its text and tokens
        include what earlier replicas generated, and its prompt is the client's (the
        begun text the last replica read is counted once, as completion)."""
        if not self.resumptions:
            return end
        choice = end.choice
        return replace(
            end,
            choice=replace(
                choice,
                text=self.earlier_text + choice.text,
                completion_tokens=self.earlier_tokens + choice.completion_tokens,
                logprobs=tuple(self.logprobs) if choice.logprobs is not None else None,
            ),
            prompt_tokens=max(0, end.prompt_tokens - self.earlier_tokens),
        )
