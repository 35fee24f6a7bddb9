from pathlib import Path

import pytest
from typer.testing import CliRunner

from ponder.server.cli import app
from ponder.server.settings import load_settings


def test_a_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["serve", "--model", str(tmp_path / "missing.gguf")],
        env={"PONDER_CACHE_DIR": str(tmp_path)},
    )
    assert result.exit_code == 1
    assert "missing.gguf is neither a model of the catalog" in result.output


def test_bad_settings_exit_2_before_anything_starts(tmp_path: Path) -> None:
    config = tmp_path / "ponder.yaml"
    config.write_text("max_n: 0\n")
    result = CliRunner().invoke(app, ["serve", "--config", str(config)])
    assert result.exit_code == 2
    assert "max_n" in result.output


def test_flags_beat_environment_beats_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "ponder.yaml"
    config.write_text("port: 1111\nmax_n: 3\ndefault_strategy: from-file\n")
    monkeypatch.setenv("PONDER_MAX_N", "5")
    monkeypatch.setenv("PONDER_ENGINE_URLS", "http://a:1/v1,http://b:2")
    settings = load_settings(config, port=2222)
    assert (settings.port, settings.max_n, settings.default_strategy) == (2222, 5, "from-file")
    assert settings.engine_urls == ["http://a:1/v1", "http://b:2"]


def test_version_and_help_point_to_the_settings() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("ponder ")
    help_text = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"}).output
    assert "docs/configuration.md" in help_text
    assert "(default: 8000)" in help_text
