"""The servers the peer benchmark compares: Ponder's gateway, LiteLLM's proxy and optillm,
each in front of one engine, and the virtualenvs the peers are installed into (never
Ponder's own environment: their pins would move Ponder's dependencies).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil

from ponder.server.engines.managed import ManagedEngine, free_port

#: What each peer's virtualenv gets, in order (optillm imports torch: its CPU build first,
#: or pip takes the CUDA one).
PEER_PACKAGES: dict[str, list[list[str]]] = {
    "litellm": [["litellm[proxy]"]],
    "optillm": [["torch==2.13.0"], ["optillm", "torch==2.13.0"]],
}
#: The distribution whose version names the peer in the report.
PEER_DISTRIBUTION = {"litellm": "litellm", "optillm": "optillm"}


def peer_venv(name: str, root: Path) -> Path:
    """The peer's virtualenv under ``root``, made and filled on first use."""
    venv = root / name
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        for packages in PEER_PACKAGES[name]:
            subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    return venv


def installed_version(python: Path | str, distribution: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({distribution!r}))"
    return subprocess.run(
        [str(python), "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()


def ponder_gateway(engine_url: str, logs: Path) -> ManagedEngine:
    port = free_port()
    argv = [sys.executable, "-m", "ponder.server", "serve", "--port", str(port)]
    argv += ["--engine-url", engine_url + "/v1", "--log-level", "warning", "--no-cache"]
    return ManagedEngine(
        "ponder", argv, port=port, ready_path="/ready", log_file=logs / f"ponder-{port}.log"
    )


def litellm_proxy(venv: Path, engine_url: str, model: str, logs: Path) -> ManagedEngine:
    """LiteLLM's proxy with one model routed to the engine as an OpenAI-compatible server."""
    port = free_port()
    config = logs / f"litellm-{port}.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {model}\n"
        "    litellm_params:\n"
        f"      model: openai/{model}\n"
        f"      api_base: {engine_url}/v1\n"
        "      api_key: none\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "  set_verbose: false\n"
    )
    argv = [str(venv / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--num_workers", "1"]
    return ManagedEngine(
        "litellm",
        argv,
        port=port,
        ready_path="/health/liveliness",
        log_file=logs / f"litellm-{port}.log",
        env={
            # The model cost map is fetched from GitHub unless told to use the bundled one.
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_LOG": "ERROR",
            # No keys, as Ponder and optillm run here: nobody's requests are authenticated.
            "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
        },
        ready_timeout=180.0,
    )


def optillm_proxy(venv: Path, engine_url: str, logs: Path) -> ManagedEngine:
    """optillm; its default approach (``auto``) reads one from the model's name, and passes
    the request through (``none``) when the name holds none."""
    port = free_port()
    argv = [str(venv / "bin" / "optillm"), "--base-url"]
    argv += [engine_url + "/v1", "--host", "127.0.0.1", "--port", str(port), "--log", "error"]
    return ManagedEngine(
        "optillm",
        argv,
        port=port,
        log_file=logs / f"optillm-{port}.log",
        env={"OPENAI_API_KEY": "none", "HOME": str(logs)},  # its conversation logs go here
        ready_timeout=300.0,
    )


@dataclass(frozen=True)
class ProcessTree:
    """A server's process and its workers, for CPU time and memory from /proc."""

    pid: int

    def processes(self) -> list[psutil.Process]:
        root = psutil.Process(self.pid)
        return [root, *root.children(recursive=True)]

    def cpu_seconds(self) -> float:
        total = 0.0
        for process in self.processes():
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def rss_mib(self) -> float:
        total = 0
        for process in self.processes():
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total / 2**20


def tree(server: ManagedEngine) -> ProcessTree:
    assert server.process is not None, "start the server first"
    return ProcessTree(server.process.pid)


def machine() -> str:
    cores = os.cpu_count()
    memory = psutil.virtual_memory().total / 2**30
    return f"{cores} cores, {memory:.0f} GiB, Python {sys.version.split()[0]}"
