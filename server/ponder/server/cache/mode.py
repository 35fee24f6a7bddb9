"""What one request lets the cache do: ``"ponder": {"cache": ...}``."""

from __future__ import annotations

from enum import StrEnum


class CacheMode(StrEnum):
    """``default`` reads and writes; ``no-cache`` skips the lookup but stores the fresh
    answer (a refresh); ``no-store`` neither reads nor writes."""

    DEFAULT = "default"
    NO_CACHE = "no-cache"
    NO_STORE = "no-store"

    @property
    def reads(self) -> bool:
        return self is CacheMode.DEFAULT

    @property
    def writes(self) -> bool:
        return self is not CacheMode.NO_STORE
