"""Cache keys: SHA-256 over a canonical JSON form, namespaced by a cache version."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ponder.strategies.engine import Prompt, Sampling

#: Bumped whenever what is stored, or what a key covers, changes: old entries
#: are then never read again and expire by their TTL.
CACHE_VERSION = "v1"


def cache_key(namespace: str, payload: Any) -> str:
    """``ponder:<version>:<namespace>:<sha256 of payload as canonical JSON>``."""
    canonical = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"ponder:{CACHE_VERSION}:{namespace}:{digest}"


def prompt_form(prompt: Prompt) -> Any:
    """A prompt as JSON: raw text, or the chat messages as ``[role, content]`` pairs."""
    if isinstance(prompt, str):
        return prompt
    return [
        [message.role, message.content]
        if not (message.tool_calls or message.tool_call_id or message.name)
        else [
            message.role,
            message.content,
            [[c.id, c.name, c.arguments] for c in message.tool_calls],
            message.tool_call_id,
            message.name,
        ]
        for message in prompt
    ]


def call_keys(model: str, prompt: Prompt, sampling: Sampling, n: int) -> list[str]:
    """One key per sample of an engine call: the sample's index within its batch is part
    of its key, so ``n`` parallel drafts stay ``n`` distinct entries."""
    base = {
        "model": model,
        "prompt": prompt_form(prompt),
        "sampling": sampling.to_body(),
        "logprobs": sampling.logprobs,
        "n": n,
    }
    return [cache_key("call", {**base, "index": index}) for index in range(n)]


def deterministic(sampling: Sampling) -> bool:
    """Whether a call with ``sampling`` gives the same output again: greedy, or seeded."""
    return sampling.seed is not None or sampling.temperature == 0
