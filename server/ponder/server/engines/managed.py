"""Engine processes that Ponder starts, waits for, and stops.

Each engine runs in its own process group and is told by the kernel to die
with its parent (``PR_SET_PDEATHSIG``), so no engine outlives ``ponder
serve``: not on exit, Ctrl-C, SIGTERM, nor SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class EngineStartError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Have the kernel send ``sig`` to this process when its parent dies (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    os.setpgrp()
    die_with_parent()


class ManagedEngine:
    """An engine subprocess serving HTTP on ``host:port``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int,
        host: str = "127.0.0.1",
        env: Mapping[str, str] | None = None,
        log_file: Path | None = None,
        ready_path: str = "/health",
        ready_timeout: float = 300.0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.host = host
        self.port = port
        self.env = {**os.environ, **(env or {})}
        self.log_file = log_file
        self.ready_path = ready_path
        self.ready_timeout = ready_timeout
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        output = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        logger.info("starting %s engine on %s", self.name, self.url)
        try:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
        finally:
            if self.log_file:
                output.close()  # type: ignore[union-attr]

    def wait_ready(self) -> None:
        """Block until the engine answers ``ready_path`` with 200, or fail."""
        assert self.process is not None, "start() first"
        deadline = time.monotonic() + self.ready_timeout
        with httpx.Client(timeout=5.0) as client:
            while time.monotonic() < deadline:
                code = self.process.poll()
                if code is not None:
                    raise EngineStartError(
                        f"{self.name} engine exited with status {code} before it was ready"
                        + (f"; its log is {self.log_file}" if self.log_file else "")
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(self.url + self.ready_path).status_code == 200:
                        logger.info("%s engine ready on %s", self.name, self.url)
                        return
                time.sleep(0.5)
        self.stop()
        raise EngineStartError(f"{self.name} engine not ready after {self.ready_timeout:.0f}s")

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM the engine's process group, then SIGKILL whatever of it is left."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            logger.info("stopping %s engine (pid %d)", self.name, process.pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(grace)
        # The group is the engine's alone: what is left of it (vLLM leaves
        # multiprocessing's resource tracker behind) goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def __enter__(self) -> ManagedEngine:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def llamacpp_engine(
    gguf: Path,
    *,
    alias: str,
    port: int,
    host: str = "127.0.0.1",
    parallel: int = 8,
    ctx_per_slot: int = 2048,
    threads: int | None = None,
    log_file: Path | None = None,
    chat_template: Path | None = None,
) -> ManagedEngine:
    """llama.cpp's server (from the xllamacpp wheel) serving one GGUF file."""
    argv = [
        sys.executable,
        "-m",
        "ponder.server.engines.llamacpp_main",
        "--model",
        str(gguf),
        "--alias",
        alias,
        "--host",
        host,
        "--port",
        str(port),
        "--parallel",
        str(parallel),
        "--ctx-per-slot",
        str(ctx_per_slot),
        "--threads",
        str(threads or os.cpu_count() or 1),
    ]
    if chat_template is not None:
        argv += ["--chat-template-file", str(chat_template)]
    return ManagedEngine(
        "llama.cpp", argv, host=host, port=port, log_file=log_file, ready_timeout=120.0
    )


def vllm_engine(
    python: str,
    model: str,
    *,
    served_name: str,
    port: int,
    host: str = "127.0.0.1",
    cpu: bool,
    gpu: int | None = None,
    max_model_len: int | None = None,
    extra_args: Sequence[str] = (),
    log_file: Path | None = None,
) -> ManagedEngine:
    """vLLM's OpenAI server; on CPU in eager mode with the machine's cores."""
    argv = [
        python,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model,
        "--served-model-name",
        served_name,
        "--host",
        host,
        "--port",
        str(port),
    ]
    if max_model_len:
        argv += ["--max-model-len", str(max_model_len)]
    env: dict[str, str] = {}
    if cpu:
        cores = os.cpu_count() or 1
        argv += ["--enforce-eager"]
        env.update(
            OMP_NUM_THREADS=str(cores),
            VLLM_CPU_OMP_THREADS_BIND=f"0-{cores - 1}",
            # vLLM's CPU backend reserves a fraction of the NUMA node's memory;
            # a small fixed KV cache leaves room for the gateway and tests.
            VLLM_CPU_KVCACHE_SPACE=os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
        )
        if "--gpu-memory-utilization" not in extra_args:
            argv += ["--gpu-memory-utilization", "0.3"]
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    argv += list(extra_args)
    return ManagedEngine(
        "vLLM", argv, host=host, port=port, env=env, log_file=log_file, ready_timeout=600.0
    )
