"""A chat's earlier turns reach every call of every strategy, not only the last message."""

from __future__ import annotations

from typing import Any

import pytest

from ponder.strategies.base import StrategyContext
from ponder.strategies.budget import Budget
from ponder.strategies.engine import Message, Sampling
from ponder.strategies.registry import Registry
from ponder.strategies.testing import ScriptedEngine

CONVERSATION = [
    Message("system", "You are terse."),
    Message("user", "Let x = 5."),
    Message("assistant", "Noted: x is 5."),
    Message("user", "What is 2x?"),
]

CONFIGS: list[tuple[str, dict[str, Any]]] = [
    ("direct", {}),
    ("cot", {}),
    ("plan_and_solve", {}),
    ("successive", {"max_steps": 2}),
    ("self_consistency", {"n": 3}),
    ("sr", {"rounds": 1, "error_analysis": True}),
    ("pdr", {"schedule": [2, 1]}),
    ("pdr", {"schedule": [3, 2, 1], "distill": "per_sample_top_k", "scorer": "verify"}),
]


@pytest.mark.parametrize(("name", "params"), CONFIGS)
async def test_every_call_carries_the_earlier_turns(name: str, params: dict[str, Any]) -> None:
    engine = ScriptedEngine(script=lambda prompt, index: "Q1: what is x? The answer is 10.")
    strategy = Registry.default(load_entry_points=False).build(name, params)
    ctx = StrategyContext(
        engine=engine, prompt=CONVERSATION, sampling=Sampling(max_tokens=32), budget=Budget()
    )
    await strategy.run(ctx)
    assert engine.calls
    for call in engine.calls:
        lines = call.prompt.splitlines()
        assert lines[:3] == [
            "system: You are terse.",
            "user: Let x = 5.",
            "assistant: Noted: x is 5.",
        ]
        assert "What is 2x?" in call.prompt  # the question, inside the strategy's prompt
