"""OpenAI's request fields that are not engine fields: accepted without effect, or refused.

Any field Ponder does not read is forwarded to every engine call, which is how
engine sampling fields (``top_k``, ``min_p`` ...) reach vLLM and llama.cpp. OpenAI's
own fields are another matter: an engine ignores the ones it does not know
(vLLM logs them at debug level, llama.cpp says nothing), so forwarding one that
changes what the client gets back would drop it silently. Each is named here:
accepted because it has no effect on the answer, or refused with a 400 that
says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ponder.server.errors import InvalidRequest

#: Who the caller is, and how OpenAI stores, bills or caches a request: accepted, never
#: forwarded, no effect on the answer. ``modalities`` is here as ``["text"]`` only.
WITHOUT_EFFECT = frozenset(
    {
        "metadata",
        "store",
        "service_tier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "safety_identifier",
        "modalities",
    }
)

#: OpenAI features no engine behind this server provides, and why each is refused.
UNSUPPORTED: dict[str, str] = {
    "audio": "audio output is not supported: the models this server serves write text",
    "web_search_options": "web search is not supported: the models answer from the request alone",
    "prediction": "predicted outputs are not supported: the engines behind this server "
    "do not read them",
    "verbosity": "verbosity is not supported; bound the answer's length with max_tokens",
    "suffix": "insert mode (suffix) is not supported",
}


def refuse_unsupported(fields: Mapping[str, Any]) -> None:
    """A 400 for the first field of ``fields`` (a request's fields beyond its declared
    ones) that asks for what this server cannot give."""
    for name, why in UNSUPPORTED.items():
        if name in fields:
            raise InvalidRequest(why, param=name, code="unsupported_parameter")
    modalities = fields.get("modalities")
    if modalities is not None and modalities != ["text"]:
        raise InvalidRequest(
            'modalities: only ["text"] is supported (the models this server serves write text)',
            param="modalities",
            code="unsupported_parameter",
        )
