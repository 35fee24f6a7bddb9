"""The README's Python examples run as written against a live gateway."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ponder.server.engines.managed import ManagedEngine

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_examples_run(llamacpp_gateway: ManagedEngine) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 2
    namespace: dict[str, Any] = {}
    for block in blocks:
        code = block.replace("http://127.0.0.1:8000/v1", llamacpp_gateway.url + "/v1")
        exec(compile(code, str(README), "exec"), namespace)
    assert namespace["seen"] == ["miss", "hit"]
    completion = namespace["completion"]
    assert completion.model_extra["ponder"]["strategy"] == "pdr"
    assert completion.usage.model_extra["ponder"]["drafts"] == 7
    budgeted = namespace["budgeted"]
    assert budgeted.model_extra["ponder"]["details"]["budget"]["config"]
    assert budgeted.usage.model_extra["ponder"]["all_tokens"] <= 1500
    reasoning = namespace["reasoned"].choices[0].message.model_extra["reasoning_content"]
    assert reasoning.startswith("round 1 of 2: 2 drafts")
