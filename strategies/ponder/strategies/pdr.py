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
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ponder.strategies import prompts
from ponder.strategies.answers import answer_note, stated
from ponder.strategies.base import (
    Annotate,
    Answer,
    Strategy,
    StrategyContext,
    StrategyParams,
    StrategyResult,
)
from ponder.strategies.details import Details, WorkspaceInfo
from ponder.strategies.engine import Choice
from ponder.strategies.limits import Limits
from ponder.workspace import (
    Distill,
    Workspace,
    agreement_ranking,
    bound_text,
    per_sample_top_k,
    random_k,
    render_drafts,
    score_ranking,
    shared_top_k,
    summary_prompt,
    verification_prompt,
    verified,
)


class PDRParams(StrategyParams):
    schedule: list[int] = Field(
        default=[8, 4, 1],
        min_length=1,
        description="drafts per round; the last round has 1",
    )
    distill: Distill = Field(Distill.GLOBAL_SUMMARY, description="how drafts become a workspace")
    k: int = Field(2, ge=1, le=16, description="drafts kept by the top-k and random-k operators")
    scorer: Literal["agreement", "verify"] = Field(
        "agreement", description="top-k ranks drafts by answer agreement or a verification call"
    )
    workspace_tokens: int = Field(
        1024, ge=32, le=32768, description="bound of a workspace, in the engine's tokens"
    )

    @field_validator("schedule")
    @classmethod
    def _ends_in_one(cls, schedule: list[int]) -> list[int]:
        if any(m < 1 for m in schedule):
            raise ValueError("every round needs at least 1 draft")
        if schedule[-1] != 1:
            raise ValueError("the last round of the schedule must have 1 draft")
        return schedule


class PDRRound(BaseModel):
    """One round that was distilled: its drafts, the operator, what each next call reads."""

    model_config = ConfigDict(frozen=True)

    round: int
    drafts: int
    distill: Distill
    #: Top-k and random-k: the drafts each next call reads, by index.
    selections: list[list[int]] | None = None
    workspaces: list[WorkspaceInfo]


class PDRDetails(Details):
    rounds: list[PDRRound]

    def workspaces(self) -> list[WorkspaceInfo]:
        return [workspace for round_ in self.rounds for workspace in round_.workspaces]


class PDR(Strategy[PDRParams]):
    name: ClassVar[str] = "pdr"
    Params: ClassVar[type[PDRParams]] = PDRParams
    description: ClassVar[str] = "parallel drafts, distilled into a bounded workspace, refined"

    def check_limits(self, limits: Limits, max_tokens: int) -> None:
        limits.check_rounds(len(self.params.schedule), "pdr.schedule")
        limits.check_drafts(max(self.params.schedule), "the largest round of pdr.schedule")
        super().check_limits(limits, max_tokens)

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
        sampling = ctx.sampling_for(self.params)
        workspaces = [Workspace("", 0)]  # round 1 reads none
        rounds: list[PDRRound] = []
        drafts: list[Choice] = []
        for round_, degree in enumerate(schedule, 1):
            last = round_ == len(schedule)
            await ctx.progress(f"round {round_} of {len(schedule)}: {degree} drafts")
            if len(workspaces) == 1:
                prompt = ctx.chat(prompts.from_workspace(ctx.question, workspaces[0].text))
                note = _reads(workspaces[0], round_)
                if last:
                    drafts = [
                        await ctx.final(
                            prompt, role="draft", round=round_, sampling=sampling, annotate=note
                        )
                    ]
                else:
                    generation = await ctx.generate(
                        prompt,
                        role="draft",
                        round=round_,
                        n=degree,
                        sampling=sampling,
                        annotate=note,
                    )
                    drafts = list(generation.choices)
            else:
                drafts = await self._per_call_drafts(ctx, workspaces, round_)
            if last:
                break
            workspaces, distilled = await self._distill(
                ctx, drafts, schedule[round_], round_, degree
            )
            rounds.append(distilled)
        answer = drafts[0]
        return StrategyResult(
            answers=[Answer.from_choice(answer)], details=PDRDetails(rounds=rounds)
        )

    async def _per_call_drafts(
        self, ctx: StrategyContext, workspaces: list[Workspace], round_: int
    ) -> list[Choice]:
        sampling = ctx.sampling_for(self.params)
        with ctx.budget.parallel():
            generations = await asyncio.gather(
                *(
                    ctx.generate(
                        ctx.chat(prompts.from_workspace(ctx.question, workspace.text)),
                        role="draft",
                        round=round_,
                        index=i,
                        sampling=sampling,
                        annotate=_reads(workspace, round_),
                    )
                    for i, workspace in enumerate(workspaces)
                )
            )
        return [generation.choices[0] for generation in generations]

    async def _distill(
        self, ctx: StrategyContext, drafts: list[Choice], calls: int, round_: int, degree: int
    ) -> tuple[list[Workspace], PDRRound]:
        """The next round's workspaces (one, shared, or one per call) and what was done."""
        params = self.params
        texts = [draft.text for draft in drafts]
        bound = params.workspace_tokens
        if params.distill is Distill.GLOBAL_SUMMARY:
            summary = await ctx.generate(
                ctx.chat(summary_prompt(ctx.question, texts)),
                role="distill",
                round=round_,
                sampling=ctx.sampling_for(params, max_tokens=bound),
            )
            workspace = await bound_text(summary.choices[0].text, bound, ctx.engine.count_tokens)
            return [workspace], PDRRound(
                round=round_,
                drafts=degree,
                distill=params.distill,
                workspaces=[WorkspaceInfo.of(workspace)],
            )
        if params.distill is Distill.RANDOM_K:
            selections = random_k(len(texts), params.k, calls, seed=ctx.seed + round_)
        else:
            ranking = await self._ranking(ctx, texts, round_)
            pick = shared_top_k if params.distill is Distill.SHARED_TOP_K else per_sample_top_k
            selections = pick(ranking, params.k, calls)
        distinct = sorted({tuple(selection) for selection in selections})
        bounded = {
            selection: await bound_text(
                render_drafts([texts[i] for i in selection]), bound, ctx.engine.count_tokens
            )
            for selection in distinct
        }
        info = PDRRound(
            round=round_,
            drafts=degree,
            distill=params.distill,
            selections=selections,
            workspaces=[WorkspaceInfo.of(bounded[s]) for s in distinct],
        )
        if len(distinct) == 1:
            return [bounded[distinct[0]]], info
        return [bounded[tuple(selection)] for selection in selections], info

    async def _ranking(self, ctx: StrategyContext, texts: list[str], round_: int) -> list[int]:
        if self.params.scorer == "agreement":
            return agreement_ranking([stated(text) for text in texts])
        sampling = ctx.sampling_for(self.params, max_tokens=16)
        with ctx.budget.parallel():
            replies = await asyncio.gather(
                *(
                    ctx.generate(
                        ctx.chat(verification_prompt(ctx.question, text)),
                        role="verify",
                        round=round_,
                        index=i,
                        sampling=sampling,
                        annotate=lambda choice: {"score": verified(choice.text)},
                    )
                    for i, text in enumerate(texts)
                )
            )
        return score_ranking([verified(reply.choices[0].text) for reply in replies])


def workspace_note(workspace: Workspace) -> dict[str, Any]:
    """A workspace's size in the engine's tokens, and its cut when it had to be cut."""
    return WorkspaceInfo.of(workspace).model_dump(mode="json")


def _reads(workspace: Workspace, round_: int) -> Annotate:
    """The trace note of a draft: its answer and, after round 1, the workspace it read."""
    if round_ == 1:
        return answer_note

    def note(choice: Choice) -> dict[str, Any]:
        return {**answer_note(choice), "workspace": workspace_note(workspace)}

    return note
