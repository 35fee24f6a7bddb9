"""Typed errors: one class per status a Ponder server answers with."""

from __future__ import annotations

from typing import Any


class PonderError(Exception):
    """Anything that went wrong talking to a Ponder server."""


class APIConnectionError(PonderError):
    """The server could not be reached (refused, reset, DNS)."""


class APITimeoutError(PonderError):
    """The server did not answer in time."""


class APIStatusError(PonderError):
    """The server answered with an error status, in OpenAI's envelope."""

    status_code: int = 0

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.type = type
        self.param = param
        self.code = code
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status_code}, {self.message!r}, param={self.param!r})"


class BadRequestError(APIStatusError):
    """400: a parameter is wrong; the message names it."""


class NotFoundError(APIStatusError):
    """404: the model does not exist."""


class RequestTooLargeError(APIStatusError):
    """413: the request body is over the server's limit."""


class RateLimitError(APIStatusError):
    """429: the server is full; ``retry_after`` says when to come back."""


class InternalServerError(APIStatusError):
    """500 or 502: the server or its engine failed."""


class ServiceUnavailableError(APIStatusError):
    """503: no engine is ready."""


class GatewayTimeoutError(APIStatusError):
    """504: an engine call took too long."""


class StreamError(APIStatusError):
    """An error the server sent inside a stream that had already started."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    404: NotFoundError,
    413: RequestTooLargeError,
    429: RateLimitError,
    500: InternalServerError,
    502: InternalServerError,
    503: ServiceUnavailableError,
    504: GatewayTimeoutError,
}


def status_error(status: int, body: Any, retry_after: float | None = None) -> APIStatusError:
    """The typed error for an error response's status and JSON body."""
    detail = body.get("error") if isinstance(body, dict) else None
    if not isinstance(detail, dict):
        detail = {"message": str(body)[:500] or f"HTTP {status}"}
    cls = _BY_STATUS.get(status, APIStatusError)
    return cls(
        str(detail.get("message") or f"HTTP {status}"),
        status_code=status,
        type=detail.get("type"),
        param=detail.get("param"),
        code=detail.get("code"),
        retry_after=retry_after,
    )
