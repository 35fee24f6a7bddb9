"""docs/sdk.md's examples run as written against a live ``ponder serve``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ponder.server.engines.managed import ManagedEngine

SDK_DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"


def test_sdk_doc_examples_run(
    embedded_gateway: ManagedEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", SDK_DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 7
    namespace: dict[str, Any] = {}
    for block in blocks:
        code = block.replace("http://127.0.0.1:8000/v1", embedded_gateway.url + "/v1")
        exec(compile(code, str(SDK_DOC), "exec"), namespace)
    printed = capsys.readouterr().out
    assert "model_not_found" in printed
    assert "400 ponder.strategy" in printed
    assert "self_consistency" in printed
