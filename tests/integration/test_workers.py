"""``ponder serve --workers 2``: metrics add up over the worker processes, and nothing
outlives the gateway."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from ponder.server.engines.managed import ManagedEngine
from tests.integration.conftest import MODEL, gateway_process, metric_sum

REQUESTS = 24


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead but for its parent's wait.
    status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return status != "Z"


def test_metrics_add_up_over_workers(llamacpp: ManagedEngine, logs: Path, tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"")  # a previous run's file: removed at start
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    args = ("--engine-url", llamacpp.url + "/v1", "--workers", "2")
    with gateway_process(logs, *args, env=env) as gateway:
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": "Say hi."}],
            "max_tokens": 2,
            "temperature": 0.7,
        }
        for _ in range(REQUESTS):
            # A new connection each time, so that both workers take some.
            with httpx.Client(timeout=60) as client:
                response = client.post(gateway.url + "/v1/chat/completions", json=body)
                assert response.status_code == 200
        pids = {int(path.stem.rsplit("_", 1)[1]) for path in metrics_dir.glob("counter_*.db")}
        assert len(pids) == 2, f"expected both workers to serve; counter files of {pids}"
        for _ in range(6):  # whichever worker answers the scrape sees every request
            assert metric_sum(gateway.url, "ponder_requests_total") == REQUESTS
        assert gateway.process is not None
        os.kill(gateway.process.pid, signal.SIGTERM)
        gateway.process.wait(30)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in pids if alive(pid)], "a worker outlived the gateway"
