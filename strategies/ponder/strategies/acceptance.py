"""Whether an engine has taken any of a request's calls yet.

A streamed response commits to its 200 with its first byte. Until an engine has
accepted one of the request's calls, a failure (every replica down, the call
refused) can still be answered with its own HTTP status, so the stream holds
what it would send until then (see ``ponder.server.note_gate``).
The event travels in a context variable: it reaches the calls of the tasks the
request starts, whatever engine wrappers lie between.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar

_taken: ContextVar[asyncio.Event | None] = ContextVar("ponder_engine_taken", default=None)


def watch_engines_taking_calls() -> asyncio.Event:
    """An event set once an engine accepts a call made from this context (or from tasks
    started in it afterwards)."""
    event = asyncio.Event()
    _taken.set(event)
    return event


def an_engine_took_a_call() -> None:
    event = _taken.get()
    if event is not None:
        event.set()
