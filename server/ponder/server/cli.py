"""The ``ponder`` command."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn

from ponder.server.app import SETTINGS_ENV, create_app
from ponder.server.engines.launch import LaunchError, planned_engines
from ponder.server.engines.managed import EngineStartError
from ponder.server.engines.model_files import ModelFetchError
from ponder.server.metrics import MULTIPROC_ENV
from ponder.server.settings import Settings, load_settings

app = typer.Typer(
    help="Ponder: an OpenAI-compatible server that reasons before it answers.", no_args_is_help=True
)


@app.callback()
def _root() -> None:
    """Ponder's command line."""


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # One line per engine call is noise beside Ponder's one line per request.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _exit_on_sigterm(*_: Any) -> None:
    # SIGTERM becomes SystemExit, so the engines are stopped on the way out. Uvicorn
    # handles SIGTERM while it serves and raises it again once it has shut down,
    # into this handler.
    raise SystemExit(128 + signal.SIGTERM)


@app.command()
def serve(
    config: Annotated[Path | None, typer.Option(help="YAML settings file")] = None,
    host: Annotated[str | None, typer.Option(help="address to bind")] = None,
    port: Annotated[int | None, typer.Option(help="port to bind")] = None,
    engine_url: Annotated[
        list[str] | None,
        typer.Option(
            "--engine-url", help="a running OpenAI-compatible engine (repeat for replicas)"
        ),
    ] = None,
    vllm_model: Annotated[
        str | None,
        typer.Option(help="start vLLM engines for this model (one per GPU, or one on CPU)"),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="GGUF file for the embedded engine (default: SmolLM2-135M-Instruct)"),
    ] = None,
    served_model_name: Annotated[
        str | None, typer.Option(help="model name of engines Ponder starts")
    ] = None,
    default_strategy: Annotated[
        str | None, typer.Option(help="strategy for requests that name none")
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            help="cache in this Redis, e.g. redis://localhost:6379/0 (default: in process)"
        ),
    ] = None,
    cache: Annotated[
        bool | None, typer.Option("--cache/--no-cache", help="cache deterministic answers")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="worker processes", min=1)] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning, error")] = None,
) -> None:
    """Serve the OpenAI API; start an engine when none is given."""
    try:
        settings = load_settings(
            config,
            host=host,
            port=port,
            engine_urls=engine_url or None,
            vllm_model=vllm_model,
            model=model,
            served_model_name=served_model_name,
            default_strategy=default_strategy,
            redis_url=redis_url,
            cache=cache,
            workers=workers,
            log_level=log_level,
        )
    except Exception as error:
        typer.echo(f"ponder: bad settings: {error}", err=True)
        raise typer.Exit(2) from None
    _configure_logging(settings.log_level)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with contextlib.ExitStack() as engines:
        if not settings.engine_urls:
            urls = []
            try:
                for engine in planned_engines(settings):
                    engines.enter_context(engine)
                    urls.append(engine.url)
            except (EngineStartError, LaunchError, ModelFetchError) as error:
                typer.echo(f"ponder: cannot start an engine: {error}", err=True)
                raise typer.Exit(1) from None
            settings = settings.model_copy(update={"engine_urls": urls})
        common: dict[str, Any] = {
            "host": settings.host,
            "port": settings.port,
            "log_level": settings.log_level,
            "access_log": False,
            # The standard loop: under uvloop, a client's disconnect does not
            # reach the engine connection it was streaming from (see http_engine).
            "loop": "asyncio",
        }
        if settings.workers == 1:
            uvicorn.run(create_app(settings), **common)
            return
        with _worker_environment(settings):
            uvicorn.run(
                "ponder.server.app:app_from_environment",
                factory=True,
                workers=settings.workers,
                **common,
            )


@contextlib.contextmanager
def _worker_environment(settings: Settings) -> Iterator[None]:
    """What worker processes inherit: the settings, and a fresh folder for their metrics.

    prometheus-client's multiprocess mode is chosen when ``PROMETHEUS_MULTIPROC_DIR``
    is set as the client is imported, so it must be set before workers start;
    the folder must not hold a previous run's files.
    """
    given = os.environ.get(MULTIPROC_ENV)
    with contextlib.ExitStack() as stack:
        if given:
            for stale in Path(given).glob("*.db"):
                stale.unlink()
            directory = given
        else:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="ponder-metrics-"))
        os.environ[MULTIPROC_ENV] = directory
        os.environ[SETTINGS_ENV] = settings.model_dump_json()
        yield


def main() -> None:
    app()
