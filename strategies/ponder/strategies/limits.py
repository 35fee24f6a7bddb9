"""Every cap the server puts on one request, in one place.

The gateway checks the request-level caps (``n``, ``max_tokens``) before any
engine call; strategies check their own sizes (drafts, rounds, planned
samples) against the same object; the budget enforces ``max_all_tokens``
while the request runs. Transport caps (body size, requests in flight) sit
here too, so an operator reads one list.
"""

from __future__ import annotations

from dataclasses import dataclass


class OverCap(ValueError):
    """A request asks for more than a cap allows; ``param`` names what it asked."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class Limits:
    """Server-side caps a request must stay under."""

    max_n: int = 16
    max_tokens_per_call: int = 4096
    max_drafts_per_round: int = 16
    max_rounds: int = 8
    max_all_tokens: int = 200_000
    max_messages: int = 2048
    max_prompt_tokens: int = 65_536
    max_body_bytes: int = 8 * 1024 * 1024
    max_in_flight: int = 256

    def check_n(self, answers: int) -> None:
        if answers > self.max_n:
            raise OverCap(
                f"n is {answers} answers; the server's cap (max_n) is {self.max_n}", param="n"
            )

    def check_max_tokens(self, max_tokens: int, param: str = "max_tokens") -> None:
        if max_tokens > self.max_tokens_per_call:
            raise OverCap(
                f"{param} {max_tokens} is over the server's cap (max_tokens_per_call) of "
                f"{self.max_tokens_per_call}",
                param=param,
            )

    def check_messages(self, count: int) -> None:
        # Chat templates cost engines time quadratic in the messages: many tiny ones add up.
        if count > self.max_messages:
            raise OverCap(
                f"the request has {count} messages; the server's cap (max_messages) is "
                f"{self.max_messages}",
                param="messages",
            )

    def check_prompt_tokens(self, tokens: int, param: str) -> None:
        if tokens > self.max_prompt_tokens:
            raise OverCap(
                f"the prompt is {tokens} tokens; the server's cap (max_prompt_tokens) is "
                f"{self.max_prompt_tokens}",
                param=param,
            )

    def check_calls(self, samples: int, max_tokens: int) -> None:
        """Refuse a plan whose output alone could pass ``max_all_tokens``."""
        if samples * max_tokens > self.max_all_tokens:
            raise OverCap(
                f"{samples} samples of up to {max_tokens} tokens could spend "
                f"{samples * max_tokens} tokens, over the server's cap (max_all_tokens) of "
                f"{self.max_all_tokens}; lower max_tokens or the strategy's sizes",
                param="ponder",
            )

    def check_drafts(self, drafts: int, what: str) -> None:
        if drafts > self.max_drafts_per_round:
            raise OverCap(
                f"{what} is {drafts}, over the server's cap "
                f"(max_drafts_per_round) of {self.max_drafts_per_round}",
                param="ponder",
            )

    def check_rounds(self, rounds: int, what: str) -> None:
        if rounds > self.max_rounds:
            raise OverCap(
                f"{what} makes {rounds} rounds, over the server's cap "
                f"(max_rounds) of {self.max_rounds}",
                param="ponder",
            )
