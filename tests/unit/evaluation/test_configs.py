"""Configurations from flags, a YAML file and sweeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from ponder.clients.evaluation.configs import ConfigError, build, split_values


def test_sweeps_in_the_issues_form() -> None:
    # What the shell passes for: --sweep pdr.schedule="[4,1]","[8,4,1]" --sweep sr.rounds=1,2,4
    built = build(
        sweeps=["pdr.schedule=[4,1],[8,4,1]", "sr.rounds=1,2,4", "self_consistency.n=1,4,8"]
    )
    assert [c.name for c in built] == [
        "pdr schedule=[4,1]",
        "pdr schedule=[8,4,1]",
        "sr rounds=1",
        "sr rounds=2",
        "sr rounds=4",
        "self_consistency n=1",
        "self_consistency n=4",
        "self_consistency n=8",
    ]
    assert built[1].params == {"schedule": [8, 4, 1]}
    assert built[2].params == {"rounds": 1}


def test_quoted_values_and_brackets() -> None:
    assert split_values('"[4,1]","[8,4,1]"') == ["[4,1]", "[8,4,1]"]
    assert split_values("a, b") == ["a", "b"]
    with pytest.raises(ConfigError):
        split_values("1,,2")


def test_strategies_sets_and_two_sweeps_of_one_strategy_multiply() -> None:
    built = build(
        strategies=["direct", "cot"],
        sets=["pdr.distill=shared_top_k", "plan_and_solve.variant=ps_plus"],
        sweeps=["pdr.schedule=[4,1],[2,1]", "pdr.k=1,2"],
    )
    names = [c.name for c in built]
    assert names[:2] == ["direct", "cot"]
    assert "plan_and_solve variant=ps_plus" in names
    pdr = [c for c in built if c.strategy == "pdr"]
    assert len(pdr) == 4
    assert all(c.params["distill"] == "shared_top_k" for c in pdr)
    assert len({c.key for c in built}) == len(built)


def test_the_key_follows_what_is_run_not_the_name() -> None:
    one = build(strategies=["sr"], sets=["sr.rounds=2"])[0]
    again = build(sets=["sr.rounds=2"])[0]
    other = build(sets=["sr.rounds=3"])[0]
    assert one.key == again.key != other.key


def test_a_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "configs.yaml"
    path.write_text(
        "configurations:\n"
        "  - direct\n"
        "  - {name: PS+, strategy: plan_and_solve, params: {variant: ps_plus}}\n"
        "sweeps:\n"
        "  pdr.schedule: [[4, 1], [8, 4, 1]]\n"
    )
    built = build(file=path, strategies=["cot"])
    assert [c.name for c in built] == [
        "direct",
        "PS+",
        "cot",
        "pdr schedule=[4,1]",
        "pdr schedule=[8,4,1]",
    ]


def test_bad_configurations_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no configuration"):
        build()
    with pytest.raises(ConfigError, match=r"STRATEGY\.PARAMETER=VALUE"):
        build(sweeps=["rounds=1,2"])
    with pytest.raises(ConfigError, match="two configurations"):
        build(strategies=["cot"], file=_file(tmp_path, "configurations: [cot]\n"))
    with pytest.raises(ConfigError, match="unknown keys"):
        build(file=_file(tmp_path, "strategies: [cot]\n"))
    with pytest.raises(ConfigError, match="does not exist"):
        build(file=tmp_path / "none.yaml")


def _file(folder: Path, text: str) -> Path:
    path = folder / "c.yaml"
    path.write_text(text)
    return path


def test_a_budget_configuration_names_no_strategy(tmp_path: Path) -> None:
    built = build(
        file=_file(
            tmp_path,
            "configurations:\n"
            "  - {name: 'budget 20s', budget: {latency_s: 20}}\n"
            "  - {budget: {all_tokens: 4000}}\n",
        )
    )
    assert [(c.name, c.strategy, c.budget) for c in built] == [
        ("budget 20s", "budget", {"latency_s": 20}),
        ("budget all_tokens=4000", "budget", {"all_tokens": 4000}),
    ]
    with pytest.raises(ConfigError, match="a budget is a mapping"):
        build(file=_file(tmp_path, "configurations: [{budget: 5}]\n"))
