"""The OpenAI fields that shape the answer (not the work behind it), read and checked.

``response_format``, ``tools`` with ``tool_choice`` and ``parallel_tool_calls``,
``logprobs`` with ``top_logprobs``, and ``stop`` become an
:class:`~ponder.strategies.engine.AnswerShape`, which strategies apply to the
call that produces the answer only. A malformed one is a 400 naming it; the
legacy ``functions`` / ``function_call`` are refused rather than dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ponder.server.errors import InvalidRequest
from ponder.strategies.engine import AnswerShape

#: The fields read here; they are not forwarded with every engine call.
ANSWER_FIELDS = frozenset(
    {
        "response_format",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "logprobs",
        "top_logprobs",
        "echo",
    }
)
#: Refused: the legacy function-calling fields.
LEGACY_FIELDS = ("functions", "function_call")
FORMAT_TYPES = ("text", "json_object", "json_schema")
MAX_TOP_LOGPROBS = 20


def answer_shape(fields: Mapping[str, Any], *, chat: bool, stop: tuple[str, ...]) -> AnswerShape:
    for legacy in LEGACY_FIELDS:
        if legacy in fields:
            raise _invalid(f"{legacy} is deprecated in OpenAI's API; send tools instead", legacy)
    response_format = fields.get("response_format")
    if response_format is not None:
        if not isinstance(response_format, dict) or response_format.get("type") not in FORMAT_TYPES:
            raise _invalid(
                "response_format must be an object whose type is one of " + ", ".join(FORMAT_TYPES),
                "response_format",
            )
        if response_format["type"] == "json_schema" and not isinstance(
            response_format.get("json_schema"), dict
        ):
            raise _invalid(
                "response_format json_schema needs a json_schema object", "response_format"
            )
    tools = fields.get("tools")
    if tools is not None:
        if not chat:
            raise _invalid("tools are a chat completions field", "tools")
        if not isinstance(tools, list) or not all(_is_tool(t) for t in tools):
            raise _invalid("tools must be a list of {type: function, function: {...}}", "tools")
    tool_choice = fields.get("tool_choice")
    if tool_choice is not None and not tools and tool_choice != "none":
        raise _invalid("tool_choice needs tools", "tool_choice")
    parallel = fields.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise _invalid("parallel_tool_calls must be true or false", "parallel_tool_calls")
    echo = fields.get("echo")
    if echo is not None and chat:
        raise _invalid("echo is a completions field (/v1/completions)", "echo")
    if echo is not None and not isinstance(echo, bool):
        raise _invalid("echo must be true or false", "echo")
    return AnswerShape(
        echo=bool(echo),
        response_format=response_format,
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        stop=stop,
        logprobs=_logprobs(fields, chat=chat),
    )


def _logprobs(fields: Mapping[str, Any], *, chat: bool) -> int | None:
    logprobs, top = fields.get("logprobs"), fields.get("top_logprobs")
    if not chat:  # the completions API: logprobs is the number of alternatives
        if logprobs is None:
            return None
        if isinstance(logprobs, bool) or not isinstance(logprobs, int) or not 0 <= logprobs <= 5:
            raise _invalid("logprobs must be an integer from 0 to 5", "logprobs")
        return logprobs
    if logprobs is not None and not isinstance(logprobs, bool):
        raise _invalid("logprobs must be true or false", "logprobs")
    if top is not None:
        if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= MAX_TOP_LOGPROBS:
            raise _invalid(
                f"top_logprobs must be an integer from 0 to {MAX_TOP_LOGPROBS}", "top_logprobs"
            )
        if not logprobs:
            raise _invalid("top_logprobs needs logprobs: true", "top_logprobs")
    return (top or 0) if logprobs else None


def _is_tool(tool: Any) -> bool:
    return (
        isinstance(tool, dict)
        and tool.get("type") == "function"
        and isinstance(tool.get("function"), dict)
    )


def _invalid(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="invalid_parameter")
