"""Which configuration a budget buys: the most accurate one whose measured cost fits.

A request with ``ponder.budget`` and no strategy named is served by the
configuration with the best measured accuracy, on this model, whose measured
mean latency, B_seq and B_total each fit the budget. The measurements are the
evaluation results the gateway keeps (:mod:`ponder.server.frontier`); a
configuration measured on several datasets counts with its mean over them.
With no results for the model, a default ladder of configurations, each
costed from the tokens a call is assumed to write and the engines' measured
pace, stands in: the last rung that fits is chosen. When nothing fits, the
cheapest configuration is served, and the budget still caps it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ponder.server.eval_results import EvalReport
from ponder.strategies.pace import Pace
from ponder.strategies.registry import Registry
from ponder.strategies.user_budget import BudgetStop, UserBudget


@dataclass(frozen=True, slots=True)
class Candidate:
    """A configuration and what it costs (measured, or estimated for the ladder)."""

    config: str
    strategy: str
    params: dict[str, Any]
    latency_s: float
    sequential_tokens: float
    all_tokens: float
    #: Measured accuracy (None: a ladder rung, never measured).
    accuracy: float | None = None
    items: int = 0
    #: A measured configuration: how many times its measured latency it is read at here.
    latency_scale: float | None = None

    def over(self, budget: UserBudget) -> list[str]:
        """The bounds of ``budget`` this configuration's cost passes."""
        passed = []
        if budget.latency_s is not None and self.latency_s > budget.latency_s:
            passed.append("latency_s")
        if (
            budget.sequential_tokens is not None
            and self.sequential_tokens > budget.sequential_tokens
        ):
            passed.append("sequential_tokens")
        if budget.all_tokens is not None and self.all_tokens > budget.all_tokens:
            passed.append("all_tokens")
        return passed


class BudgetInfo(BaseModel):
    """``ponder.details.budget``: the budget, what it chose and why, and whether it stopped
    the run short."""

    model_config = ConfigDict(frozen=True)

    budget: dict[str, float | int]
    #: frontier: chosen from evaluation results; ladder: from the default ladder; named:
    #: the request named its strategy, which the budget caps.
    source: Literal["frontier", "ladder", "named"]
    config: str | None = None
    why: str | None = None
    #: What the chosen configuration was measured (or estimated) to cost, and its accuracy.
    expected: dict[str, float] | None = None
    #: A frontier's choice: how many times longer this server has been taking than the
    #: evaluation that measured it (its runs' ratio, or every configuration's before it has
    #: run); its latency was read times this, and ``expected`` shows it so.
    latency_scale: float | None = None
    stopped: BudgetStop | None = None


@dataclass(frozen=True, slots=True)
class Rung:
    """A configuration of the default ladder, as its engine steps."""

    config: str
    strategy: str
    params: dict[str, Any]
    #: The samples of each call, one call after another (the critical path).
    widths: tuple[int, ...]
    #: Steps that read earlier drafts (a workspace of about one call's output).
    reading_steps: int = 0


#: The default ladder, from the cheapest: each rung is expected to answer better than the
#: ones before it, and costs more in B_total.
LADDER: tuple[Rung, ...] = (
    Rung("direct", "direct", {}, widths=(1,)),
    Rung("cot", "cot", {}, widths=(1,)),
    Rung("self_consistency n=4", "self_consistency", {"n": 4}, widths=(4,)),
    Rung(
        "pdr [4,1]",
        "pdr",
        {"schedule": [4, 1], "distill": "global_summary"},
        widths=(4, 1, 1),
        reading_steps=2,
    ),
    Rung("self_consistency n=8", "self_consistency", {"n": 8}, widths=(8,)),
    Rung(
        "pdr [8,4,1]",
        "pdr",
        {"schedule": [8, 4, 1], "distill": "global_summary"},
        widths=(8, 1, 4, 1, 1),
        reading_steps=4,
    ),
)


def ladder(pace: Pace, call_tokens: int, prompt_tokens: int) -> list[Candidate]:
    """The ladder costed for calls writing ``call_tokens`` per sample after a
    ``prompt_tokens`` prompt, a call of several samples at the pace of that many."""
    candidates = []
    for rung in LADDER:
        per_call = prompt_tokens + call_tokens
        sequential = len(rung.widths) * per_call + rung.reading_steps * call_tokens
        candidates.append(
            Candidate(
                config=rung.config,
                strategy=rung.strategy,
                params=rung.params,
                latency_s=sum(pace.seconds_for(call_tokens, width) for width in rung.widths),
                sequential_tokens=sequential,
                all_tokens=sum(rung.widths) * per_call + rung.reading_steps * call_tokens,
            )
        )
    return candidates


def measured(
    reports: Sequence[EvalReport],
    registry: Registry,
    latency_scale: Callable[[str], float] = lambda config: 1.0,
) -> list[Candidate]:
    """The configurations the reports measured that this server can run (with their
    parameters, a strategy it has), each averaged over the datasets that measured it; the
    latency of each times ``latency_scale(config)`` (how much slower this server runs it
    than the evaluation did)."""
    seen: dict[str, list[Any]] = {}
    for report in reports:
        for result in report.results:
            if result.params is None or result.strategy not in registry:
                continue
            try:
                registry.build(result.strategy, result.params)
            except ValueError:
                continue  # parameters this version does not take
            seen.setdefault(result.config, []).append(result)
    candidates = []
    for config, results in seen.items():
        count = len(results)
        scale = round(latency_scale(config), 3)
        candidates.append(
            Candidate(
                config=config,
                strategy=results[-1].strategy,
                params=dict(results[-1].params),
                accuracy=sum(r.accuracy for r in results) / count,
                latency_s=scale * sum(r.mean_latency_seconds for r in results) / count,
                sequential_tokens=sum(r.mean_sequential_tokens for r in results) / count,
                all_tokens=sum(r.mean_all_tokens for r in results) / count,
                items=sum(r.items for r in results),
                latency_scale=scale,
            )
        )
    return candidates


def choose(
    budget: UserBudget, candidates: Sequence[Candidate], source: str
) -> tuple[Candidate, str]:
    """The candidate ``budget`` buys, and why in a sentence. Measured candidates: the most
    accurate that fits (ties: the fewest B_total). Ladder rungs: the last that fits."""
    assert candidates, "choose needs candidates"
    fitting = [c for c in candidates if not c.over(budget)]
    if not fitting:
        cheapest = min(candidates, key=lambda c: (len(c.over(budget)), c.all_tokens, c.latency_s))
        return cheapest, (
            f"no {source} configuration fits the budget; {cheapest.config} is the cheapest "
            f"(it passes {', '.join(cheapest.over(budget))}), and the budget caps it"
        )
    if source == "ladder":
        chosen = fitting[-1]
        return chosen, (
            f"no evaluation results for this model: the default ladder's costliest rung that "
            f"fits ({len(fitting)} of {len(candidates)} fit)"
        )
    chosen = max(fitting, key=lambda c: (c.accuracy or 0.0, -c.all_tokens))
    return chosen, (
        f"the most accurate of the {len(fitting)} measured configurations (of {len(candidates)}) "
        f"whose measured mean cost fits: accuracy {chosen.accuracy:.3f} on {chosen.items} items"
    )


def expected(candidate: Candidate) -> dict[str, float]:
    shown = {
        "latency_s": round(candidate.latency_s, 3),
        "sequential_tokens": round(candidate.sequential_tokens, 1),
        "all_tokens": round(candidate.all_tokens, 1),
    }
    if candidate.accuracy is not None:
        shown["accuracy"] = round(candidate.accuracy, 4)
    return shown
