"""Work cut off at a moment: what ends an engine call at a deadline without losing it.

A call cancelled from outside (the run's own deadline) loses what it had made;
one that watches the moment itself can stop its samples and still hand back
the text and tokens they had, counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator


@contextlib.asynccontextmanager
async def cut_at(until: float | None) -> AsyncIterator[None]:
    """Run the block until ``until`` (``time.monotonic``'s clock; None: no end), then cancel
    it and carry on after it: reaching ``until`` is not an error."""
    if until is None:
        yield
        return
    loop = asyncio.get_running_loop()
    # The event loop's clock may not be time.monotonic's (uvloop keeps its own).
    timeout = asyncio.timeout_at(loop.time() + (until - time.monotonic()))
    try:
        async with timeout:
            yield
    except TimeoutError:
        if not timeout.expired():
            raise
