"""A completion request's body, read and validated by the route itself.

The completion routes are the hot path: FastAPI's own body handling (its
dependency solver, content-type sniffing and error wrapping) cost about a
third of the gateway's in-process CPU per request, so these two routes read
the JSON and validate the wire model directly. Every failure is the same 400
in OpenAI's envelope that any other invalid field gets (see
:func:`ponder.server.errors.validation_error`).
"""

from __future__ import annotations

import json
import re
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from ponder.server.errors import InvalidRequest, UnsupportedMediaType, validation_error
from ponder.server.protocol import SENDABLE

Body = TypeVar("Body", bound=BaseModel)

#: A JSON escape of a UTF-16 surrogate. UTF-8 decoding refuses surrogates, so in a UTF-8
#: body an escape is the only way one gets in (an escaped backslash before "ud8.." is a
#: false alarm, which only costs the full check).
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def is_json(content_type: str | None) -> bool:
    """Whether a Content-Type names JSON (``application/json``, ``application/*+json``); a
    missing one is taken as JSON, as every OpenAI client sends JSON."""
    if not content_type:
        return True
    media_type = content_type.partition(";")[0].strip().lower()
    kind, _, subtype = media_type.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


def parse_body(model: type[Body], body: bytes, content_type: str | None) -> Body:
    """``body`` as ``model``, or the 4xx that says what is wrong with it."""
    if not is_json(content_type):
        raise UnsupportedMediaType(
            f"the body must be JSON (Content-Type: application/json), not {content_type!r}"
        )
    if not body.strip():
        raise InvalidRequest(
            "the body is empty: send the request as a JSON object", code="invalid_json"
        )
    constants: list[str] = []

    def constant(name: str) -> float:
        constants.append(name)  # NaN, Infinity or -Infinity: the model says where
        return float(name)

    try:
        data = json.loads(body, parse_constant=constant)
    except json.JSONDecodeError as error:
        raise InvalidRequest(
            f"the body is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})",
            code="invalid_json",
        ) from None
    except UnicodeDecodeError:
        raise InvalidRequest(
            "the body is not valid JSON: it is not UTF-8", code="invalid_json"
        ) from None
    except RecursionError:
        raise InvalidRequest(
            "the body is not valid JSON: it is nested too deeply", code="invalid_json"
        ) from None
    except ValueError:  # an integer of more digits than Python converts (4,300)
        raise InvalidRequest(
            "the body is not valid JSON: a number in it is too long", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequest(
            f"the body must be a JSON object, not {_json_type(data)}", code="invalid_json"
        )
    # What the model would walk the whole body to find, the reading already showed absent.
    sendable = (
        not constants
        and json.detect_encoding(body) == "utf-8"
        and SURROGATE_ESCAPE.search(body) is None
    )
    try:
        return model.model_validate(data, context={SENDABLE: True} if sendable else None)
    except ValidationError as error:
        raise validation_error(error.errors()) from None
    except RecursionError:
        raise InvalidRequest("the body is nested too deeply", code="invalid_json") from None


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"
