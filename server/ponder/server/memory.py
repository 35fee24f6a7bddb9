"""Memory handed back to the system after large requests.

A large request body is parsed into objects several times its size. When they are
freed, glibc keeps the space in the process for reuse, so one burst of large
requests would leave the gateway at its peak size for good. ``malloc_trim`` gives
the free space back; it costs about a millisecond, so it runs only after
requests whose bodies were large.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

logger = logging.getLogger(__name__)

#: Bodies at least this large are followed by a trim.
LARGE_BODY_BYTES = 1 << 20


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim  # noqa: B018 - glibc only; musl and macOS have none
    except (OSError, AttributeError):
        return None
    return libc


def hand_back_free_memory() -> None:
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
