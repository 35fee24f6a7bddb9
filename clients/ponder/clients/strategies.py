"""The built-in strategies' parameters as typed objects, checked before a request is sent.

They mirror the server's parameter models (a test keeps them in step); the
common parameters ``trace``, ``temperature`` and ``max_tokens`` are arguments
of the request instead, but for the strategies that sample drafts:
their ``temperature`` is the drafts' (0.7 by default, even for a greedy
request).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

AnswerFormat = Literal["numeric", "choice", "yes_no", "free"]

#: The server's default temperature of drafts (self_consistency, sr's first draft, pdr).
DRAFT_TEMPERATURE = 0.7


class Strategy(BaseModel):
    """A strategy and its parameters; ``to_ponder()`` is what goes in the request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ClassVar[str]
    #: What an answer is, for extraction, votes and rankings.
    answer_format: AnswerFormat = "numeric"

    def to_ponder(self) -> dict[str, Any]:
        return {"strategy": self.name, **self.model_dump(exclude_defaults=True, mode="json")}


class Custom(Strategy):
    """A strategy the SDK has no class for (a plugin): its name and parameters as given."""

    model_config = ConfigDict(extra="allow", frozen=True)

    strategy_name: str = Field(min_length=1)

    def to_ponder(self) -> dict[str, Any]:
        fields = self.model_dump(exclude_defaults=True, exclude={"strategy_name"}, mode="json")
        return {"strategy": self.strategy_name, **fields, **(self.model_extra or {})}


class Direct(Strategy):
    """One pass: the request goes to the engine unchanged."""

    name: ClassVar[str] = "direct"


class Demo(BaseModel):
    question: str = Field(min_length=1)
    rationale: str = Field(min_length=1)
    answer: str = Field(min_length=1)


class CoT(Strategy):
    """Chain-of-Thought: zero-shot, few-shot, or Auto-CoT."""

    name: ClassVar[str] = "cot"
    mode: Literal["zero_shot", "few_shot", "auto"] = "zero_shot"
    demos: str | list[Demo] | None = None
    n_demos: int = Field(8, ge=1, le=32)
    pool: str | None = None
    extract_max_tokens: int = Field(32, ge=1, le=512)

    @model_validator(mode="after")
    def _mode_has_its_inputs(self) -> CoT:
        if self.mode == "few_shot" and not self.demos:
            raise ValueError("mode few_shot needs demos (a demo set's name, or a list)")
        if self.mode == "auto" and not self.pool:
            raise ValueError("mode auto needs pool (a question pool's name)")
        return self


class PlanAndSolve(Strategy):
    """Plan-and-Solve prompting, PS or PS+."""

    name: ClassVar[str] = "plan_and_solve"
    variant: Literal["ps", "ps_plus"] = "ps_plus"
    extract_max_tokens: int = Field(32, ge=1, le=512)


class Successive(Strategy):
    """Successive Prompting: simple sub-questions, one at a time."""

    name: ClassVar[str] = "successive"
    max_steps: int = Field(4, ge=1, le=16)
    step_max_tokens: int = Field(96, ge=8, le=1024)


ScorerName = Literal["judge", "reward", "confidence"]


class Scoring(Strategy):
    """How a scorer is configured (judge, reward, confidence)."""

    judge_mode: Literal["pointwise", "pairwise"] = "pointwise"
    confidence_method: Literal["mean", "lowest_window"] = "lowest_window"
    confidence_window: int = Field(16, ge=1, le=4096)


class SelfConsistency(Scoring):
    """n sampled rationales in one call, majority vote (weighted by a scorer if asked)."""

    name: ClassVar[str] = "self_consistency"
    n: int = Field(8, ge=1, le=64)
    temperature: float | None = Field(DRAFT_TEMPERATURE, ge=0.0, le=2.0)
    weighted: bool = False
    scorer: ScorerName = "confidence"
    #: Stop once the vote is decided; the samples still running are cancelled.
    adaptive: bool = False
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    #: Adaptive: samples started at a time (default: all n at once).
    wave: int | None = Field(None, ge=1, le=64)
    #: DeepConf online: cut samples whose confidence falls under the warm-up's threshold.
    confidence_filter: bool = False
    warmup: int = Field(2, ge=1, le=63)
    filter_keep: float = Field(0.9, gt=0.0, lt=1.0)


class BestOfN(Scoring):
    """n sampled solutions in one call; the best by the judge, a reward model or confidence."""

    name: ClassVar[str] = "best_of_n"
    n: int = Field(4, ge=1, le=64)
    temperature: float | None = Field(DRAFT_TEMPERATURE, ge=0.0, le=2.0)
    scorer: ScorerName = "judge"


class SR(Strategy):
    """Sequential refinement: one draft, then rounds of refinement."""

    name: ClassVar[str] = "sr"
    rounds: int = Field(2, ge=1, le=32)
    error_analysis: bool = False
    #: Stop once a refinement keeps its draft's answer.
    early_exit: bool = False
    temperature: float | None = Field(DRAFT_TEMPERATURE, ge=0.0, le=2.0)


class PDR(Scoring):
    """Parallel-Distill-Refine: parallel drafts, a bounded workspace, refinement."""

    name: ClassVar[str] = "pdr"
    schedule: list[int] = Field(default=[8, 4, 1], min_length=1)
    distill: Literal["global_summary", "shared_top_k", "per_sample_top_k", "random_k"] = (
        "global_summary"
    )
    k: int = Field(2, ge=1, le=16)
    scorer: Literal["agreement", "verify", "judge", "reward", "confidence"] = "agreement"
    workspace_tokens: int = Field(1024, ge=32, le=32768)
    #: Share of a round's drafts it waits for; the rest are cancelled.
    draft_quorum: float = Field(1.0, gt=0.0, le=1.0)
    summary_max_tokens: int | None = Field(None, ge=1, le=32768)
    summary_input_tokens: int = Field(1024, ge=64, le=131072)
    #: Skip the rounds left once a round's drafts all state the same answer.
    early_exit: bool = False
    temperature: float | None = Field(DRAFT_TEMPERATURE, ge=0.0, le=2.0)

    @field_validator("schedule")
    @classmethod
    def _ends_in_one(cls, schedule: list[int]) -> list[int]:
        if any(m < 1 for m in schedule):
            raise ValueError("every round needs at least 1 draft")
        if schedule[-1] != 1:
            raise ValueError("the last round of the schedule must have 1 draft")
        return schedule


BUILT_IN: tuple[type[Strategy], ...] = (
    Direct,
    CoT,
    PlanAndSolve,
    Successive,
    SelfConsistency,
    BestOfN,
    SR,
    PDR,
)
