"""Generated requests for every operation of the OpenAPI schema (schemathesis): no 5xx, and
responses that match the schema the server publishes. Bounded in cases; the scripted engine
answers, so the gateway's own handling is what is fuzzed."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from ponder.server.app import create_app
from ponder.server.engines.provider import StaticEngines
from ponder.server.settings import Settings
from ponder.strategies.testing import ScriptedEngine

app = create_app(
    Settings(
        engine_urls=["http://unused"],
        # Made at import, before the autouse fixture points gateways at a file of their own:
        # without this the fuzzed evaluation results went into the user's cache.
        frontier_file=Path(tempfile.mkdtemp(prefix="ponder-fuzz-")) / "frontier.json",
        allowed_hosts=["testserver"],  # the ASGI test client's Host
        max_n=4,
        max_tokens_per_call=64,
        default_max_tokens=16,
    ),
    engines=StaticEngines({"tiny": ScriptedEngine(model="tiny")}),
)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_5xx_or_an_undocumented_response(
    case: schemathesis.Case[Any],
) -> None:
    response = case.call()
    # Every other check holds; a schema-valid request may still be refused with a 400 that
    # the schema cannot express (an unknown preset, a cap, a model this server lacks).
    case.validate_response(response, excluded_checks=[positive_data_acceptance])
