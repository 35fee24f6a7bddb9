"""Response and engine-call caching, in process or in Redis."""

from ponder.server.cache.cache import Cache, Level
from ponder.server.cache.engine import CachingEngine
from ponder.server.cache.keys import CACHE_VERSION, cache_key, call_keys, deterministic
from ponder.server.cache.memory import MemoryStore
from ponder.server.cache.mode import CacheMode
from ponder.server.cache.redis_store import RedisStore
from ponder.server.cache.store import CacheStore

__all__ = [
    "CACHE_VERSION",
    "Cache",
    "CacheMode",
    "CacheStore",
    "CachingEngine",
    "Level",
    "MemoryStore",
    "RedisStore",
    "cache_key",
    "call_keys",
    "deterministic",
]
