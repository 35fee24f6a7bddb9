"""The code in the docs runs as written."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[2] / "docs"


def python_blocks(name: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / name).read_text(), flags=re.DOTALL)


async def test_the_runner_example_runs_against_the_scripted_engine() -> None:
    from ponder.strategies.testing import ScriptedEngine

    code = python_blocks("strategies.md")[1]
    namespace: dict[str, Any] = {"engine": ScriptedEngine(script=lambda p, i: "The answer is 4.")}
    lines = code.rstrip().splitlines()
    lines[-1] = "return " + lines[-1]  # the block ends on the values it shows
    exec("async def _example():\n" + textwrap.indent("\n".join(lines), "    "), namespace)
    answers, sequential, total, details = await namespace["_example"]()
    assert [a.answer for a in answers] == ["4", "4", "4"]
    assert 0 < sequential < total
    assert details == []


async def test_the_third_party_strategy_example_runs() -> None:
    strategy_code, test_code = python_blocks("strategies.md")[2:4]
    namespace: dict[str, Any] = {}
    exec(strategy_code, namespace)
    body = textwrap.indent(test_code, "    ")
    exec(f"async def _example():\n{body}", namespace)
    await namespace["_example"]()
    shout = namespace["Shout"]
    assert shout.name == "shout"


def test_every_setting_is_documented() -> None:
    from ponder.server.settings import Settings

    text = (DOCS / "configuration.md").read_text()
    missing = [name for name in Settings.model_fields if f"`{name}`" not in text]
    assert not missing, f"docs/configuration.md lacks {missing}"
