"""The ``ponder`` command."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn

from ponder.server.app import SETTINGS_ENV, create_app
from ponder.server.coalesced_writes import CoalescingHttpProtocol
from ponder.server.engines.catalog import CATALOG, ModelFetchError
from ponder.server.engines.launch import LaunchError, planned_engines
from ponder.server.engines.managed import EngineStartError, ManagedEngine, free_port
from ponder.server.metrics import MULTIPROC_ENV
from ponder.server.settings import Settings, load_settings

logger = logging.getLogger("ponder")

app = typer.Typer(
    help="Ponder: an OpenAI-compatible server that reasons before it answers.", no_args_is_help=True
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"ponder {version('ponder')}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
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
    host: Annotated[str | None, typer.Option(help="address to bind (default: 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port to bind (default: 8000)")] = None,
    engine_url: Annotated[
        list[str] | None,
        typer.Option(
            "--engine-url", help="a running OpenAI-compatible engine (repeat for replicas)"
        ),
    ] = None,
    engine_dns: Annotated[
        list[str] | None,
        typer.Option(
            "--engine-dns",
            help="a DNS name whose every address is a replica, e.g. a headless Service "
            "(http://vllm:8000/v1; repeat)",
        ),
    ] = None,
    vllm_model: Annotated[
        str | None,
        typer.Option(
            help="start vLLM engines for this model (one per GPU, or one on CPU): a Hugging "
            "Face folder or id, a GGUF file or a name from `ponder models`"
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="the embedded engine's model: a name from `ponder models` (fetched once) "
            "or a GGUF file (default: smollm2-135m)"
        ),
    ] = None,
    served_model_name: Annotated[
        str | None,
        typer.Option(
            help="model name of engines Ponder starts (default: the catalog name, or the "
            "file's name)"
        ),
    ] = None,
    default_strategy: Annotated[
        str | None, typer.Option(help="strategy for requests that name none (default: direct)")
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            help="cache in this Redis, e.g. redis://localhost:6379/0 (default: in process)"
        ),
    ] = None,
    cache: Annotated[
        bool | None,
        typer.Option("--cache/--no-cache", help="cache deterministic answers (default: on)"),
    ] = None,
    reward_url: Annotated[
        str | None,
        typer.Option(
            help="a reward or classification model (vLLM's pooling runner) for the reward "
            "scorer, e.g. http://127.0.0.1:8001/v1"
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="worker processes (default: 1)", min=1)
    ] = None,
    api_key: Annotated[
        list[str] | None,
        typer.Option("--api-key", help="a key clients must send as a Bearer token (repeat)"),
    ] = None,
    admin_api_key: Annotated[
        list[str] | None,
        typer.Option(
            "--admin-api-key", help="a key that may also publish evaluation results (repeat)"
        ),
    ] = None,
    api_keys_file: Annotated[
        Path | None,
        typer.Option(help="keys, one per line ('admin' after a key for the admin scope)"),
    ] = None,
    frontier: Annotated[
        list[Path] | None,
        typer.Option(
            "--frontier",
            help="a frontier.json `ponder eval` wrote: its results choose the configuration of "
            "budget requests (repeat)",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    log_level: Annotated[
        str | None, typer.Option(help="debug, info, warning, error (default: info)")
    ] = None,
) -> None:
    """Serve the OpenAI API; start an engine when none is given.

    Options left unset take the PONDER_* environment, then --config, then the
    defaults; every setting, those without a flag included (caps, cache, timeouts,
    demo sets ...), is listed with its default in docs/configuration.md.
    """
    try:
        settings = load_settings(
            config,
            host=host,
            port=port,
            engine_urls=engine_url or None,
            engine_dns=engine_dns or None,
            vllm_model=vllm_model,
            model=model,
            served_model_name=served_model_name,
            default_strategy=default_strategy,
            redis_url=redis_url,
            cache=cache,
            reward_url=reward_url,
            workers=workers,
            log_level=log_level,
            api_keys=api_key or None,
            admin_api_keys=admin_api_key or None,
            api_keys_file=api_keys_file,
            frontier=frontier or None,
        )
    except Exception as error:
        typer.echo(f"ponder: bad settings: {error}", err=True)
        raise typer.Exit(2) from None
    _configure_logging(settings.log_level)
    if not (settings.api_keys or settings.admin_api_keys or settings.api_keys_file):
        logger.warning(
            "no API key is configured: anyone who can reach %s:%d can use this server "
            "(see --api-key)",
            settings.host,
            settings.port,
        )
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with contextlib.ExitStack() as engines:
        if not settings.engine_urls and not settings.engine_dns:
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
            # httptools' HTTP/1.1, each response's head and body in one socket write.
            "http": CoalescingHttpProtocol,
            # SIGTERM: stop accepting, let what is in flight finish, up to the grace.
            "timeout_graceful_shutdown": max(1, round(settings.shutdown_grace_seconds)),
            "timeout_keep_alive": max(1, round(settings.keep_alive_seconds)),
        }
        if settings.workers == 1:
            uvicorn.run(create_app(settings, tune_collector=True), **common)
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


@app.command("models")
def list_models(
    fetch: Annotated[
        str | None, typer.Option(help="fetch this catalog model now (else on first serve)")
    ] = None,
) -> None:
    """The models `ponder serve --model NAME` can fetch, and which are in the cache."""
    from ponder.server.engines.catalog import fetch as fetch_model

    cache_dir = load_settings().cache_dir
    if fetch is not None:
        if fetch not in CATALOG:
            typer.echo(
                f"ponder: no model {fetch!r} in the catalog ({', '.join(CATALOG)})", err=True
            )
            raise typer.Exit(2)
        try:
            fetch_model(CATALOG[fetch], cache_dir)
        except ModelFetchError as error:
            typer.echo(f"ponder: {error}", err=True)
            raise typer.Exit(1) from None
    for model in CATALOG.values():
        where = str(model.path(cache_dir)) if model.is_cached(cache_dir) else "not fetched"
        typer.echo(f"{model.name:<20} {model.size / 1e6:7.1f} MB  {model.licence:<11} {where}")
        typer.echo(f"{'':<20} {model.description}")


def _dataset_file(dataset: str, data_dir: Path) -> tuple[Path, str | None]:
    """A path as given, or the file in ``data_dir`` whose name has the built-in format."""
    from ponder.clients.evaluation.datasets import FORMATS, DatasetError, format_of

    path = Path(dataset)
    if path.is_file():
        return path, None
    if dataset not in FORMATS:
        raise DatasetError(
            f"{dataset} is neither a file nor a built-in dataset ({', '.join(FORMATS)})"
        )
    for candidate in sorted(data_dir.glob("*.jsonl*")):
        with contextlib.suppress(DatasetError):
            if format_of(candidate) == dataset:
                return candidate, dataset
    raise DatasetError(f"no {dataset} file in {data_dir} (set --data-dir or PONDER_DATA_DIR)")


@app.command("eval")
def evaluate(
    dataset: Annotated[
        str, typer.Argument(help="a JSONL file, or a built-in dataset name found in --data-dir")
    ],
    server: Annotated[
        str | None,
        typer.Option(help="a running Ponder, e.g. http://127.0.0.1:8000/v1 (default: start one)"),
    ] = None,
    strategy: Annotated[
        list[str] | None, typer.Option("--strategy", help="a strategy with its defaults (repeat)")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="STRATEGY.PARAM=VALUE, fixed (repeat)")
    ] = None,
    sweep: Annotated[
        list[str] | None,
        typer.Option("--sweep", help="STRATEGY.PARAM=V1,V2,... one configuration each (repeat)"),
    ] = None,
    configs: Annotated[
        Path | None, typer.Option(help="YAML file of configurations and sweeps")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="the first N problems", min=1)] = None,
    seed: Annotated[int | None, typer.Option(help="seed of every request")] = None,
    concurrency: Annotated[int, typer.Option(help="problems asked at once", min=1)] = 4,
    max_tokens: Annotated[int | None, typer.Option(help="output tokens per engine call")] = None,
    model: Annotated[str | None, typer.Option(help="model (default: the server's)")] = None,
    out: Annotated[
        Path | None, typer.Option(help="output folder; an existing one is resumed")
    ] = None,
    trace: Annotated[bool, typer.Option(help="keep every engine call in items.jsonl")] = False,
    cache: Annotated[
        bool, typer.Option(help="let the server answer from its cache (skews latency)")
    ] = False,
    publish: Annotated[
        bool, typer.Option(help="send the results to the server's /v1/eval/results")
    ] = True,
    data_dir: Annotated[
        Path, typer.Option(envvar="PONDER_DATA_DIR", help="where built-in datasets are")
    ] = Path("datasets"),
    format_: Annotated[
        str | None, typer.Option("--format", help="built-in format of the file")
    ] = None,
    question_field: Annotated[str | None, typer.Option(help="JSONL field of the question")] = None,
    answer_field: Annotated[str | None, typer.Option(help="JSONL field of the answer")] = None,
    grader: Annotated[
        str | None, typer.Option(help="numeric, integer, latex or drop (default: the format's)")
    ] = None,
    api_key: Annotated[str | None, typer.Option(envvar="PONDER_API_KEY")] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            help="the configuration the others are compared with, item by item (paired "
            "difference, McNemar's test; default: the one named cot, if any)"
        ),
    ] = None,
    report_only: Annotated[
        bool,
        typer.Option(
            "--report-only",
            help="write the reports from the items already in --out and ask nothing (no "
            "server started; published only to a --server given)",
        ),
    ] = False,
) -> None:
    """Run a dataset through strategy configurations; report accuracy, latency and tokens."""
    try:
        from rich.console import Console

        from ponder.clients.evaluation import configs as configurations
        from ponder.clients.evaluation.datasets import DatasetError, load
        from ponder.clients.evaluation.harness import evaluate as run_evaluation
        from ponder.clients.evaluation.harness import report_only as report_from_items
        from ponder.clients.evaluation.runner import ItemsError, RunOptions
    except ImportError as error:
        typer.echo(
            f"ponder eval needs the eval extra (pip install 'ponder[eval]'): {error}", err=True
        )
        raise typer.Exit(2) from None
    console = Console(stderr=True)
    if not console.is_terminal:  # a log file: room for the whole table
        console = Console(stderr=True, width=160)
    try:
        path, fmt = _dataset_file(dataset, data_dir)
        data = load(
            path,
            fmt=format_ or fmt,
            question_field=question_field,
            answer_field=answer_field,
            grader=grader,
            limit=limit,
        )
        chosen = configurations.build(
            strategies=strategy or (), sets=set_ or (), sweeps=sweep or (), file=configs
        )
    except (DatasetError, configurations.ConfigError) as error:
        typer.echo(f"ponder eval: {error}", err=True)
        raise typer.Exit(2) from None
    if baseline is not None and baseline not in {c.name for c in chosen}:
        names = ", ".join(c.name for c in chosen)
        typer.echo(f"ponder eval: baseline {baseline!r} is not a configuration ({names})", err=True)
        raise typer.Exit(2)
    options = RunOptions(
        model=model,
        max_tokens=max_tokens,
        seed=seed,
        concurrency=concurrency,
        trace=trace,
        cache=cache,
    )
    folder = out or Path("runs") / data.name
    if server is not None and not server.rstrip("/").endswith("/v1"):
        server = server.rstrip("/") + "/v1"  # the API's root, as the openai SDK takes it
    _configure_logging("warning")
    if report_only:
        try:
            report_from_items(
                data,
                chosen,
                options,
                folder,
                console=console,
                baseline=baseline,
                publish_to=server if publish else None,
                api_key=api_key,
            )
        except ItemsError as error:
            typer.echo(f"ponder eval: {error}", err=True)
            raise typer.Exit(2) from None
        return
    with contextlib.ExitStack() as stack:
        if server is None:
            settings = load_settings()
            port = free_port()
            log_file = _log_file(settings.cache_dir, f"ponder-eval-{port}.log")
            console.print(f"starting ponder serve on port {port} (log: {log_file})")
            gateway = ManagedEngine(
                "ponder",
                [sys.executable, "-m", "ponder.server", "serve", "--port", str(port)],
                port=port,
                ready_path="/ready",
                log_file=log_file,
                ready_timeout=600.0,
            )
            try:
                stack.enter_context(gateway)
            except EngineStartError as error:
                typer.echo(
                    f"ponder eval: the server did not start ({error}); see {log_file}", err=True
                )
                raise typer.Exit(1) from None
            server = gateway.url + "/v1"
        try:
            asyncio.run(
                run_evaluation(
                    server,
                    data,
                    chosen,
                    options,
                    folder,
                    console=console,
                    api_key=api_key,
                    publish_results=publish,
                    baseline=baseline,
                )
            )
        except ItemsError as error:
            typer.echo(f"ponder eval: {error}", err=True)
            raise typer.Exit(2) from None


@app.command("compare")
def compare(
    folders: Annotated[
        list[Path], typer.Argument(help="ponder eval output folders, one per dataset")
    ],
    baseline: Annotated[
        str | None,
        typer.Option(
            help="the configuration the others are compared with, problem by problem "
            "(default: the one named cot, if any)"
        ),
    ] = None,
    config: Annotated[
        list[str] | None,
        typer.Option(
            "--config",
            help="a configuration to report, by name (repeat; default: every one all folders ran)",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="the first N problems of each folder", min=1)
    ] = None,
    against: Annotated[
        list[str] | None,
        typer.Option(
            "--against",
            help="also compare every configuration with this one (repeat); a second table "
            "lists every pair read, the baseline's included, with Holm's adjustment over all",
        ),
    ] = None,
) -> None:
    """Several evaluations read as one: accuracy over all their problems and the paired
    difference from a baseline (McNemar's test, and Holm's adjustment over the rows), as a
    Markdown table; with --against, every pair read as one family."""
    try:
        from ponder.clients.evaluation.pooled import compare as compare_pool
        from ponder.clients.evaluation.pooled import pairs, pool
        from ponder.clients.evaluation.report import markdown, pairs_markdown
        from ponder.clients.evaluation.runner import ItemsError
    except ImportError as error:
        typer.echo(
            f"ponder compare needs the eval extra (pip install 'ponder[eval]'): {error}", err=True
        )
        raise typer.Exit(2) from None
    try:
        pooled = pool(folders, config, limit)
        if baseline is None and any(c.name == "cot" for c in pooled.configurations):
            baseline = "cot"
        summaries, rows = compare_pool(pooled, baseline)
        references = [*([baseline] if baseline else []), *(against or [])]
        family = pairs(pooled, references) if against else []
    except ItemsError as error:
        typer.echo(f"ponder compare: {error}", err=True)
        raise typer.Exit(2) from None
    sizes = ", ".join(f"{folder}: {count}" for folder, count in pooled.problems.items())
    typer.echo(f"Problems per folder: {sizes}.\n")
    typer.echo(markdown(summaries, rows), nl=False)
    if family:
        typer.echo(f"\nEvery pair read against {', '.join(dict.fromkeys(references))}:\n")
        typer.echo(pairs_markdown(family), nl=False)


def _log_file(cache_dir: Path, name: str) -> Path:
    folder = cache_dir / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def main() -> None:
    app()
