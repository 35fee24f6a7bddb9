from typing import Any, ClassVar

import pytest

from ponder.strategies import registry as registry_module
from ponder.strategies.base import Strategy, StrategyContext, StrategyParams, StrategyResult
from ponder.strategies.direct import Direct
from ponder.strategies.registry import InvalidParams, Registry, UnknownStrategy


class EchoParams(StrategyParams):
    times: int = 1


class Echo(Strategy[EchoParams]):
    name: ClassVar[str] = "echo"
    Params: ClassVar[type[EchoParams]] = EchoParams

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        return StrategyResult(answers=[])


class Shadow(Echo):
    name: ClassVar[str] = "direct"


class FakeEntryPoint:
    def __init__(self, name: str, target: Any) -> None:
        self.name = name
        self._target = target

    def load(self) -> Any:
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


def test_builtins_are_registered() -> None:
    registry = Registry.default(load_entry_points=False)
    assert "direct" in registry
    assert registry.get("direct") is Direct


def test_unknown_strategy_names_the_known_ones() -> None:
    with pytest.raises(UnknownStrategy, match="direct"):
        Registry([Direct]).get("nope")


def test_params_are_validated_and_the_bad_field_named() -> None:
    registry = Registry([Echo])
    assert registry.build("echo", {"times": 3}).params == EchoParams(times=3)
    with pytest.raises(InvalidParams) as error:
        registry.build("echo", {"times": "many"})
    assert error.value.param == "ponder.times"
    with pytest.raises(InvalidParams) as unknown:
        registry.build("echo", {"tims": 3})
    assert unknown.value.param == "ponder.tims"


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ValueError, match="two strategies"):
        Registry([Direct, Direct])


def test_entry_point_plugins_load_and_broken_ones_are_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plugins = [
        FakeEntryPoint("echo", Echo),
        FakeEntryPoint("broken", ImportError("missing dependency")),
        FakeEntryPoint("not-a-strategy", object),
        FakeEntryPoint("direct", Shadow),  # may not shadow a built-in
        FakeEntryPoint("echo-again", Echo),  # a second plugin of one name is skipped
    ]
    monkeypatch.setattr(registry_module, "entry_points", lambda group: plugins)
    registry = Registry.default()
    assert "echo" in registry
    assert "echo-again" not in registry
    assert sum(1 for name in registry if name == "direct") == 1
    assert registry.get("direct") is Direct
