"""Replicas of one or more models: health, least-outstanding routing, request affinity."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

from ponder.server.engines.discovery import DnsReplicas
from ponder.server.engines.http_engine import HTTPEngine, Probe
from ponder.server.engines.resume import BegunReply
from ponder.server.metrics import Metrics
from ponder.strategies.engine import (
    EngineError,
    EngineTimeout,
    EngineUnavailable,
    Generation,
    Prompt,
    SampleCheck,
    SampleWatch,
    Sampling,
    StreamEvent,
    TextDelta,
    call_role,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")


class EnginePool:
    """Replicas, checked in the background; each request gets a sticky session.

    Replicas are the fixed ones given, plus one per address of each DNS name
    in ``dns`` (re-resolved every ``dns_interval`` seconds; ``make_replica``
    builds the engine of a new address). A replica whose address is gone takes
    no new request and is closed once its calls in flight are done.

    A replica that refuses a health check, or answers it with an error, is down
    at once; one that does not answer in time is down only after ``health_silences``
    checks in a row go unanswered: an engine busy with a large batch can answer
    late, and a single-engine gateway that took it for dead would refuse every
    request meanwhile.
    """

    def __init__(
        self,
        replicas: Sequence[HTTPEngine],
        *,
        health_interval: float = 5.0,
        health_silences: int = 3,
        health_timeout: float = 5.0,
        metrics: Metrics | None = None,
        dns: Sequence[DnsReplicas] = (),
        dns_interval: float = 10.0,
        make_replica: Callable[[str], HTTPEngine] | None = None,
    ) -> None:
        if not replicas and not dns:
            raise ValueError("an engine pool needs at least one replica or DNS name")
        if dns and make_replica is None:
            raise ValueError("replicas found by DNS need make_replica")
        self.replicas = list(replicas)
        self.health_interval = health_interval
        self.health_silences = health_silences
        self.health_timeout = health_timeout
        self.metrics = metrics
        self.dns = list(dns)
        self.dns_interval = dns_interval
        self._make_replica = make_replica
        #: Replicas found by DNS, by URL, with the name each came from.
        self._found: dict[str, tuple[HTTPEngine, DnsReplicas]] = {}
        self._healthy: dict[int, bool] = {id(r): False for r in self.replicas}
        #: Health checks in a row each replica left unanswered.
        self._silences: dict[int, int] = {}
        self._discovered: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._retiring: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.refresh_dns()
        await self.check()
        self._tasks.append(asyncio.create_task(self._watch(), name="engine-health"))
        if self.dns:
            self._tasks.append(asyncio.create_task(self._watch_dns(), name="engine-dns"))

    async def aclose(self) -> None:
        for task in [*self._tasks, *self._retiring]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(r.aclose() for r in self.replicas))

    async def refresh_dns(self) -> None:
        """Resolve every DNS name; add a replica per new address, retire those gone.

        A name that does not resolve now keeps its replicas (a DNS hiccup is
        not a scale-down); health checks decide whether they serve.
        """
        if not self.dns:
            return
        wanted: dict[str, DnsReplicas] = {}
        for name in self.dns:
            try:
                urls = await name.urls()
            except OSError as error:
                logger.warning("cannot resolve engine name %s: %s", name.url, error)
                urls = [url for url, (_, source) in self._found.items() if source is name]
            wanted.update((url, name) for url in urls)
        assert self._make_replica is not None
        for url, name in wanted.items():
            if url not in self._found:
                replica = self._make_replica(url)
                self._found[url] = (replica, name)
                self.replicas.append(replica)
                self._healthy[id(replica)] = False
                logger.info("engine %s found by DNS", url)
        for url in [url for url in self._found if url not in wanted]:
            replica, _ = self._found.pop(url)
            self.replicas.remove(replica)
            self._healthy.pop(id(replica), None)
            self._silences.pop(id(replica), None)
            logger.info("engine %s is gone from DNS; retiring it", url)
            task = asyncio.create_task(self._retire(replica))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def _retire(self, replica: HTTPEngine) -> None:
        await replica.drained()
        self._discovered.discard(id(replica))
        await replica.aclose()

    async def _watch_dns(self) -> None:
        while True:
            await asyncio.sleep(self.dns_interval)
            await self.refresh_dns()
            await self.check()

    async def check(self) -> None:
        """Probe every replica once; learn its model and kind the first time it answers."""
        await asyncio.gather(*(self._check_one(r) for r in self.replicas))

    async def _check_one(self, replica: HTTPEngine) -> None:
        if id(replica) not in self._healthy:
            return  # retired while the check ran
        probe, reason = await replica.probe(self.health_timeout)
        if probe is Probe.SILENT:
            silences = self._silences[id(replica)] = self._silences.get(id(replica), 0) + 1
            healthy = self._healthy.get(id(replica), False) and silences < self.health_silences
            reason = f"{reason}, {silences} time(s) in a row"
        else:
            self._silences.pop(id(replica), None)
            healthy = probe is Probe.UP
        if healthy and id(replica) not in self._discovered:
            try:
                await replica.discover()
                self._discovered.add(id(replica))
            except Exception as error:
                logger.warning("cannot discover %s yet: %s", replica.base_url, error)
                healthy = False
                reason = f"not discovered: {error}"
        if id(replica) not in self._healthy:
            return
        if healthy != self._healthy[id(replica)]:
            if healthy:
                logger.info("engine %s is up", replica.base_url)
            else:
                logger.info("engine %s is down: %s", replica.base_url, reason)
        self._healthy[id(replica)] = healthy

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval)
            await self.check()

    def mark_down(self, replica: HTTPEngine) -> None:
        if id(replica) not in self._healthy:
            return  # retired
        if self._healthy[id(replica)]:
            logger.warning("engine %s marked down after a failed call", replica.base_url)
        self._healthy[id(replica)] = False

    def sideline(self, replica: HTTPEngine) -> None:
        """A replica whose call took too long: down while another replica of its model
        can serve (a hung replica, which least-busy routing would favour, gets no more
        work), but not the last one. A slow engine that is all there is still serves,
        where marking it down would refuse every request; health checks tell a hung
        one (see ``health_silences``)."""
        if any(r is not replica for r in self.healthy_replicas(replica.model)):
            self.mark_down(replica)

    @property
    def ready(self) -> bool:
        return any(self._healthy.values())

    def models(self) -> list[str]:
        """Models served by replicas that have answered at least once."""
        return sorted({r.model for r in self.replicas if id(r) in self._discovered and r.model})

    def healthy_replicas(self, model: str) -> list[HTTPEngine]:
        return [r for r in self.replicas if self._healthy[id(r)] and r.model == model]

    def pick(self, model: str, *, exclude: Sequence[HTTPEngine] = ()) -> HTTPEngine:
        """The healthy replica of ``model`` with the fewest requests in flight."""
        candidates = [r for r in self.healthy_replicas(model) if r not in exclude]
        if not candidates:
            raise EngineUnavailable(f"no engine is ready to serve model {model!r}")
        return min(candidates, key=lambda r: r.outstanding)

    def session(self, model: str) -> PoolSession:
        return PoolSession(self, model)


class PoolSession:
    """The engine one client request talks to.

    Every call of the request goes to one replica, so its prompts share that
    replica's prefix cache; only when that replica fails does the session
    move to another, and only for a call that has sent nothing yet.
    """

    def __init__(self, pool: EnginePool, model: str) -> None:
        self._pool = pool
        self._model = model
        self._replica: HTTPEngine | None = None

    @property
    def model(self) -> str:
        return self._model

    @property
    def replica(self) -> HTTPEngine | None:
        return self._replica

    def _current(
        self, failed: Sequence[HTTPEngine], last_error: EngineError | None = None
    ) -> HTTPEngine:
        if (
            self._replica is None
            or self._replica in failed
            or self._replica not in self._pool.replicas  # retired: its address left DNS
        ):
            try:
                self._replica = self._pool.pick(self._model, exclude=failed)
            except EngineUnavailable:
                # Every replica failed this call: its own error says more than "none ready".
                if last_error is not None:
                    raise last_error from None
                raise
        return self._replica

    def _count_error(self, replica: HTTPEngine, error: EngineError) -> None:
        metrics = self._pool.metrics
        if metrics is not None:
            metrics.engine_call_errors.labels(
                replica.base_url, call_role(), str(error.status)
            ).inc()

    def _failed(self, replica: HTTPEngine, error: EngineError, failed: list[HTTPEngine]) -> None:
        """Count a failed call; move on to another replica when the error allows it. A
        timeout counts against its replica too (see :meth:`EnginePool.sideline`)."""
        self._count_error(replica, error)
        if isinstance(error, EngineTimeout):
            self._pool.sideline(replica)
        elif error.retryable:
            self._pool.mark_down(replica)
        else:
            raise error
        failed.append(replica)

    def _done(self, replica: HTTPEngine, started: float) -> None:
        metrics = self._pool.metrics
        if metrics is not None:
            metrics.series(metrics.engine_call_duration, replica.base_url, call_role()).observe(
                time.perf_counter() - started
            )

    async def _on_a_replica(self, call: Callable[[HTTPEngine], Awaitable[T]]) -> T:
        """``call`` on the session's replica, moving on to another while replicas fail."""
        failed: list[HTTPEngine] = []
        last_error: EngineError | None = None
        while True:
            replica = self._current(failed, last_error)
            try:
                return await call(replica)
            except EngineError as error:
                self._failed(replica, error, failed)
                last_error = error

    async def _generation_call(self, call: Callable[[HTTPEngine], Awaitable[T]]) -> T:
        """``_on_a_replica``, timed per replica and role."""

        async def timed(replica: HTTPEngine) -> T:
            started = time.perf_counter()
            result = await call(replica)
            self._done(replica, started)
            return result

        return await self._on_a_replica(timed)

    async def generate(self, prompt: Prompt, *, n: int = 1, sampling: Sampling) -> Generation:
        return await self._generation_call(lambda r: r.generate(prompt, n=n, sampling=sampling))

    async def stream(self, prompt: Prompt, *, sampling: Sampling) -> AsyncIterator[StreamEvent]:
        """The reply streamed from the session's replica. A replica that fails before sending
        anything is left for another; one that fails mid-reply has the rest of the reply
        written by another that can go on from the text already sent (see
        :mod:`~ponder.server.engines.resume`), so the caller sees one reply."""
        failed: list[HTTPEngine] = []
        last_error: EngineError | None = None
        reply = BegunReply()
        while True:
            replica = self._current(failed, last_error)
            if reply.sent and not replica.resumes_replies:
                assert last_error is not None  # only a failure moves a reply on
                raise last_error
            started = time.perf_counter()
            try:
                if reply.sent:
                    events = self._rest_of(replica, prompt, reply, sampling)
                else:
                    events = replica.stream(prompt, sampling=sampling)
                async for event in events:
                    if isinstance(event, TextDelta):
                        reply.add(event)
                        yield event
                    else:
                        yield reply.end(event)
                self._done(replica, started)
                return
            except EngineError as error:
                self._failed(replica, error, failed)
                last_error = error

    async def _rest_of(
        self, replica: HTTPEngine, prompt: Prompt, reply: BegunReply, sampling: Sampling
    ) -> AsyncIterator[StreamEvent]:
        reply.resume(await replica.count_tokens(reply.text))
        logger.warning(
            "a replica failed mid-reply; %s goes on from its %d tokens",
            replica.base_url,
            reply.earlier_tokens,
        )
        metrics = self._pool.metrics
        if metrics is not None:
            metrics.engine_replies_resumed.labels(replica.base_url, call_role()).inc()
        rest = reply.rest_of(sampling)
        if rest is None:
            yield reply.spent(replica.model)
            return
        async for event in replica.stream_rest(prompt, reply.text, sampling=rest):
            yield event

    async def embed(self, texts: list[str]) -> list[list[float]] | None:
        return await self._on_a_replica(lambda r: r.embed(texts))

    async def count_tokens(self, text: str) -> int:
        return await self._on_a_replica(lambda r: r.count_tokens(text))

    async def generate_until(
        self,
        prompt: Prompt,
        *,
        n: int,
        sampling: Sampling,
        done: SampleCheck,
        keep: SampleWatch | None = None,
        until: float | None = None,
    ) -> Generation:
        return await self._generation_call(
            lambda r: r.generate_until(
                prompt, n=n, sampling=sampling, done=done, keep=keep, until=until
            )
        )

    async def detokenize(self, tokens: Sequence[int]) -> str:
        return await self._on_a_replica(lambda r: r.detokenize(tokens))
