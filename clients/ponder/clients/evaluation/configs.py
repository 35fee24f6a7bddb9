"""Strategy configurations to evaluate: from flags, a YAML file, and budget sweeps.

``--strategy cot`` adds a strategy with its defaults; ``--set pdr.k=2`` fixes a
parameter of a strategy's configurations; ``--sweep sr.rounds=1,2,4`` makes one
configuration per value (several sweeps of one strategy multiply). Values are
JSON when they parse as JSON (``[8,4,1]``, ``2``, ``true``), else strings; a
comma inside brackets does not split values, so
``--sweep pdr.schedule="[4,1]","[8,4,1]"`` is two schedules.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Configuration:
    """One strategy with fixed parameters: one row of the report, one point of the plot."""

    name: str
    strategy: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def budget(self) -> Mapping[str, Any] | None:
        """A budget configuration's budget (``strategy: budget``): the server picks what runs."""
        if self.strategy != BUDGET:
            return None
        return dict(self.params.get("budget") or {})

    @property
    def key(self) -> str:
        """Identifies what is run (not the name): a changed configuration is run afresh."""
        canonical = json.dumps([self.strategy, dict(self.params)], sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


#: The strategy name of a configuration that names a budget instead of a strategy.
BUDGET = "budget"


def describe(strategy: str, params: Mapping[str, Any]) -> str:
    """``pdr schedule=[4,2,1] k=2``: a configuration's default name."""
    parts = [strategy]
    for key in sorted(params):
        value = params[key]
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        parts.append(f"{key}={text}")
    return " ".join(parts)


def split_values(text: str) -> list[str]:
    """``[4,1],[8,4,1]`` -> ``["[4,1]", "[8,4,1]"]``: commas split only outside brackets."""
    values, depth, current = [], 0, ""
    for char in text:
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        if char == "," and depth == 0:
            values.append(current)
            current = ""
        else:
            current += char
    values.append(current)
    stripped = [_unquoted(value.strip()) for value in values]
    if any(not value for value in stripped):
        raise ConfigError(f"an empty value in {text!r}")
    return stripped


def _unquoted(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _assignment(text: str, flag: str) -> tuple[str, str, str]:
    target, equals, values = text.partition("=")
    strategy, dot, param = target.strip().partition(".")
    if not equals or not dot or not strategy or not param:
        raise ConfigError(f"{flag} {text!r}: write STRATEGY.PARAMETER=VALUE")
    return strategy, param, values


def build(
    *,
    strategies: Sequence[str] = (),
    sets: Sequence[str] = (),
    sweeps: Sequence[str] = (),
    file: Path | None = None,
) -> list[Configuration]:
    """The configurations the flags and the file ask for, in the order they were named."""
    configurations: list[Configuration] = []
    order: list[str] = list(dict.fromkeys(strategies))
    fixed: dict[str, dict[str, Any]] = {}
    swept: dict[str, dict[str, list[Any]]] = {}
    if file is not None:
        named, file_sweeps = _from_file(file)
        configurations.extend(named)
        for target, listed in file_sweeps.items():
            strategy, param, _ = _assignment(f"{target}=", "sweeps")
            swept.setdefault(strategy, {})[param] = listed
            order.append(strategy)
    for text in sets:
        strategy, param, value = _assignment(text, "--set")
        fixed.setdefault(strategy, {})[param] = parse_value(value.strip())
        order.append(strategy)
    for text in sweeps:
        strategy, param, values = _assignment(text, "--sweep")
        swept.setdefault(strategy, {})[param] = [parse_value(v) for v in split_values(values)]
        order.append(strategy)
    for strategy in dict.fromkeys(order):
        base = fixed.get(strategy, {})
        grid = swept.get(strategy, {})
        names = list(grid)
        for combination in itertools.product(*(grid[name] for name in names)):
            params = {**base, **dict(zip(names, combination, strict=True))}
            configurations.append(Configuration(describe(strategy, params), strategy, params))
    if not configurations:
        raise ConfigError("no configuration: give --strategy, --sweep or --configs")
    _check_unique(configurations)
    return configurations


def _from_file(path: Path) -> tuple[list[Configuration], dict[str, list[Any]]]:
    if not path.is_file():
        raise ConfigError(f"configuration file {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with 'configurations' and/or 'sweeps'")
    unknown = set(data) - {"configurations", "sweeps"}
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)}")
    configurations = []
    for entry in data.get("configurations") or []:
        if isinstance(entry, str):
            entry = {"strategy": entry}
        if isinstance(entry, dict) and "budget" in entry and "strategy" not in entry:
            # Served by whatever the budget buys (ponder.budget, no strategy named).
            budget = entry["budget"]
            if not isinstance(budget, dict) or not budget:
                raise ConfigError(f"{path}: a budget is a mapping such as {{latency_s: 10}}")
            name = entry.get("name") or describe(BUDGET, budget)
            configurations.append(Configuration(str(name), BUDGET, {"budget": budget}))
            continue
        if not isinstance(entry, dict) or "strategy" not in entry:
            raise ConfigError(f"{path}: each configuration needs a strategy: {entry!r}")
        params = entry.get("params") or {}
        name = entry.get("name") or describe(entry["strategy"], params)
        configurations.append(Configuration(str(name), str(entry["strategy"]), params))
    sweeps = data.get("sweeps") or {}
    if not isinstance(sweeps, dict) or not all(isinstance(v, list) for v in sweeps.values()):
        raise ConfigError(f"{path}: sweeps maps STRATEGY.PARAMETER to a list of values")
    return configurations, sweeps


def _check_unique(configurations: Iterable[Configuration]) -> None:
    seen: set[str] = set()
    for configuration in configurations:
        if configuration.name in seen:
            raise ConfigError(f"two configurations are named {configuration.name!r}")
        seen.add(configuration.name)
