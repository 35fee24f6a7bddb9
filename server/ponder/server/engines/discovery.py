"""Replicas found by DNS: every address of a name (a Kubernetes headless Service) is one.

``http://vllm-headless.ns.svc:8000/v1`` resolves to one address per ready
engine pod; the pool asks again every ``interval`` seconds and follows the
replicas as they scale up and down.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

#: host -> its addresses (IPv4 and IPv6 as strings).
Resolver = Callable[[str], Awaitable[list[str]]]


async def resolve(host: str) -> list[str]:
    """Every address ``host`` has, as the system resolver answers now."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


class DnsReplicas:
    """The replica URLs behind one DNS name."""

    def __init__(self, url: str, *, resolver: Resolver = resolve) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if not parts.hostname or not parts.port:
            raise ValueError(f"engine DNS name {url!r} needs a host and a port: http://name:8000")
        self.url = url
        self._parts = parts
        self._resolver = resolver

    @property
    def host(self) -> str:
        assert self._parts.hostname is not None
        return self._parts.hostname

    async def urls(self) -> list[str]:
        """One URL per address, in a stable order; raises ``OSError`` when the name fails."""
        addresses = await self._resolver(self.host)
        urls = []
        for address in addresses:
            host = f"[{address}]" if ":" in address else address
            netloc = f"{host}:{self._parts.port}"
            urls.append(urlunsplit(self._parts._replace(netloc=netloc)))
        return urls
