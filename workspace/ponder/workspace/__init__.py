"""The bounded textual workspace and its distillation operators.

Pure code with no I/O: token counts come from an injected counter (the
engine's own tokenizer, through ``Engine.count_tokens``), so the bound is in
the engine's tokens, never characters. Operators that need a model — the
global summary, the self-verification scorer — are split into the prompt they
need and what they do with the answer; the strategy makes the call.
"""

from ponder.workspace.bound import Cut, TokenCounter, Workspace, bound_text
from ponder.workspace.conclusion import (
    MIN_DRAFT_SHARE,
    BoundDrafts,
    WorkspaceTooSmall,
    bound_drafts,
    fair_shares,
    keep_conclusion,
    minimum_bound,
)
from ponder.workspace.operators import (
    Distill,
    agreement_ranking,
    per_sample_top_k,
    random_k,
    render_drafts,
    score_ranking,
    shared_top_k,
    summary_prompt,
    verification_prompt,
    verified,
)

__all__ = [
    "MIN_DRAFT_SHARE",
    "BoundDrafts",
    "Cut",
    "Distill",
    "TokenCounter",
    "Workspace",
    "WorkspaceTooSmall",
    "agreement_ranking",
    "bound_drafts",
    "bound_text",
    "fair_shares",
    "keep_conclusion",
    "minimum_bound",
    "per_sample_top_k",
    "random_k",
    "render_drafts",
    "score_ranking",
    "shared_top_k",
    "summary_prompt",
    "verification_prompt",
    "verified",
]
