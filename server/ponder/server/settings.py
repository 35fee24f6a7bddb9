"""Server settings: flags over ``PONDER_*`` environment over a YAML file over defaults."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from ponder.strategies.demos import Resources
from ponder.strategies.limits import Limits
from ponder.strategies.user_budget import UserBudget


class Preset(BaseModel):
    """What ``reasoning_effort`` asks for: a budget (the server picks the configuration, as
    for ``ponder.budget``) or a strategy configuration."""

    model_config = ConfigDict(extra="forbid")

    strategy: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    budget: UserBudget | None = None

    @model_validator(mode="after")
    def _one_way(self) -> Preset:
        if (self.strategy is None) == (self.budget is None):
            raise ValueError("a preset names a strategy or a budget, not both")
        if self.params and self.strategy is None:
            raise ValueError("params belong to a preset that names a strategy")
        return self


def default_presets() -> dict[str, Preset]:
    """OpenAI's efforts as budgets: token budgets hold on any hardware, unlike seconds."""
    return {
        "minimal": Preset(strategy="direct"),
        "low": Preset(budget=UserBudget(all_tokens=1024)),
        "medium": Preset(budget=UserBudget(all_tokens=4096)),
        "high": Preset(budget=UserBudget(sequential_tokens=4096, all_tokens=16384)),
    }


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ponder"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PONDER_", env_nested_delimiter="__", extra="forbid"
    )

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    log_level: str = "info"
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="largest request body")
    max_body_bytes_held: int = Field(
        32 * 1024 * 1024,
        ge=1024,
        description="request bodies one worker holds at once, those being served together",
    )
    shutdown_grace_seconds: float = Field(
        30.0,
        ge=0,
        description="on SIGTERM, in-flight requests may finish this long before they are cut",
    )
    keep_alive_seconds: float = Field(
        75.0,
        gt=0,
        description="an idle client connection is closed after this; longer than load "
        "balancers keep theirs, so that a request never meets a connection closing",
    )
    tune_collector: bool = Field(
        True,
        description="once started, a serving process freezes its heap and collects young "
        "objects every 10,000 allocations (ponder.server.collector); false: Python's defaults",
    )
    body_timeout_seconds: float = Field(
        30.0, gt=0, description="a request body not all sent within this is a 408"
    )
    stream_keepalive_seconds: float = Field(
        15.0, gt=0, description="a stream silent this long gets a keep-alive comment"
    )
    max_in_flight: int = Field(
        256, ge=1, description="completions served at once; more get a 429 with Retry-After"
    )
    workers: int = Field(
        1, ge=1, description="uvicorn worker processes (metrics are added up over them)"
    )

    # Access: with no key the server is open (it says so when it starts).
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="keys a client may send as Authorization: Bearer <key> "
        "(PONDER_API_KEYS: comma-separated)",
    )
    admin_api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="keys that may also publish evaluation results (PONDER_ADMIN_API_KEYS)",
    )
    api_keys_file: Path | None = Field(
        None, description="a key per line, 'admin' after it for the admin scope; re-read on change"
    )
    metrics_open: bool = Field(True, description="/metrics needs no key (keys configured)")
    key_requests_per_minute: int | None = Field(
        None, ge=1, description="completions a key may ask per minute (keys file: rpm=N)"
    )
    key_tokens_per_minute: int | None = Field(
        None, ge=1, description="engine tokens a key may spend per minute (keys file: tpm=N)"
    )
    key_concurrent_requests: int | None = Field(
        None, ge=1, description="completions a key may have at once (keys file: concurrent=N)"
    )
    allowed_hosts: Annotated[list[str], NoDecode] | None = Field(
        None,
        description="Host header values answered (* for any); default: the loopback names "
        "when bound to a loopback address, else any",
    )

    @field_validator("api_keys", "admin_api_keys", "allowed_hosts", "forward_fields", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    forward_fields: Annotated[list[str], NoDecode] | None = Field(
        None,
        description="engine fields a request may send beside OpenAI's (top_k, min_p ...); "
        "others are a 400; default: any but those that pass max_tokens",
    )

    # Cache: whole deterministic responses and the engine calls of strategies.
    cache: bool = Field(True, description="cache deterministic responses and engine calls")
    redis_url: str | None = Field(
        None, description="cache in this Redis (shared by gateways) instead of in process"
    )
    cache_ttl: float = Field(3600.0, gt=0, description="seconds an entry lives")
    cache_max_entries: int = Field(10_000, ge=1, description="in-process cache: entries")
    cache_max_bytes: int = Field(256 * 1024 * 1024, ge=1024, description="in-process: bytes")
    cache_timeout: float = Field(
        0.25, gt=0, description="seconds Redis may take to answer before a request goes uncached"
    )
    cache_cooldown: float = Field(
        1.0, gt=0, description="seconds Redis is left alone after a failure before a new try"
    )
    max_eval_series: int = Field(
        512, ge=1, description="distinct (dataset, strategy, config) evaluation results kept"
    )

    # Engines. No URL, no DNS name and no vLLM model: Ponder starts the embedded engine.
    engine_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    engine_dns: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="DNS names whose every address is a replica (a Kubernetes headless "
        "Service): http://name:8000/v1",
    )
    engine_dns_interval: float = Field(10.0, gt=0, description="seconds between DNS lookups")
    engine_api_key: str | None = None
    vllm_model: str | None = None
    vllm_python: str | None = Field(
        None,
        description="interpreter with vLLM installed (default: this one, else "
        "the cache's vllm-venv)",
    )
    vllm_args: Annotated[list[str], NoDecode] = Field(default_factory=list)
    vllm_max_model_len: int | None = None
    model: str | None = Field(
        None,
        description="the embedded engine's model: a catalog name (`ponder models`) or a GGUF "
        "file (default: smollm2-135m)",
    )
    served_model_name: str | None = Field(
        None,
        description="model name of engines Ponder starts (default: the catalog name, or the "
        "GGUF file's name without .gguf)",
    )
    embedded_chat_template: Path | None = Field(
        None,
        description="a Jinja chat template for the embedded engine instead of the GGUF's own "
        "(one with tools, for a model whose own has none)",
    )
    embedded_parallel: int = Field(8, ge=1, description="llama.cpp slots decoded together")
    embedded_ctx_per_slot: int = Field(2048, ge=256)
    threads: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    cache_dir: Path = Field(default_factory=default_cache_dir)

    # The reward scorer's model (vLLM's pooling runner: /classify or /pooling).
    reward_url: str | None = Field(
        None, description="a reward or classification model for the reward scorer"
    )
    reward_model: str | None = Field(
        None, description="its model name (default: the first it lists)"
    )

    # Engine calls.
    engine_timeout: float = Field(300.0, gt=0, description="seconds per engine call")
    engine_connect_timeout: float = Field(10.0, gt=0)
    engine_retries: int = Field(3, ge=1, description="attempts per call, the first included")
    engine_stream_calls: bool = Field(
        True,
        description="make free-text engine calls to llama.cpp and other servers as streams, "
        "so that a call whose client left is aborted at the engine (vLLM aborts a closed "
        "plain request: its calls are plain)",
    )
    engine_aiohttp_pool: bool = Field(
        True,
        description="engine calls through aiohttp's client and connection pool instead of "
        "httpx's over httpcore's: a fifth of the gateway CPU per relayed stream, and a "
        "third of the engine client's CPU per plain call",
    )
    health_interval: float = Field(5.0, gt=0)
    health_silences: int = Field(
        3,
        ge=1,
        description="health checks in a row a replica may leave unanswered before it is "
        "marked down (a refused or failed check marks it down at once)",
    )

    # Strategies.
    default_strategy: str = "direct"
    presets: dict[str, Preset] = Field(default_factory=default_presets)
    max_n: int = Field(16, ge=1)
    max_drafts_per_round: int = Field(16, ge=1)
    max_rounds: int = Field(8, ge=1)
    max_tokens_per_call: int = Field(4096, ge=1)
    max_all_tokens: int = Field(200_000, ge=1)
    max_messages: int = Field(2048, ge=1, description="messages in one chat request")
    max_prompt_tokens: int = Field(
        65_536, ge=1, description="tokens of one prompt, in the model's tokenizer"
    )
    default_max_tokens: int = Field(512, ge=1, description="per call, when a request sets none")

    # Budgets (ponder.budget, reasoning_effort).
    frontier_file: Path | None = Field(
        None,
        description="where evaluation results are kept when no redis_url is set "
        "(default: <cache_dir>/frontier.json)",
    )
    frontier: list[Path] = Field(
        default_factory=list, description="frontier files written by `ponder eval`, loaded at start"
    )
    assumed_tokens_per_second: float = Field(
        20.0, gt=0, description="one sample's decode speed until the gateway has measured it"
    )
    assumed_call_overhead_seconds: float = Field(
        0.3, ge=0, description="a call's fixed cost (queue, prefill, HTTP) in deadline estimates"
    )
    ladder_call_tokens: int = Field(
        256, ge=16, description="tokens a call is assumed to write when sizing the default ladder"
    )

    # Files strategies may read; requests name them, never give a path.
    demo_sets: dict[str, Path] = Field(
        default_factory=dict, description="cot few_shot demo sets: name -> JSONL file"
    )
    question_pools: dict[str, Path] = Field(
        default_factory=dict, description="cot auto (Auto-CoT) question pools: name -> JSONL"
    )
    successive_demos: Path | None = Field(
        None, description="worked decompositions shown to successive's decomposer (JSONL)"
    )

    @property
    def resources(self) -> Resources:
        """The operator's files; the gateway builds this once, so parsed files are kept."""
        return Resources(
            demo_sets=self.demo_sets,
            question_pools=self.question_pools,
            decompositions=self.successive_demos,
            cache_dir=self.cache_dir,
        )

    @property
    def frontier_path(self) -> Path:
        return self.frontier_file or self.cache_dir / "frontier.json"

    @field_validator("engine_urls", "engine_dns", "vllm_args", "frontier", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        # PONDER_ENGINE_URLS=http://a:8000,http://b:8000 is easier to write than JSON.
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def limits(self) -> Limits:
        """Every cap on a request, as the gateway and the strategies check them."""
        return Limits(
            max_n=self.max_n,
            max_tokens_per_call=self.max_tokens_per_call,
            max_drafts_per_round=self.max_drafts_per_round,
            max_rounds=self.max_rounds,
            max_all_tokens=self.max_all_tokens,
            max_messages=self.max_messages,
            max_prompt_tokens=self.max_prompt_tokens,
            max_body_bytes=self.max_body_bytes,
            max_in_flight=self.max_in_flight,
        )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if settings_cls.model_config.get("yaml_file"):
            sources.append(YamlConfigSettingsSource(settings_cls))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from ``overrides`` (flags), then the environment, then ``config_file``."""
    config_file = config_file or _env_config_file()
    cls: type[Settings] = Settings
    if config_file is not None:
        if not config_file.is_file():
            raise FileNotFoundError(f"config file {config_file} does not exist")
        cls = type(
            "FileSettings",
            (Settings,),
            {
                "model_config": SettingsConfigDict(
                    **{**Settings.model_config, "yaml_file": str(config_file)}
                )
            },
        )
    return cls(**{key: value for key, value in overrides.items() if value is not None})


def _env_config_file() -> Path | None:
    value = os.environ.get("PONDER_CONFIG")
    return Path(value) if value else None
