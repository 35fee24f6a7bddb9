"""Which model and which strategy a request asks for.

Three ways, most explicit first: ``"ponder": {"strategy": ...}`` in the body
(the openai SDK's ``extra_body``); a model named ``<strategy>:<model>``; and
``reasoning_effort``, which picks a preset. Otherwise the server's default.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ponder.server.errors import InvalidRequest
from ponder.server.protocol import PonderOptions
from ponder.server.settings import Preset
from ponder.strategies.registry import Registry

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Selection:
    model: str
    strategy: str
    params: Mapping[str, Any] = field(default_factory=dict)


def select(
    *,
    model: str,
    options: PonderOptions,
    reasoning_effort: str | None,
    registry: Registry,
    default_strategy: str,
    presets: Mapping[str, Preset],
) -> Selection:
    ponder = options.strategy_params
    named = options.strategy
    prefix, _, plain_model = model.partition(":")
    if plain_model and prefix in registry:
        if named is not None and named != prefix:
            raise InvalidRequest(
                f"the model names strategy {prefix!r} but ponder.strategy is {named!r}",
                param="ponder.strategy",
                code="invalid_parameter",
            )
        return Selection(plain_model, prefix, ponder)
    if named is not None:
        return Selection(model, named, ponder)
    if reasoning_effort is not None:
        preset = presets.get(reasoning_effort)
        if preset is None:
            raise InvalidRequest(
                f"reasoning_effort must be one of {', '.join(sorted(presets))}",
                param="reasoning_effort",
                code="invalid_parameter",
            )
        if preset.strategy in registry:
            return Selection(model, preset.strategy, {**preset.params, **ponder})
        logger.warning(
            "reasoning_effort=%s names strategy %r, which is not installed; using %r",
            reasoning_effort,
            preset.strategy,
            default_strategy,
        )
    return Selection(model, default_strategy, ponder)
