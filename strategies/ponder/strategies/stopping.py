"""When a vote is decided before every sample is in (Adaptive-Consistency).

Aggarwal et al. 2023 stop sampling once the leading answer is the majority
with high probability. Their Beta criterion looks at the two most common
answers: with ``v1`` and ``v2`` votes and a uniform prior, the leader's share
``p`` among the two has the posterior Beta(v1 + 1, v2 + 1), and sampling
stops when P(p > 1/2) reaches the confidence asked for (0.95 in the paper).
Independently of any prior, a leader that the samples still running cannot
catch is decided too.

Samples drawn side by side do not finish in the order they were drawn, and the
order they finish in says something about their answers (short rationales end
first), so the first to finish are a biased sample of the n. The criterion
therefore judges samples in the order they were drawn: only the first k, once
all k have finished, as if sampled one at a time. (An evaluation did not show
the other order losing answers: docs/evaluation.md.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from math import comb
from typing import Literal

#: Why a vote stopped early: no sample still running could change the winner, or the
#: Beta posterior put the leader ahead with the confidence asked for.
StopReason = Literal["unbeatable", "confident"]


def agreed(answers: Iterable[str | None]) -> str | None:
    """The answer every one of ``answers`` states, or None (some differ, or state none)."""
    distinct = set(answers)
    if len(distinct) == 1 and None not in distinct:
        return distinct.pop()
    return None


def majority_confidence(leader: int, runner_up: int) -> float:
    """P(p > 1/2) for p ~ Beta(leader + 1, runner_up + 1).

    For integer parameters a and b, P(p > 1/2) is the chance that at most a - 1
    of a + b - 1 fair coin flips come up heads, an exact finite sum.
    """
    a, b = leader + 1, runner_up + 1
    flips = a + b - 1
    return float(sum(comb(flips, heads) for heads in range(a)) / 2**flips)


def decided(answers: Iterable[str | None], remaining: int, confidence: float) -> StopReason | None:
    """Whether the vote over ``answers`` (None: a sample with no answer) is decided while
    ``remaining`` samples still run."""
    counts = Counter(answer for answer in answers if answer is not None).most_common(2)
    if not counts:
        return None
    leader = counts[0][1]
    runner_up = counts[1][1] if len(counts) > 1 else 0
    if leader > runner_up + remaining:
        return "unbeatable"
    if remaining and majority_confidence(leader, runner_up) >= confidence:
        return "confident"
    return None


def decided_in_draw_order(
    votes: Mapping[int, str | None], n: int, confidence: float
) -> StopReason | None:
    """Whether the vote of ``n`` samples is decided, ``votes`` holding the answers of those
    finished by their index. A leader nobody can catch is judged on every finished sample;
    the Beta criterion on the samples before the first still running."""
    if decided(votes.values(), n - len(votes), 1.0) == "unbeatable":  # 1: no Beta stop
        return "unbeatable"
    drawn = 0
    while drawn in votes:
        drawn += 1
    if drawn == n:
        return None
    return decided([votes[index] for index in range(drawn)], n - drawn, confidence)
