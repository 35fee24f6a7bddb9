"""Distillation operators: from a round's drafts to the next round's workspaces.

- ``global_summary``: one model call summarises all drafts; every next call reads it.
- ``shared_top_k``: the k best drafts, shared by every next call.
- ``per_sample_top_k``: each next call reads its own k drafts, taken from the
  ranking in a window that starts one place further for each call.
- ``random_k``: each next call reads k drafts drawn at random, seeded.

"Best" is by answer agreement (drafts whose answer has the most votes first)
or by a self-verification call per draft.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from enum import StrEnum


class Distill(StrEnum):
    GLOBAL_SUMMARY = "global_summary"
    SHARED_TOP_K = "shared_top_k"
    PER_SAMPLE_TOP_K = "per_sample_top_k"
    RANDOM_K = "random_k"


def render_drafts(drafts: Sequence[str], *, label: str = "Attempt") -> str:
    return "\n\n".join(f"### {label} {i + 1}\n{draft.strip()}" for i, draft in enumerate(drafts))


def summary_prompt(question: str, drafts: Sequence[str], *, rendered: str | None = None) -> str:
    """The prompt of the global-summary call (``rendered``: the drafts already rendered and
    bounded)."""
    attempts = rendered if rendered is not None else render_drafts(drafts)
    return (
        f"Below are {len(drafts)} attempts at the same problem. They may contain errors.\n\n"
        f"Problem:\n{question}\n\n{attempts}\n\n"
        "Write a concise summary for the next attempt at this problem. Cover:\n"
        "1. Agreements: results the attempts share.\n"
        "2. Contradictions: where they differ, and which is more likely right.\n"
        "3. Derived facts: intermediate results that can be reused.\n"
        "4. Unresolved sub-goals: what is still open or doubtful.\n"
        "5. Next actions: how to reach a correct final answer.\n"
        "Do not just copy one attempt."
    )


def verification_prompt(question: str, draft: str) -> str:
    """The prompt of one self-verification call."""
    return (
        f"Problem:\n{question}\n\nProposed solution:\n{draft.strip()}\n\n"
        "Check the solution step by step. Is its final answer correct? "
        "Reply with Yes or No first."
    )


def verified(reply: str) -> float:
    """A verification reply as a score: 1 for yes, 0 otherwise."""
    return 1.0 if reply.strip().lower().lstrip("*# ").startswith("yes") else 0.0


def agreement_ranking(answers: Sequence[str | None]) -> list[int]:
    """Draft indices, those whose (normalised) answer has the most votes first; stable."""
    votes = Counter(a for a in answers if a is not None)

    def support(i: int) -> int:
        answer = answers[i]
        return votes[answer] if answer is not None else 0

    return sorted(range(len(answers)), key=lambda i: -support(i))


def score_ranking(scores: Sequence[float]) -> list[int]:
    """Draft indices by score, highest first; stable."""
    return sorted(range(len(scores)), key=lambda i: -scores[i])


def shared_top_k(ranking: Sequence[int], k: int, calls: int) -> list[list[int]]:
    return [list(ranking[:k]) for _ in range(calls)]


def per_sample_top_k(ranking: Sequence[int], k: int, calls: int) -> list[list[int]]:
    k = min(k, len(ranking))
    return [[ranking[(call + i) % len(ranking)] for i in range(k)] for call in range(calls)]


def random_k(drafts: int, k: int, calls: int, *, seed: int) -> list[list[int]]:
    k = min(k, drafts)
    return [
        sorted(random.Random(seed * 1_000_003 + call).sample(range(drafts), k))
        for call in range(calls)
    ]
