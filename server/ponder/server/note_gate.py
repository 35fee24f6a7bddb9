"""Progress notes held back until an engine has taken one of the request's calls.

A strategy says what it is doing (``drafting 4 ...``) before its first engine
call returns. Sent at once, that note commits the response to 200, and an
engine failure on that first call could only be an error event inside it. So
the notes wait until an engine accepts a call (or answer text or the answer
itself comes): a failure before then is answered with its own HTTP status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class NoteGate:
    def __init__(self, send: Callable[[bytes], None], taken: asyncio.Event) -> None:
        self._send = send
        self._taken = taken
        self._held: list[bytes] = []
        self._open = False
        self._waiting = asyncio.create_task(self._open_when_taken())

    async def _open_when_taken(self) -> None:
        await self._taken.wait()
        self.open()

    def open(self) -> None:
        """Send what was held, and from now on send at once."""
        self._open = True
        for chunk in self._held:
            self._send(chunk)
        self._held.clear()

    def note(self, chunk: bytes) -> None:
        if self._open or self._taken.is_set():
            self.open()
            self._send(chunk)
        else:
            self._held.append(chunk)

    def close(self) -> None:
        """Stop waiting (notes still held are dropped: the response is an error)."""
        self._waiting.cancel()
