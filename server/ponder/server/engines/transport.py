"""How an engine client speaks HTTP to one replica: aiohttp's client (the default) or httpx's.

:class:`~ponder.server.engines.http_engine.HTTPEngine` says what to ask and reads what comes
back; a transport sends it and turns the library's failures into engine errors, so that the
engine client reads the same errors whichever library carried the call:

- :class:`EngineUnavailable` (retried): the connection was refused, dropped or reset, no
  connection was free in time, or connecting timed out;
- :class:`EngineTimeout`: the engine took longer than the read timeout to send anything;
- :class:`EngineError`: anything else the library raised.

aiohttp is the default because the gateway's CPU goes where its requests go: httpx's request
and response models (URL parsing, header objects, a cookie jar read on every response) cost
more than the engine call's own I/O (docs/benchmarks.md, "The gateway's own cost").
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import httpx
from yarl import URL

from ponder.strategies.engine import EngineError, EngineTimeout, EngineUnavailable


class EngineResponse(Protocol):
    """An engine's answer, its body not yet read."""

    status: int

    async def read(self) -> bytes:
        """The whole body."""
        ...

    def lines(self) -> AsyncIterator[str]:
        """The body's lines as they arrive, without their line ends."""
        ...

    def hang_up(self) -> None:
        """Close the connection at once, which is how engines learn to abort the request
        (an awaited close may not run: the caller may be being cancelled)."""
        ...

    async def aclose(self) -> None:
        """Give the connection back: to the pool if the body was read to its end."""
        ...


class EngineTransport(Protocol):
    """HTTP to one replica, its failures as engine errors."""

    async def post(self, path: str, body: dict[str, Any], *, close: bool) -> EngineResponse:
        """POST ``body`` as JSON; the response is returned once its headers arrive.
        ``close`` asks the engine to close the connection after this response."""
        ...

    async def get(self, path: str) -> tuple[int, bytes]:
        """GET ``path``: its status and body (bound it with ``asyncio.timeout``)."""
        ...

    async def aclose(self) -> None: ...


def where(base_url: str) -> str:
    """How errors name a replica: ``engine host:port``."""
    parts = urlsplit(base_url)
    return f"engine {parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


# -- aiohttp -------------------------------------------------------------------


@contextlib.contextmanager
def _aiohttp_errors(base_url: str) -> Iterator[None]:
    try:
        yield
    except aiohttp.ConnectionTimeoutError as error:  # connecting, or waiting for the pool
        raise EngineUnavailable(f"{base_url}: {error!r}") from error
    except aiohttp.SocketTimeoutError as error:
        raise EngineTimeout(f"{base_url} sent nothing in time: {error!r}") from error
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as error:
        raise EngineUnavailable(f"{base_url}: {error!r}") from error
    except aiohttp.ClientError as error:
        raise EngineError(f"{base_url}: {error!r}") from error


class _AiohttpResponse:
    def __init__(self, response: aiohttp.ClientResponse, base_url: str) -> None:
        self._response = response
        self._base_url = base_url
        self.status = response.status

    async def read(self) -> bytes:
        with _aiohttp_errors(self._base_url):
            return await self._response.read()

    async def lines(self) -> AsyncIterator[str]:
        with _aiohttp_errors(self._base_url):
            async for line in self._response.content:
                yield line.decode().rstrip("\r\n")

    def hang_up(self) -> None:
        self._response.close()

    async def aclose(self) -> None:
        # A body not read to its end closes the connection instead of pooling it.
        self._response.release()


#: JSON as httpx writes it: no spaces, text as UTF-8, no NaN. One encoder for every call:
#: ``json.dumps`` with any option builds a new one each time.
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _compact_json(value: Any) -> str:
    return _COMPACT.encode(value)


class AiohttpTransport:
    """aiohttp's client session and connection pool, made on first use (in the running
    loop). ``timeout`` bounds each read and the wait for a pooled connection, as httpx's
    timeout does; the whole call's bound is the engine client's."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str],
        timeout: float,
        connect_timeout: float,
        max_connections: int,
        keepalive: float,
    ) -> None:
        self._base_url = base_url
        self._headers = headers
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout, sock_connect=connect_timeout, sock_read=timeout
        )
        self._max_connections = max_connections
        self._keepalive = keepalive
        self._session: aiohttp.ClientSession | None = None
        #: Parsed once: a call's URL is one of a handful of paths.
        self._urls: dict[str, URL] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, keepalive_timeout=self._keepalive
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                timeout=self._timeout,
                json_serialize=_compact_json,
            )
        return self._session

    def _url(self, path: str) -> URL:
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = URL(self._base_url + path)
        return url

    async def post(self, path: str, body: dict[str, Any], *, close: bool) -> EngineResponse:
        headers = {"Connection": "close"} if close else None
        with _aiohttp_errors(self._base_url):
            response = await self._client().post(self._url(path), json=body, headers=headers)
        return _AiohttpResponse(response, self._base_url)

    async def get(self, path: str) -> tuple[int, bytes]:
        with _aiohttp_errors(self._base_url):
            async with self._client().get(self._url(path)) as response:
                return response.status, await response.read()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


# -- httpx ---------------------------------------------------------------------


#: Transport errors that mean "this replica cannot take the call now": connection refused or
#: reset, and a kept-alive connection the engine dropped (llama.cpp's server closes one after
#: a stream, which httpx reports as ``RemoteProtocolError`` on the next request).
_UNAVAILABLE = (
    httpx.ConnectError,
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)


@contextlib.contextmanager
def _httpx_errors(base_url: str) -> Iterator[None]:
    try:
        yield
    except _UNAVAILABLE as error:
        raise EngineUnavailable(f"{base_url}: {error!r}") from error
    except httpx.TimeoutException as error:
        raise EngineTimeout(f"{base_url} sent nothing in time: {error!r}") from error
    except httpx.HTTPError as error:
        raise EngineError(f"{base_url}: {error!r}") from error


class _HttpxResponse:
    def __init__(self, response: httpx.Response, base_url: str) -> None:
        self._response = response
        self._base_url = base_url
        self.status = response.status_code

    async def read(self) -> bytes:
        with _httpx_errors(self._base_url):
            return await self._response.aread()

    async def lines(self) -> AsyncIterator[str]:
        with _httpx_errors(self._base_url):
            async for line in self._response.aiter_lines():
                yield line

    def hang_up(self) -> None:
        # httpx's own close does not shut the socket while an enclosing anyio cancel scope
        # (Starlette's, when a client disconnects) is being cancelled.
        stream = self._response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpxTransport:
    """httpx's client over httpcore's pool, which polls an idle connection before reusing
    it, or over any httpx transport (the unit tests' ``MockTransport``)."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str],
        timeout: float,
        connect_timeout: float,
        max_connections: int,
        keepalive: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._base_url = base_url
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=keepalive,
            ),
            transport=transport,
        )

    async def post(self, path: str, body: dict[str, Any], *, close: bool) -> EngineResponse:
        headers = {"Connection": "close"} if close else None
        request = self._client.build_request("POST", path, json=body, headers=headers)
        with _httpx_errors(self._base_url):
            response = await self._client.send(request, stream=True)
        return _HttpxResponse(response, self._base_url)

    async def get(self, path: str) -> tuple[int, bytes]:
        with _httpx_errors(self._base_url):
            response = await self._client.get(path)
        return response.status_code, response.content

    async def aclose(self) -> None:
        await self._client.aclose()
