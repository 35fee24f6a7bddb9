"""Settings every test shares."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def own_frontier_file(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Each test's gateways (in process or started as servers) keep evaluation results in a
    file of the test's own, never in the user's cache."""
    path = tmp_path_factory.mktemp("frontier") / "frontier.json"
    monkeypatch.setenv("PONDER_FRONTIER_FILE", str(path))
    return path
