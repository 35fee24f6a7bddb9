"""Evaluation results kept per model and dataset: the frontier budget requests choose from.

``ponder eval`` publishes what it measured (``POST /v1/eval/results``) and
writes the same report to ``frontier.json`` beside its items; ``ponder serve
--frontier FILE`` loads such a file at start. The results are kept in Redis
when the gateway has one (every gateway on it reads the same frontier, and it
outlives them), else in a JSON file. A newer result of a configuration
replaces the older one; results of other configurations are kept.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Protocol

from redis.asyncio import Redis

from ponder.server.eval_results import EvalReport

logger = logging.getLogger(__name__)

REDIS_PREFIX = "ponder:frontier:"


class FrontierStore(Protocol):
    async def save(self, report: EvalReport) -> EvalReport:
        """Keep ``report``'s results; return every result now kept for its model and
        dataset (those saved before, by any gateway sharing the store, and these)."""
        ...

    async def reports(self, model: str) -> list[EvalReport]:
        """The model's reports, one per dataset."""
        ...

    async def aclose(self) -> None: ...


def merged(older: EvalReport | None, newer: EvalReport) -> EvalReport:
    """``newer``'s results over ``older``'s, configuration by configuration."""
    if older is None:
        return newer
    kept = {r.config: r for r in older.results}
    kept.update({r.config: r for r in newer.results})
    return newer.model_copy(update={"results": list(kept.values())})


def read_report(path: Path) -> EvalReport:
    """A frontier file ``ponder eval`` wrote (an evaluation report)."""
    return EvalReport.model_validate_json(path.read_bytes())


class FileFrontier:
    """The frontier in one JSON file, read once and rewritten whole (atomically) on a save."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._reports: dict[tuple[str, str], EvalReport] = {}
        if not path.is_file():
            return
        try:
            reports = [EvalReport.model_validate(raw) for raw in json.loads(path.read_text())]
        except (ValueError, TypeError) as error:
            # Serving goes on without it; the unreadable file is kept aside, not overwritten.
            aside = path.with_suffix(".unreadable.json")
            os.replace(path, aside)
            logger.warning("frontier file %s is unreadable (%s); moved to %s", path, error, aside)
            return
        for report in reports:
            self._reports[(report.model, report.dataset)] = report

    async def save(self, report: EvalReport) -> EvalReport:
        key = (report.model, report.dataset)
        kept = self._reports[key] = merged(self._reports.get(key), report)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps([r.model_dump(mode="json") for r in self._reports.values()], indent=1)
        with tempfile.NamedTemporaryFile(
            "w", dir=self.path.parent, prefix=".frontier-", delete=False
        ) as handle:
            handle.write(text)
        os.replace(handle.name, self.path)
        return kept

    async def reports(self, model: str) -> list[EvalReport]:
        return [r for (m, _), r in self._reports.items() if m == model]

    async def aclose(self) -> None:
        return None


class RedisFrontier:
    """The frontier in Redis: one hash per model, a report per dataset; no expiry."""

    def __init__(self, url: str, *, timeout: float) -> None:
        self._redis: Redis = Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    async def save(self, report: EvalReport) -> EvalReport:
        key = REDIS_PREFIX + report.model
        stored = await self._redis.hget(key, report.dataset)
        older = None if stored is None else EvalReport.model_validate_json(stored)
        kept = merged(older, report)
        await self._redis.hset(key, report.dataset, kept.model_dump_json())
        return kept

    async def reports(self, model: str) -> list[EvalReport]:
        stored = await self._redis.hgetall(REDIS_PREFIX + model)
        return [EvalReport.model_validate_json(value) for value in stored.values()]

    async def aclose(self) -> None:
        await self._redis.aclose()
