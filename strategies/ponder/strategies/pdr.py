"""``pdr``: Parallel-Distill-Refine (Madaan et al. 2025).

Rounds r = 1..R follow a degree schedule [M_1, ..., M_R] whose last entry
is 1. Round r samples M_r drafts, each conditioned on the question and the
workspace distilled from round r-1 (none in round 1); when every draft reads
the same workspace they are ONE batched engine call. The drafts are then
distilled into a NEW bounded workspace — rebuilt every round, never
accumulated — by one of the operators of ``ponder.workspace``. The single
draft of the last round is the answer, streamed to a streaming client.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ponder.strategies import prompts
from ponder.strategies.answers import noting, stated
from ponder.strategies.base import (
    Annotate,
    Answer,
    DraftingParams,
    EarlyExitParams,
    Strategy,
    StrategyContext,
    StrategyResult,
    render_prompt,
)
from ponder.strategies.details import Details, WorkspaceInfo
from ponder.strategies.engine import ABORTED, Choice, EngineError, Prompt, Sampling
from ponder.strategies.limits import Limits
from ponder.strategies.prompts import AnswerFormat
from ponder.strategies.scorers import ScoringParams, make_scorer
from ponder.strategies.stopping import agreed
from ponder.workspace import (
    MIN_DRAFT_SHARE,
    Cut,
    Distill,
    Workspace,
    agreement_ranking,
    bound_drafts,
    bound_text,
    minimum_bound,
    per_sample_top_k,
    random_k,
    score_ranking,
    shared_top_k,
    summary_prompt,
)


class PDRParams(DraftingParams, ScoringParams, EarlyExitParams):
    schedule: list[int] = Field(
        default=[8, 4, 1],
        min_length=1,
        description="drafts per round; the last round has 1",
    )
    distill: Distill = Field(Distill.GLOBAL_SUMMARY, description="how drafts become a workspace")
    k: int = Field(2, ge=1, le=16, description="drafts kept by the top-k and random-k operators")
    scorer: Literal["agreement", "verify", "judge", "reward", "confidence"] = Field(
        "agreement",
        description="what top-k ranks drafts by: answer agreement, a yes/no verification call, "
        "the LLM judge, a reward model (--reward-url) or the drafts' token confidence",
    )
    workspace_tokens: int = Field(
        1024,
        ge=32,
        le=32768,
        description="bound of a workspace, in the engine's tokens; top-k and random-k give "
        "each kept draft a share, its conclusion kept",
    )
    draft_quorum: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="share of a round's drafts it waits for before distilling; the rest are "
        "cancelled at the engine (rounds whose drafts share one workspace)",
    )
    summary_max_tokens: int | None = Field(
        None,
        ge=1,
        le=32768,
        description="global_summary: output bound of the summary call (default: "
        "workspace_tokens); the summary is then bounded to workspace_tokens",
    )
    summary_input_tokens: int = Field(
        1024,
        ge=64,
        le=131072,
        description="global_summary: bound of the drafts the summary call reads (each draft "
        "a share, its conclusion kept), so the call fits the engine's context",
    )

    @model_validator(mode="after")
    def _workspace_holds_k_conclusions(self) -> PDRParams:
        if self.distill is not Distill.GLOBAL_SUMMARY and len(self.schedule) > 1:
            kept = min(self.k, max(self.schedule[:-1]))
            if self.workspace_tokens < minimum_bound(kept):
                raise ValueError(
                    f"workspace_tokens {self.workspace_tokens} cannot hold the conclusions of "
                    f"k={kept} drafts ({MIN_DRAFT_SHARE} tokens each); the smallest workable "
                    f"workspace_tokens is {minimum_bound(kept)}"
                )
        return self

    @field_validator("schedule")
    @classmethod
    def _ends_in_one(cls, schedule: list[int]) -> list[int]:
        if any(m < 1 for m in schedule):
            raise ValueError("every round needs at least 1 draft")
        if schedule[-1] != 1:
            raise ValueError("the last round of the schedule must have 1 draft")
        return schedule


#: A workspace a draft reads, and what the trace and details say of it (None: round 1's).
Read = tuple[Workspace, "WorkspaceInfo | None"]


class PDRRound(BaseModel):
    """One round that was distilled: its drafts, the operator, what each next call reads."""

    model_config = ConfigDict(frozen=True)

    round: int
    drafts: int
    distill: Distill
    #: Top-k and random-k: the drafts each next call reads, by index.
    selections: list[list[int]] | None = None
    #: Global summary: the drafts as the summary call read them, each within its share.
    summary_input: WorkspaceInfo | None = None
    workspaces: list[WorkspaceInfo]
    #: With draft_quorum below 1: drafts cancelled once the quorum had finished.
    cancelled: int | None = None


class PDRDetails(Details):
    rounds: list[PDRRound]
    #: With early_exit: the round after which the run stopped, and the answer its drafts
    #: all stated (None: every round ran).
    stopped_after_round: int | None = None
    agreed_answer: str | None = None

    def workspaces(self) -> list[WorkspaceInfo]:
        return [workspace for round_ in self.rounds for workspace in round_.workspaces]


class PDR(Strategy[PDRParams]):
    name: ClassVar[str] = "pdr"
    Params: ClassVar[type[PDRParams]] = PDRParams
    description: ClassVar[str] = "parallel drafts, distilled into a bounded workspace, refined"

    def check_limits(self, limits: Limits, max_tokens: int) -> None:
        limits.check_rounds(len(self.params.schedule), "pdr.schedule")
        limits.check_drafts(max(self.params.schedule), "the largest round of pdr.schedule")
        if self.params.summary_max_tokens is not None:
            limits.check_max_tokens(
                self.params.summary_max_tokens, param="ponder.summary_max_tokens"
            )
        super().check_limits(limits, max_tokens)

    def _summary_bound(self, limits: Limits) -> int:
        """The summary call's output bound: its own, else the workspace's (held to the
        server's per-call cap)."""
        own = self.params.summary_max_tokens
        return own or min(self.params.workspace_tokens, limits.max_tokens_per_call)

    def planned_samples(self) -> int:
        schedule, params = self.params.schedule, self.params
        distills = 0
        if params.distill is Distill.GLOBAL_SUMMARY:
            distills = len(schedule) - 1
        elif params.scorer == "verify" and params.distill is not Distill.RANDOM_K:
            distills = sum(schedule[:-1])
        return sum(schedule) + distills

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        schedule = self.params.schedule
        sampling = self._draft_sampling(ctx)
        workspaces: list[Read] = [(Workspace("", 0), None)]  # round 1 reads none
        rounds: list[PDRRound] = []
        drafts: list[Choice] = []
        for round_, degree in enumerate(schedule, 1):
            last = round_ == len(schedule)
            await ctx.progress(f"round {round_} of {len(schedule)}: {degree} drafts")
            if len(workspaces) == 1:
                prompt = ctx.chat(prompts.from_workspace(ctx.question, workspaces[0][0].text))
                note = _reads(workspaces[0][1], self.params.answer_format)
                if last:
                    drafts = [
                        await ctx.final(
                            prompt, role="draft", round=round_, sampling=sampling, annotate=note
                        )
                    ]
                else:
                    drafts = await self._shared_drafts(ctx, prompt, degree, round_, sampling, note)
            else:
                drafts = await self._per_call_drafts(ctx, workspaces, round_)
            if last:
                break
            cancelled = sum(1 for draft in drafts if draft.finish_reason == ABORTED)
            drafts = [draft for draft in drafts if draft.finish_reason != ABORTED]
            if drafts:
                ctx.offer(Answer.leader(drafts, self.params.answer_format))
            agreement = self._agreement(drafts)
            if agreement is not None:
                await ctx.progress(
                    f"every draft of round {round_} states {agreement}: the rounds left are skipped"
                )
                return StrategyResult(
                    answers=[Answer.from_choice(drafts[0], self.params.answer_format)],
                    details=PDRDetails(
                        rounds=rounds, stopped_after_round=round_, agreed_answer=agreement
                    ),
                )
            workspaces, distilled = await self._distill(
                ctx, drafts, schedule[round_], round_, degree
            )
            if cancelled:
                distilled = distilled.model_copy(update={"cancelled": cancelled})
            rounds.append(distilled)
            await _show(ctx, workspaces, round_)
        answer = drafts[0]
        return StrategyResult(
            answers=[Answer.from_choice(answer, self.params.answer_format)],
            details=PDRDetails(rounds=rounds),
        )

    async def _shared_drafts(
        self,
        ctx: StrategyContext,
        prompt: Prompt,
        degree: int,
        round_: int,
        sampling: Sampling,
        note: Annotate,
    ) -> list[Choice]:
        """A round's drafts in one batched call; with a quorum below 1, the call ends once
        that share has finished (the rest cancelled at the engine, marked in the trace)."""
        need = math.ceil(self.params.draft_quorum * degree)
        if need >= degree:
            generation = await ctx.generate(
                prompt, role="draft", round=round_, n=degree, sampling=sampling, annotate=note
            )
            return list(generation.choices)
        finished: set[int] = set()

        def done(index: int, _: Choice) -> bool:
            finished.add(index)
            return len(finished) >= need

        def marked(choice: Choice) -> dict[str, Any]:
            return {"cancelled": True} if choice.finish_reason == ABORTED else note(choice)

        generation = await ctx.generate_until(
            prompt,
            role="draft",
            round=round_,
            n=degree,
            done=done,
            sampling=sampling,
            annotate=marked,
        )
        return list(generation.choices)

    def _agreement(self, drafts: list[Choice]) -> str | None:
        """With early_exit, the answer every draft states, if they all state one."""
        if not self.params.early_exit:
            return None
        return agreed(stated(draft.text, self.params.answer_format) for draft in drafts)

    async def _per_call_drafts(
        self, ctx: StrategyContext, workspaces: list[Read], round_: int
    ) -> list[Choice]:
        """One call per draft, each reading its own workspace. A draft whose call fails is
        left out (marked ``failed`` in the trace); the round fails only if every one does."""
        sampling = self._draft_sampling(ctx)
        asked = [ctx.chat(prompts.from_workspace(ctx.question, w.text)) for w, _ in workspaces]
        with ctx.budget.parallel():
            outcomes = await asyncio.gather(
                *(
                    ctx.generate(
                        prompt,
                        role="draft",
                        round=round_,
                        index=i,
                        sampling=sampling,
                        annotate=_reads(info, self.params.answer_format),
                    )
                    for i, (prompt, (_, info)) in enumerate(zip(asked, workspaces, strict=True))
                ),
                return_exceptions=True,
            )
            drafts: list[Choice] = []
            failures: list[EngineError] = []
            for i, outcome in enumerate(outcomes):
                if isinstance(outcome, EngineError):
                    failures.append(outcome)
                    ctx.budget.record_failure(
                        role="draft",
                        round=round_,
                        prompt=render_prompt(asked[i]),
                        index=i,
                        error=str(outcome),
                    )
                elif isinstance(outcome, BaseException):
                    raise outcome
                else:
                    drafts.append(outcome.choices[0])
        if not drafts:
            raise failures[0]
        if failures:
            await ctx.progress(
                f"round {round_}: {len(failures)} of {len(outcomes)} drafts failed; "
                f"going on with {len(drafts)}"
            )
        return drafts

    async def _distill(
        self, ctx: StrategyContext, drafts: list[Choice], calls: int, round_: int, degree: int
    ) -> tuple[list[Read], PDRRound]:
        """The next round's workspaces (one, shared, or one per call) and what was done."""
        params = self.params
        texts = [draft.text for draft in drafts]
        bound = params.workspace_tokens
        count = ctx.engine.count_tokens
        if params.distill is Distill.GLOBAL_SUMMARY:
            read = await bound_drafts(texts, params.summary_input_tokens, count)
            summary = await ctx.generate(
                ctx.chat(summary_prompt(ctx.question, texts, rendered=read.workspace.text)),
                role="distill",
                round=round_,
                sampling=ctx.auxiliary_sampling(params, max_tokens=self._summary_bound(ctx.limits)),
            )
            workspace = await bound_text(summary.choices[0].text, bound, count)
            info = WorkspaceInfo.of(workspace)
            return [(workspace, info)], PDRRound(
                round=round_,
                drafts=degree,
                distill=params.distill,
                summary_input=_info(read.workspace, read.cuts),
                workspaces=[info],
            )
        if params.distill is Distill.RANDOM_K:
            selections = random_k(len(texts), params.k, calls, seed=ctx.seed + round_)
        else:
            ranking = await self._ranking(ctx, drafts, round_)
            pick = shared_top_k if params.distill is Distill.SHARED_TOP_K else per_sample_top_k
            selections = pick(ranking, params.k, calls)
        distinct = sorted({tuple(selection) for selection in selections})
        bounded: dict[tuple[int, ...], Read] = {}
        for selection in distinct:
            kept = await bound_drafts([texts[i] for i in selection], bound, count)
            bounded[selection] = (kept.workspace, _info(kept.workspace, kept.cuts))
        done = PDRRound(
            round=round_,
            drafts=degree,
            distill=params.distill,
            selections=selections,
            workspaces=[info for _, info in (bounded[s] for s in distinct)],
        )
        if len(distinct) == 1:
            return [bounded[distinct[0]]], done
        return [bounded[tuple(selection)] for selection in selections], done

    def _draft_sampling(self, ctx: StrategyContext) -> Sampling:
        sampling = ctx.sampling_for(self.params)
        if self.params.scorer == "confidence" and self.params.distill is not Distill.RANDOM_K:
            return make_scorer("confidence", self.params).prepare(sampling)
        return sampling

    async def _ranking(self, ctx: StrategyContext, drafts: list[Choice], round_: int) -> list[int]:
        params = self.params
        texts = [draft.text for draft in drafts]
        if params.scorer == "agreement":
            return agreement_ranking([stated(text, params.answer_format) for text in texts])
        scorer = make_scorer(params.scorer, params)
        return score_ranking(await scorer.score(ctx, drafts, round=round_))


async def _show(ctx: StrategyContext, workspaces: list[Read], round_: int) -> None:
    """Each distinct workspace of the next round, as the work shown (summary level)."""
    distinct = list(dict.fromkeys(workspace.text for workspace, _ in workspaces))
    for number, text in enumerate(distinct, 1):
        which = f" {number} of {len(distinct)}" if len(distinct) > 1 else ""
        await ctx.reasoning.section(f"workspace{which} after round {round_}", text, level="summary")


def _info(workspace: Workspace, cuts: tuple[Cut | None, ...]) -> WorkspaceInfo:
    return WorkspaceInfo(
        tokens=workspace.tokens,
        cut=workspace.cut,
        draft_cuts=list(cuts) if any(cut is not None for cut in cuts) else None,
    )


def _reads(info: WorkspaceInfo | None, fmt: AnswerFormat) -> Annotate:
    """The trace note of a draft: its answer and, after round 1, the workspace it read (its
    size, its cut and each kept draft's cut)."""
    answer = noting(fmt)
    if info is None:
        return answer
    shown = info.model_dump(mode="json", exclude_none=True)

    def note(choice: Choice) -> dict[str, Any]:
        return {**answer(choice), "workspace": shown}

    return note
