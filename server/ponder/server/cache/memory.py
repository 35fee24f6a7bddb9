"""The in-process back end: least recently used, bounded in entries and in bytes."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class _Entry:
    value: bytes
    expires: float


class MemoryStore:
    """An LRU map in this process; each worker of a gateway has its own.

    Adding an entry evicts the least recently used ones until both bounds
    hold; a value larger than ``max_bytes`` is not stored at all.
    """

    name = "memory"

    def __init__(
        self,
        *,
        max_entries: int,
        max_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("a memory cache needs room for at least one entry and one byte")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """Bytes held: values and keys."""
        return self._bytes

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self._get(key) for key in keys]

    async def set_many(self, items: Mapping[str, bytes], ttl: float) -> None:
        expires = self._clock() + ttl
        for key, value in items.items():
            self._set(key, value, expires)

    async def aclose(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self._clock():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry.value

    def _set(self, key: str, value: bytes, expires: float) -> None:
        self._remove(key)
        size = _size(key, value)
        if size > self.max_bytes:
            return
        self._entries[key] = _Entry(value, expires)
        self._bytes += size
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._remove(oldest)

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= _size(key, entry.value)


def _size(key: str, value: bytes) -> int:
    return len(key) + len(value)
