"""Several evaluation folders read as one: items kept apart by dataset, configurations
matched by name and parameters, paired differences over the pool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ponder.clients.evaluation.configs import Configuration
from ponder.clients.evaluation.pooled import compare, pairs, pool
from ponder.clients.evaluation.report import Paired, pairs_markdown
from ponder.clients.evaluation.runner import ITEMS_FILE, ItemsError
from ponder.server.cli import app
from tests.unit.evaluation.test_report import record

COT = Configuration("cot", "cot")
VOTE = Configuration("vote", "self_consistency", {"n": 4})


def folder(path: Path, right: list[tuple[Configuration, set[int]]], problems: int = 4) -> Path:
    """An evaluation folder where each configuration answers ``right`` correctly."""
    path.mkdir()
    lines = [
        {
            **record(c, item, item in chosen),
            "strategy": c.strategy,
            "params": dict(c.params),
        }
        for c, chosen in right
        for item in range(problems)
    ]
    (path / ITEMS_FILE).write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def test_items_of_two_datasets_are_pooled_and_paired_apart(tmp_path: Path) -> None:
    # Item 0 is right for cot in one dataset and wrong in the other: kept apart, it is
    # one problem gained and one lost, where merged it would be one problem.
    a = folder(tmp_path / "a", [(COT, {0}), (VOTE, {1, 2})])
    b = folder(tmp_path / "b", [(COT, set()), (VOTE, {0, 1, 3})])
    pooled = pool([a, b])
    assert [c.name for c in pooled.configurations] == ["cot", "vote"]
    assert pooled.problems == {str(a): 4, str(b): 4}
    summaries, against = compare(pooled, "cot")
    assert [(s.config, s.items, s.correct) for s in summaries] == [("cot", 8, 1), ("vote", 8, 5)]
    vote = against[1]
    assert vote is not None
    assert (vote.items, vote.gained, vote.lost) == (8, 5, 1)
    assert against[0] is not None
    assert against[0].config == against[0].baseline


def test_a_configuration_run_with_other_parameters_is_not_the_same(tmp_path: Path) -> None:
    other_vote = Configuration("vote", "self_consistency", {"n": 8})
    a = folder(tmp_path / "a", [(COT, {0}), (VOTE, {1})])
    b = folder(tmp_path / "b", [(COT, {0}), (other_vote, {1})])
    assert [c.name for c in pool([a, b]).configurations] == ["cot"]
    with pytest.raises(ItemsError, match="not run with the same parameters in every folder: vote"):
        pool([a, b], ["cot", "vote"])
    with pytest.raises(ItemsError, match="baseline 'vote' is not a configuration"):
        compare(pool([a, b]), "vote")


def test_the_first_problems_of_each_folder(tmp_path: Path) -> None:
    a = folder(tmp_path / "a", [(COT, {0, 3})], problems=4)
    summaries, _ = compare(pool([a], limit=2), None)
    assert [(s.items, s.correct) for s in summaries] == [(2, 1)]
    with pytest.raises(ItemsError, match="holds no item"):
        pool([tmp_path / "missing"])


def test_ponder_compare_prints_the_pooled_table(tmp_path: Path) -> None:
    a = folder(tmp_path / "a", [(COT, {0}), (VOTE, {1, 2})])
    b = folder(tmp_path / "b", [(COT, set()), (VOTE, {0, 1, 3})])
    result = CliRunner().invoke(app, ["compare", str(a), str(b)])
    assert result.exit_code == 0, result.output
    assert "| vote | 8 | 62.5%" in result.output
    assert "5 gained, 1 lost |" in result.output
    refused = CliRunner().invoke(app, ["compare", str(a), "--baseline", "direct"])
    assert refused.exit_code == 2
    assert "baseline 'direct' is not a configuration of every folder (cot, vote)" in (
        refused.output
    )


DIRECT = Configuration("direct", "direct")


def test_every_pair_read_against_several_configurations_once(tmp_path: Path) -> None:
    a = folder(
        tmp_path / "a",
        [(COT, {0}), (VOTE, {0, 1, 2, 3, 4, 5, 6, 7}), (DIRECT, {1, 2})],
        problems=8,
    )
    family = pairs(pool([a]), ["cot", "direct", "cot"])
    # vote-cot, direct-cot, then vote-direct: direct-cot is not read again from direct's side.
    assert [(p.config, p.baseline) for p in family] == [
        ("vote", "cot"),
        ("direct", "cot"),
        ("vote", "direct"),
    ]
    assert [(p.gained, p.lost) for p in family] == [(7, 0), (2, 1), (6, 0)]
    with pytest.raises(ItemsError, match="not a configuration of every folder: judge"):
        pairs(pool([a]), ["cot", "judge"])


def test_the_pairs_table_adjusts_over_every_pair() -> None:
    family = [
        Paired("vote", "cot", 20, 12, 0),  # p = 0.00049
        Paired("direct", "cot", 20, 6, 0),  # p = 0.031: under 0.05 alone, not among three
        Paired("vote", "direct", 20, 3, 3),  # p = 1
    ]
    lines = pairs_markdown(family).splitlines()
    assert "Holm p (3 pairs)" in lines[0]
    assert lines[2].endswith("| 0.000488 | 0.00146 | yes |")
    assert lines[3].endswith("| 0.0312 | 0.0625 | no |")
    assert lines[4].endswith("| 1 | 1 | no |")
    assert family[1].p_value < 0.05


def test_ponder_compare_against_several_prints_every_pair(tmp_path: Path) -> None:
    a = folder(tmp_path / "a", [(COT, {0}), (VOTE, {1, 2}), (DIRECT, {1})])
    result = CliRunner().invoke(app, ["compare", str(a), "--against", "direct"])
    assert result.exit_code == 0, result.output
    assert "Every pair read against cot, direct:" in result.output
    assert "| vote | direct | 4 |" in result.output
    assert "| direct | cot | 4 |" in result.output
    refused = CliRunner().invoke(app, ["compare", str(a), "--against", "judge"])
    assert refused.exit_code == 2
    assert "not a configuration of every folder: judge" in refused.output


def test_ponder_compare_without_cot_compares_nothing_unless_asked(tmp_path: Path) -> None:
    a = folder(tmp_path / "a", [(VOTE, {1, 2}), (DIRECT, {1})])
    result = CliRunner().invoke(app, ["compare", str(a)])
    assert result.exit_code == 0, result.output
    assert "| vote | 4 | 50.0%" in result.output
    assert "McNemar" not in result.output
    asked = CliRunner().invoke(app, ["compare", str(a), "--baseline", "direct"])
    assert asked.exit_code == 0, asked.output
    assert "vs direct: difference" in asked.output
