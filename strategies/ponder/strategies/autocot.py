"""Auto-CoT (Zhang et al. 2023): demonstrations built from a pool of questions.

Cluster the pool into k clusters (k = the number of demonstrations); walk
each cluster from its centre outwards; take the first question whose
zero-shot-CoT rationale passes the filters — the question is at most 60
tokens, the rationale has at most 5 reasoning steps, an answer was
extracted. Questions are embedded with the engine's /v1/embeddings when it
has them, with TF-IDF otherwise. Built demonstrations are cached on disk,
per pool, model and k.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ponder.strategies import prompts
from ponder.strategies.answers import read_answer, stated_answer
from ponder.strategies.base import StrategyContext, StrategyInputError
from ponder.strategies.demos import Demo, UnknownResource
from ponder.strategies.engine import Message, Sampling
from ponder.strategies.two_stage import TwoStageParams

if TYPE_CHECKING:
    import numpy as np

# numpy and scikit-learn (about 100 MB of a server's memory) are imported when
# Auto-CoT clusters, not when the server starts.

logger = logging.getLogger(__name__)

MAX_QUESTION_TOKENS = 60
MAX_STEPS = 5
#: Demonstrations are shared by every later request, so they are built from the
#: operator's configuration alone: greedy, this bound, no system prompt, no earlier
#: turns and no engine fields of the request that happened to come first.
DEMO_SAMPLING = Sampling(max_tokens=256, temperature=0.0, seed=0)


@runtime_checkable
class Embedder(Protocol):
    async def embed(self, texts: list[str]) -> list[list[float]] | None:
        """Embeddings of ``texts``, or ``None`` when the engine serves none."""
        ...


def reasoning_steps(rationale: str) -> int:
    """Steps as Auto-CoT counts them: the rationale's non-empty lines."""
    return sum(1 for line in rationale.splitlines() if line.strip())


def cluster_order(vectors: np.ndarray, k: int, *, seed: int = 0) -> list[list[int]]:
    """Per cluster, member indices from the nearest to its centre outwards."""
    from sklearn.cluster import KMeans

    k = min(k, len(vectors))
    model = KMeans(n_clusters=k, random_state=seed, n_init=10).fit(vectors)
    distances = model.transform(vectors)
    clusters: list[list[int]] = []
    for cluster in range(k):
        members = [i for i, label in enumerate(model.labels_) if label == cluster]
        clusters.append(sorted(members, key=lambda i: float(distances[i, cluster])))
    return clusters


async def question_vectors(ctx: StrategyContext, questions: list[str]) -> np.ndarray:
    if isinstance(ctx.engine, Embedder):
        embedded = await ctx.engine.embed(questions)
        if embedded is not None:
            import numpy

            return numpy.asarray(embedded, dtype=float)
    return await asyncio.to_thread(_tfidf, questions)


def _tfidf(questions: list[str]) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectors: np.ndarray = TfidfVectorizer().fit_transform(questions).toarray()
    return vectors


def _read_built_demos(path: Path) -> list[Demo]:
    return [Demo.model_validate(row) for row in json.loads(path.read_text())]


async def auto_demos(ctx: StrategyContext, pool: str, k: int, params: TwoStageParams) -> list[Demo]:
    try:
        questions = ctx.resources.questions(pool)
    except UnknownResource as error:
        raise StrategyInputError(str(error)) from None
    path = ctx.resources.question_pools[pool]
    cache = _cache_file(ctx, path, k, params.answer_format)
    if cache is not None and cache.is_file():
        return ctx.resources.memo.read(cache, _read_built_demos)
    if not questions:
        raise StrategyInputError(f"question pool {pool!r} has no questions")
    await ctx.progress(f"building {k} Auto-CoT demonstrations from pool {pool!r} (once)")
    vectors = await question_vectors(ctx, questions)
    # k-means over a large pool takes CPU seconds: not on the event loop.
    clusters = await asyncio.to_thread(cluster_order, vectors, k, seed=0)
    demos = []
    for members in clusters:
        for index in members:
            demo = await _try_question(ctx, questions[index], params)
            if demo is not None:
                demos.append(demo)
                break
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(".partial")
        partial.write_text(json.dumps([d.model_dump() for d in demos]))
        partial.rename(cache)
    logger.info("Auto-CoT built %d demonstrations from pool %r", len(demos), pool)
    return demos


async def _try_question(ctx: StrategyContext, question: str, params: TwoStageParams) -> Demo | None:
    if await ctx.engine.count_tokens(question) > MAX_QUESTION_TOKENS:
        return None
    first = prompts.qa(question, prompts.COT_TRIGGER)
    rationale = (
        (await ctx.generate([Message("user", first)], role="demo", round=0, sampling=DEMO_SAMPLING))
        .choices[0]
        .text.strip()
    )
    if reasoning_steps(rationale) > MAX_STEPS:
        return None
    answer = stated_answer(rationale, params.answer_format)
    if answer is None:
        trigger = prompts.ANSWER_TRIGGERS[params.answer_format]
        second = prompts.extraction(question, prompts.COT_TRIGGER, rationale, trigger)
        reply = await ctx.generate(
            [Message("user", second)],
            role="demo",
            round=0,
            sampling=replace(DEMO_SAMPLING, max_tokens=params.extract_max_tokens),
        )
        answer = read_answer(reply.choices[0].text, params.answer_format)
    if answer is None:
        return None
    return Demo(question=question, rationale=rationale, answer=answer)


def _cache_file(ctx: StrategyContext, pool: Path, k: int, fmt: str) -> Path | None:
    if ctx.resources.cache_dir is None:
        return None
    # The pool file's identity, not its bytes: this runs on every auto request.
    stat = pool.stat()
    key = f"{pool.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{ctx.engine.model}|{k}|{fmt}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return ctx.resources.cache_dir / "autocot" / f"{digest}.json"
