"""Scripts for the scripted engine: answer by what the prompt contains."""

from __future__ import annotations

from collections.abc import Callable

from ponder.strategies import Budget, Message, Sampling, StrategyContext
from ponder.strategies.testing import ScriptedEngine

Rule = tuple[str, Callable[[str, int], str] | str]


def by_rules(
    *rules: Rule, default: Callable[[str, int], str] | str = "The answer is 1."
) -> Callable[[str, int], str]:
    """The first rule whose marker is in the prompt answers; markers are checked in order."""

    def script(prompt: str, index: int) -> str:
        for marker, reply in rules:
            if marker in prompt:
                return reply(prompt, index) if callable(reply) else reply
        return default(prompt, index) if callable(default) else default

    return script


def context(
    engine: ScriptedEngine,
    question: str = "What is 6 times 7?",
    *,
    sampling: Sampling | None = None,
    **kwargs: object,
) -> StrategyContext:
    return StrategyContext(
        engine=engine,
        prompt=[Message("system", "Be brief."), Message("user", question)],
        sampling=sampling or Sampling(max_tokens=256),
        budget=Budget(),
        **kwargs,  # type: ignore[arg-type]
    )


def user_text(prompt: str) -> str:
    """The user message of a rendered chat prompt (the trace's "role: content" form)."""
    return prompt.split("user: ", 1)[1]
