"""When and how long to wait before trying an engine call again."""

from __future__ import annotations

import random
from dataclasses import dataclass

#: Statuses that mean "this replica cannot take the call now", not "the call is wrong".
RETRYABLE_STATUSES = frozenset({502, 503})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3
    backoff_base: float = 0.25
    backoff_max: float = 4.0

    def delay(self, attempt: int, *, rng: random.Random | None = None) -> float:
        """Full-jitter exponential backoff before retry number ``attempt`` (1-based)."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return (rng or random).uniform(0, ceiling)
