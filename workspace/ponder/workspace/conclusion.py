"""Drafts under a shared token bound, each keeping its conclusion.

A draft's answer is at its end, so cutting a draft to a prefix loses exactly
what the next round needs. Here every selected draft gets a share of the
bound (short drafts give what they do not use to long ones); a draft over its
share keeps its opening and its conclusion — the final answer and the
reasoning just before it — and the middle is replaced by a visible marker
saying how much was elided. Each cut is recorded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ponder.workspace.bound import Cut, TokenCounter, Workspace, longest_prefix, sentence_ends
from ponder.workspace.operators import render_drafts

#: The fewest tokens one draft's conclusion (with its header) is given. A bound
#: smaller than this per draft is refused before any engine call.
MIN_DRAFT_SHARE = 48

#: What stands where the middle of a draft was: it tells the reader text is missing.
ELISION = "[... {tokens} tokens elided ...]"


class WorkspaceTooSmall(ValueError):
    """The bound cannot hold the conclusion of every draft; ``minimum`` can."""

    def __init__(self, message: str, minimum: int) -> None:
        super().__init__(message)
        self.minimum = minimum


def minimum_bound(drafts: int) -> int:
    """The smallest bound that gives each of ``drafts`` drafts room for its conclusion."""
    return drafts * MIN_DRAFT_SHARE


@dataclass(frozen=True, slots=True)
class BoundDrafts:
    """The rendered drafts as one workspace, and the cut of each draft (None: whole)."""

    workspace: Workspace
    cuts: tuple[Cut | None, ...]


async def keep_conclusion(text: str, max_tokens: int, count: TokenCounter) -> Workspace:
    """``text`` if it fits; else its opening, a marker, and its conclusion, within the bound.

    The conclusion gets at least three quarters of the bound; the opening gets
    what the conclusion leaves. Sentences are kept whole where they fit.
    """
    text = text.strip()
    total = await count(text)
    if total <= max_tokens:
        return Workspace(text, total)
    budget = max_tokens - await count(ELISION.format(tokens=total))
    for _ in range(4):  # token counts of joined text are not additive: shrink until it fits
        if budget < 1:
            break
        tail, tail_tokens, unit = await _conclusion(text, budget - budget // 4, count)
        head, head_tokens = await _opening(text, len(text) - len(tail), budget - tail_tokens, count)
        elided = max(0, total - head_tokens - tail_tokens)
        kept = "\n".join(part for part in (head, ELISION.format(tokens=elided), tail) if part)
        tokens = await count(kept)
        if tokens <= max_tokens:
            cut = Cut(
                bound=max_tokens,
                original_tokens=total,
                kept_tokens=tokens,
                dropped_chars=len(text) - len(head) - len(tail),
                at="middle" if unit == "sentence" else "middle-word",
            )
            return Workspace(kept, tokens, cut)
        budget -= tokens - max_tokens
    raise WorkspaceTooSmall(
        f"{max_tokens} tokens cannot hold a draft's conclusion", minimum=MIN_DRAFT_SHARE
    )


async def bound_drafts(
    drafts: Sequence[str], bound: int, count: TokenCounter, *, label: str = "Attempt"
) -> BoundDrafts:
    """Every draft rendered under one bound, each within its share, each keeping its conclusion."""
    if bound < minimum_bound(len(drafts)):
        raise WorkspaceTooSmall(
            f"a workspace of {bound} tokens cannot hold the conclusions of {len(drafts)} "
            f"drafts; the smallest workable bound is {minimum_bound(len(drafts))}",
            minimum=minimum_bound(len(drafts)),
        )
    texts = [draft.strip() for draft in drafts]
    whole = render_drafts(texts, label=label)
    whole_tokens = await count(whole)
    if whole_tokens <= bound:
        return BoundDrafts(Workspace(whole, whole_tokens), tuple(None for _ in texts))
    headers = await count(render_drafts(["" for _ in texts], label=label))
    sizes = [await count(text) for text in texts]
    available = bound - headers
    for _ in range(4):
        shares = fair_shares(sizes, available)
        kept = [await keep_conclusion(t, s, count) for t, s in zip(texts, shares, strict=True)]
        rendered = render_drafts([w.text for w in kept], label=label)
        tokens = await count(rendered)
        if tokens <= bound:
            cut = Cut(
                bound=bound,
                original_tokens=whole_tokens,
                kept_tokens=tokens,
                dropped_chars=len(whole) - len(rendered),
                at="per-draft",
            )
            return BoundDrafts(Workspace(rendered, tokens, cut), tuple(w.cut for w in kept))
        available -= tokens - bound
    raise WorkspaceTooSmall(
        f"a workspace of {bound} tokens cannot hold the conclusions of {len(texts)} drafts",
        minimum=minimum_bound(len(texts)) + headers,
    )


def fair_shares(sizes: Sequence[int], available: int) -> list[int]:
    """Split ``available`` tokens: drafts that need less than an equal share keep all they
    need, and what they leave goes equally to the others (water-filling)."""
    shares = [0] * len(sizes)
    waiting = sorted(range(len(sizes)), key=lambda i: sizes[i])
    left = available
    while waiting:
        equal = left // len(waiting)
        smallest = waiting[0]
        if sizes[smallest] <= equal:
            shares[smallest] = sizes[smallest]
            left -= sizes[smallest]
            waiting.pop(0)
            continue
        for i in waiting:
            shares[i] = equal
        break
    return shares


async def _conclusion(text: str, max_tokens: int, count: TokenCounter) -> tuple[str, int, str]:
    """The shortest-dropping suffix of ``text`` within ``max_tokens``: whole sentences, else
    words."""
    for unit, starts in (("sentence", _sentence_starts(text)), ("word", _word_starts(text))):
        low, high = 0, len(starts) - 1
        best: tuple[str, int] | None = None
        while low <= high:  # later starts give shorter suffixes
            middle = (low + high) // 2
            suffix = text[starts[middle] :]
            tokens = await count(suffix)
            if tokens <= max_tokens:
                best = (suffix, tokens)
                high = middle - 1
            else:
                low = middle + 1
        if best is not None:
            return best[0], best[1], unit
    return "", 0, "word"


async def _opening(text: str, limit: int, max_tokens: int, count: TokenCounter) -> tuple[str, int]:
    """The longest prefix of ``text[:limit]`` ending a sentence, within ``max_tokens``."""
    if max_tokens < 1:
        return "", 0
    ends = [end for end in sentence_ends(text) if end <= limit]
    return await longest_prefix(text, ends, max_tokens, count)


def _sentence_starts(text: str) -> list[int]:
    starts = [0]
    for end in sentence_ends(text):
        following = re.search(r"\S", text[end:])
        if following is not None:
            starts.append(end + following.start())
    return sorted(set(starts))


def _word_starts(text: str) -> list[int]:
    return [match.start() for match in re.finditer(r"\S+", text)]
