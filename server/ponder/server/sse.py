"""Server-sent events as the openai SDK reads them."""

from __future__ import annotations

import json

from pydantic import BaseModel

DONE = b"data: [DONE]\n\n"


def event(payload: BaseModel | dict[str, object]) -> bytes:
    if isinstance(payload, BaseModel):
        data = payload.model_dump_json(exclude_none=True)
    else:
        data = json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def comment(text: str) -> bytes:
    """A line the SDK skips: progress of rounds that come before the answer."""
    return "".join(f": {line}\n" for line in text.splitlines() or [""]).encode() + b"\n"
