"""Every failure a client can see, and its OpenAI error envelope."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

from ponder.server.protocol import ErrorDetail, ErrorResponse
from ponder.strategies.base import StrategyInputError
from ponder.strategies.budget import BudgetExhausted
from ponder.strategies.engine import EngineError, EngineRejected, EngineTimeout
from ponder.strategies.limits import OverCap
from ponder.strategies.registry import InvalidParams, UnknownStrategy

logger = logging.getLogger(__name__)


class PonderError(Exception):
    """A failure a client sees; every envelope has a code (OpenAI clients switch on it)."""

    status = 500
    type = "server_error"
    code: str = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def envelope(self) -> ErrorResponse:
        return ErrorResponse(
            error=ErrorDetail(
                message=self.message, type=self.type, param=self.param, code=self.code
            )
        )


class InvalidRequest(PonderError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class ModelNotFound(PonderError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class NoEngineReady(PonderError):
    status = 503
    type = "server_error"
    code = "engine_unavailable"


class TooLarge(PonderError):
    status = 413
    type = "invalid_request_error"
    code = "body_too_large"


class UnsupportedMediaType(PonderError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class SlowBody(PonderError):
    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class TooManyRequests(PonderError):
    status = 429
    type = "rate_limit_error"
    code = "too_many_requests"


class EngineTimedOut(PonderError):
    status = 504
    type = "server_error"
    code = "engine_timeout"


class EngineFailed(PonderError):
    status = 502
    type = "server_error"
    code = "engine_error"


#: Engine addresses in a message: URLs, and host:port pairs.
_ADDRESS = re.compile(
    r"(?:\bengine\s+)?(?:https?://[^\s'\"]*[^\s'\":]|\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"
    r"|\b[\w.-]+:\d{2,5}\b)"
)


def public(message: str) -> str:
    """``message`` with no internal engine address in it (the log keeps the original)."""
    return _ADDRESS.sub("the engine", message)


def to_ponder_error(error: BaseException) -> PonderError:
    """The client-facing error for any exception raised while serving a request."""
    if isinstance(error, PonderError):
        return error
    if isinstance(error, EngineError):
        logger.warning("engine call failed: %s", error)
        return _engine_error(error)
    if isinstance(error, StrategyInputError):
        return InvalidRequest(str(error), param="ponder", code="invalid_parameter")
    if isinstance(error, OverCap):
        return InvalidRequest(str(error), param=error.param, code="over_cap")
    if isinstance(error, BudgetExhausted):
        return InvalidRequest(str(error), param="ponder", code="over_cap")
    if isinstance(error, UnknownStrategy):
        return InvalidRequest(str(error), param="ponder.strategy", code="unknown_strategy")
    if isinstance(error, InvalidParams):
        return InvalidRequest(str(error), param=error.param, code="invalid_parameter")
    logger.exception("unexpected error while serving a request", exc_info=error)
    return PonderError("internal error; see the server log")


def _engine_error(error: EngineError) -> PonderError:
    message = public(str(error))
    if isinstance(error, EngineTimeout):
        return EngineTimedOut(message)
    if isinstance(error, EngineRejected):
        return InvalidRequest(message, code="engine_rejected")
    if error.status == 503:
        return NoEngineReady(message)
    return EngineFailed(message)


async def send_error(
    send: Send, error: PonderError, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """An error response written straight to ASGI, for middleware that answers first."""
    body = error.envelope().model_dump_json().encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def error_response(error: PonderError) -> JSONResponse:
    return JSONResponse(status_code=error.status, content=error.envelope().model_dump())


def validation_error(errors: Sequence[Mapping[str, Any]]) -> InvalidRequest:
    """The 400 for a body the wire model refused: the first of pydantic's errors, its field
    as the param (FastAPI's locations start with "body", which is not a param)."""
    if not errors:
        return InvalidRequest("invalid request")
    first = errors[0]
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    if first.get("type") == "json_invalid":
        return InvalidRequest(
            f"the body is not valid JSON: {first.get('msg')}", code="invalid_json"
        )
    if first.get("type") == "unsendable":
        where = str(first["ctx"]["path"])
        return InvalidRequest(
            str(first.get("msg")), param=None if where == "body" else where, code="invalid_value"
        )
    param = ".".join(location) or None
    message = str(first.get("msg", "invalid value"))
    return InvalidRequest(
        f"{param}: {message}" if param else message, param=param, code="invalid_parameter"
    )


#: Codes of the errors Starlette raises itself (an unknown path, a wrong method).
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def install_error_handlers(app: FastAPI) -> None:
    async def on_ponder_error(_: Request, exc: Exception) -> JSONResponse:
        return error_response(to_ponder_error(exc))

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(validation_error(exc.errors()))

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        error = PonderError(str(exc.detail))
        error.status = exc.status_code
        error.type = "invalid_request_error" if exc.status_code < 500 else "server_error"
        error.code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        response = error_response(error)
        # A 405 says which methods the path takes (RFC 9110 requires the Allow header).
        response.headers.update(exc.headers or {})
        return response

    app.add_exception_handler(PonderError, on_ponder_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_ponder_error)
