"""Where cache entries live: the interface every back end implements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol


class CacheStore(Protocol):
    """Bytes by key, each with a time to live.

    A store may raise on any operation (Redis down, out of memory, slow);
    :class:`~ponder.server.cache.cache.Cache` turns failures into misses.
    """

    #: The back end's name, for metrics and logs ("memory", "redis").
    name: str

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The value of each key, ``None`` where there is none (or it expired)."""
        ...

    async def set_many(self, items: Mapping[str, bytes], ttl: float) -> None:
        """Store every item for ``ttl`` seconds."""
        ...

    async def aclose(self) -> None: ...
