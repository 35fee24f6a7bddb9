"""``ponder eval`` end to end: a real gateway, the real engine, a small dataset."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from ponder.clients.evaluation.datasets import load
from ponder.server.engines.managed import ManagedEngine
from tests.integration.conftest import MODEL, metric_sum

SAMPLES = Path(__file__).parents[1] / "data" / "datasets"


def ponder_eval(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ponder.server", "eval", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=900,
        check=False,
    )


def requests_served(gateway: ManagedEngine) -> float:
    return metric_sum(gateway.url, "ponder_requests_total")


def test_eval_runs_reports_publishes_and_resumes(
    llamacpp_gateway: ManagedEngine, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = (
        str(SAMPLES / "multiarith.jsonl"),
        "--server", llamacpp_gateway.url + "/v1",
        "--strategy", "direct",
        "--sweep", "sr.rounds=1",
        "--max-tokens", "32",
        "--seed", "1",
        "--concurrency", "2",
        "--baseline", "direct",
        "--out", str(out),
    )  # fmt: skip
    result = ponder_eval(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    golds = {p.id: p.gold for p in load(SAMPLES / "multiarith.jsonl").problems}
    assert len(records) == 6  # 3 problems x 2 configurations
    assert {r["config"] for r in records} == {"direct", "sr rounds=1"}
    for r in records:
        assert not r.get("error"), r
        assert r["latency_s"] > 0
        assert r["all_tokens"] >= r["sequential_tokens"] > 0
        assert isinstance(r["correct"], bool)
        assert r["gold"] == golds[r["item"]]
    assert {r["calls"] for r in records if r["config"] == "sr rounds=1"} == {2}
    with (out / "summary.csv").open() as summary:
        rows = list(csv.DictReader(summary))
    assert [row["config"] for row in rows] == ["direct", "sr rounds=1"]
    assert all(row["items"] == "3" for row in rows)
    assert (out / "tradeoffs.png").read_bytes()[:4] == b"\x89PNG"
    assert "| direct | 3 |" in (out / "report.md").read_text()
    assert "accuracy (95% CI)" in result.stderr  # the terminal table
    report = (out / "report.md").read_text()
    assert "vs direct: difference (95% CI) | McNemar p |" in report  # --baseline direct
    assert (
        metric_sum(
            llamacpp_gateway.url,
            "ponder_eval_items",
            config="sr rounds=1",
            dataset="multiarith",
            model=MODEL,
            strategy="sr",
        )
        == 3
    )

    served = requests_served(llamacpp_gateway)
    again = ponder_eval(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert requests_served(llamacpp_gateway) == served  # finished items are not asked again
    assert len((out / "items.jsonl").read_text().splitlines()) == 6

    # Other settings on the same folder are refused before anything is asked.
    reseeded = list(args)
    reseeded[reseeded.index("--seed") + 1] = "2"
    other = ponder_eval(*reseeded, cwd=tmp_path)
    assert other.returncode == 2
    assert "were asked with seed 1, not 2: give the same --seed or another --out" in other.stderr
    assert requests_served(llamacpp_gateway) == served

    # The reports again from the items alone: no server named, none started.
    for name in ("report.md", "summary.csv", "tradeoffs.png"):
        (out / name).unlink()
    no_server = [a for a in args if a not in ("--server", llamacpp_gateway.url + "/v1")]
    again = ponder_eval(*no_server, "--report-only", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "starting ponder serve" not in again.stderr
    assert "| direct | 3 |" in (out / "report.md").read_text()
    assert (out / "tradeoffs.png").read_bytes()[:4] == b"\x89PNG"
    assert f"model {MODEL}; seed 1; max_tokens 32" in again.stderr
    assert requests_served(llamacpp_gateway) == served


def test_eval_starts_its_own_server_when_given_none(tmp_path: Path) -> None:
    result = ponder_eval(
        "multiarith",
        "--data-dir", str(SAMPLES),
        "--strategy", "direct",
        "--limit", "1",
        "--max-tokens", "8",
        "--no-publish",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "starting ponder serve" in result.stderr
    items = (tmp_path / "runs" / "multiarith" / "items.jsonl").read_text().splitlines()
    assert len(items) == 1


def test_eval_refuses_bad_input_clearly(tmp_path: Path) -> None:
    result = ponder_eval("nonsense", "--strategy", "direct", cwd=tmp_path)
    assert result.returncode == 2
    assert "neither a file nor a built-in dataset" in result.stderr
    result = ponder_eval(str(SAMPLES / "multiarith.jsonl"), "--sweep", "rounds=1", cwd=tmp_path)
    assert result.returncode == 2
    assert "STRATEGY.PARAMETER=VALUE" in result.stderr
    result = ponder_eval(
        str(SAMPLES / "multiarith.jsonl"), "--strategy", "direct", "--baseline", "cot",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "baseline 'cot' is not a configuration (direct)" in result.stderr
    result = ponder_eval(
        str(SAMPLES / "multiarith.jsonl"), "--strategy", "direct", "--report-only",
        "--out", str(tmp_path / "empty"), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "holds no item of these configurations and problems" in result.stderr
