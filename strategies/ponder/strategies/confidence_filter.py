"""Confidence-filtered voting, online (DeepConf, Fu et al. 2025).

The first ``warmup`` samples to finish set a threshold: the quantile of their
lowest group confidences (a group is a window of tokens; a token's confidence
is the negative mean log-probability of its top alternatives) that keeps
``keep`` of them — 0.9 is the paper's DeepConf-high, 0.1 its DeepConf-low.
From then on a sample still generating is cut as soon as the mean confidence
of its last window falls under the threshold, and a sample that finishes with
a lowest window under it is left out. The survivors vote, each weighted by
its confidence.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from ponder.strategies.engine import Choice, TokenLogprob
from ponder.strategies.scorers import ConfidenceScorer, token_confidence


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values``, linearly interpolated."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class ConfidenceFilter:
    warmup: int
    keep: float
    window: int
    threshold: float | None = None
    #: Samples cut while generating or left out when they finished, by index.
    filtered: set[int] = field(default_factory=set)
    _warm: list[float] = field(default_factory=list)
    _windows: dict[int, deque[float]] = field(default_factory=dict)

    @property
    def scorer(self) -> ConfidenceScorer:
        return ConfidenceScorer("lowest_window", self.window)

    def watch(self, index: int, tokens: Sequence[TokenLogprob]) -> bool:
        """Whether sample ``index`` may go on, given its newest tokens."""
        recent = self._windows.setdefault(index, deque(maxlen=self.window))
        recent.extend(token_confidence(t.top_values or (t.logprob,)) for t in tokens)
        if self.threshold is None or len(recent) < self.window:
            return True
        if sum(recent) / len(recent) < self.threshold:
            self.filtered.add(index)
            return False
        return True

    def finished(self, index: int, choice: Choice) -> None:
        """A finished sample: one of the warm-up, or kept only above the threshold."""
        score = self.scorer.of(choice)
        if self.threshold is None:
            self._warm.append(score)
            if len(self._warm) >= self.warmup:
                self.threshold = quantile(self._warm, 1.0 - self.keep)
        elif score < self.threshold:
            self.filtered.add(index)
