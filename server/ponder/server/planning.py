"""Everything decided about a request before its first engine call: the :class:`Plan`.

The plan builder picks the model and the strategy, checks every cap, builds
the sampling the strategy starts from, splits the request into strategy runs
and decides whether the response may come from, or go to, the cache. A
request it refuses costs no engine work.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ponder.server.answer_fields import ANSWER_FIELDS, answer_shape
from ponder.server.budget_choice import BudgetInfo, choose, expected, ladder, measured
from ponder.server.cache import CacheMode, cache_key
from ponder.server.cache.keys import prompt_form
from ponder.server.endpoints import CompletionBody, Endpoint, endpoint_for
from ponder.server.engines.provider import EngineProvider
from ponder.server.errors import InvalidRequest, ModelNotFound, NoEngineReady
from ponder.server.eval_results import EvalReport
from ponder.server.frontier import FrontierStore
from ponder.server.openai_fields import WITHOUT_EFFECT, refuse_unsupported
from ponder.server.protocol import CompletionRequest, PonderOptions
from ponder.server.selection import Selection, named_strategy, select
from ponder.server.settings import Settings
from ponder.strategies.base import Strategy, estimated_tokens, render_prompt
from ponder.strategies.engine import AnswerShape, EngineRejected, Prompt, Sampling
from ponder.strategies.limits import Limits, OverCap
from ponder.strategies.pace import Paces
from ponder.strategies.reasoning import ReasoningLevel
from ponder.strategies.registry import Registry
from ponder.strategies.runs import Job, plan_jobs
from ponder.strategies.user_budget import MIN_CALL_TOKENS, Deadline, UserBudget

logger = logging.getLogger(__name__)

#: Engine fields that change how much is generated past max_tokens (llama.cpp's
#: n_predict, vLLM's best_of ...): a request sets max_tokens and n instead.
GENERATION_AMOUNT = frozenset({"n_predict", "max_new_tokens", "best_of"})


@dataclass(frozen=True, slots=True)
class ResponseCaching:
    """Whether this request's response may be read from and written to the cache.

    ``key`` is set only when the request is greedy or seeded and caching is on;
    a response is written only if, in addition, every engine call it made was
    deterministic (a strategy may sample at a temperature of its own).
    """

    mode: CacheMode
    key: str | None = None

    @property
    def lookup_key(self) -> str | None:
        return self.key if self.mode.reads else None

    def store_key(self, every_call_deterministic: bool) -> str | None:
        if self.key is None or not self.mode.writes or not every_call_deterministic:
            return None
        return self.key


@dataclass
class Plan:
    """Everything decided before the first engine call."""

    request_id: str
    endpoint: Endpoint
    selection: Selection
    strategy: Strategy[Any]
    sampling: Sampling
    jobs: list[Job]
    response_model: str
    stream: bool
    include_usage: bool
    caching: ResponseCaching
    #: The fields that shape the answer, for the call that produces it.
    shape: AnswerShape = field(default_factory=AnswerShape)
    #: How much of the work behind the answer the response shows (``ponder.reasoning``).
    reasoning: ReasoningLevel = "none"
    #: When a latency budget wants the answer by.
    deadline: Deadline | None = None

    @property
    def budget(self) -> UserBudget | None:
        return self.selection.budget

    @property
    def response_id(self) -> str:
        return self.endpoint.id_prefix + self.request_id


class PlanBuilder:
    """Turns a validated request body into a :class:`Plan`, or refuses it with a 4xx."""

    def __init__(
        self,
        settings: Settings,
        engines: EngineProvider,
        registry: Registry,
        *,
        caching: bool,
        reward_model: bool = False,
        frontier: FrontierStore | None = None,
        paces: Paces | None = None,
    ) -> None:
        self.settings = settings
        self.limits: Limits = settings.limits
        self.engines = engines
        self.registry = registry
        self.caching = caching
        self.reward_model = reward_model
        self.frontier = frontier
        self.paces = paces or Paces()

    def _select(
        self, body: CompletionBody, reports: Sequence[EvalReport] = (), prompt: Prompt = ""
    ) -> Selection:
        options = body.ponder or PonderOptions()

        def chooser(budget: UserBudget) -> tuple[str, dict[str, Any], BudgetInfo]:
            return self._choose(budget, body, reports, prompt)

        return select(
            model=body.model,
            options=options,
            reasoning_effort=body.reasoning_effort,
            registry=self.registry,
            default_strategy=self.settings.default_strategy,
            presets=self.settings.presets,
            choose=chooser,
        )

    def _choose(
        self,
        budget: UserBudget,
        body: CompletionBody,
        reports: Sequence[EvalReport],
        prompt: Prompt,
    ) -> tuple[str, dict[str, Any], BudgetInfo]:
        candidates = measured(reports, self.registry, self.paces.of(body.model).latency_scale)
        source = "frontier"
        if not candidates:
            source = "ladder"
            max_tokens = endpoint_for(body).max_tokens(body) or self.settings.default_max_tokens
            call_tokens = min(max_tokens, self.settings.ladder_call_tokens)
            pace = self.paces.of(body.model)
            candidates = [
                c
                for c in ladder(pace, call_tokens, estimated_tokens(prompt))
                if c.strategy in self.registry
            ]
            if not candidates:  # a registry without the ladder's strategies
                return (
                    self.settings.default_strategy,
                    {},
                    BudgetInfo(
                        budget=budget.model_dump(exclude_none=True),
                        source="ladder",
                        config=self.settings.default_strategy,
                        why="no rung of the default ladder is installed: the default strategy",
                    ),
                )
        chosen, why = choose(budget, candidates, source)
        info = BudgetInfo(
            budget=budget.model_dump(exclude_none=True),
            source="frontier" if source == "frontier" else "ladder",
            config=chosen.config,
            why=why,
            expected=expected(chosen),
            latency_scale=chosen.latency_scale,
        )
        return chosen.strategy, chosen.params, info

    async def check_prompt_size(self, body: CompletionBody) -> list[Prompt]:
        """Refuse too many messages, or a prompt over ``max_prompt_tokens`` in the model's own
        tokenizer; the engine is asked only about a prompt whose bytes pass the cap (a token
        is at least a byte), so ordinary requests cost no call. The prompts, as read."""
        endpoint = endpoint_for(body)
        prompts = endpoint.prompts(body)
        try:
            for prompt in prompts:
                if not isinstance(prompt, str):
                    self.limits.check_messages(len(prompt))
            texts = [render_prompt(p) for p in prompts]
            large = [t for t in texts if len(t.encode()) > self.limits.max_prompt_tokens]
            if not large:
                return prompts
            selection = self._select(body)
            self._check_model(selection.model, body.model)
            engine = self.engines.session(selection.model)
            param = "messages" if endpoint.kind == "chat" else "prompt"
            for text in large:
                self.limits.check_prompt_tokens(await engine.count_tokens(text), param)
        except OverCap as error:
            raise InvalidRequest(str(error), param=error.param, code="over_cap") from None
        return prompts

    async def reports_for(self, body: CompletionBody) -> list[EvalReport]:
        """The evaluation results a budget may choose from (none when the request names its
        strategy or has no budget); a frontier that cannot be read leaves the ladder."""
        options = body.ponder or PonderOptions()
        preset = self.settings.presets.get(body.reasoning_effort or "")
        wants = options.budget is not None or (preset is not None and preset.budget is not None)
        if self.frontier is None or not wants or named_strategy(body.model, options, self.registry):
            return []
        try:
            return await self.frontier.reports(body.model)
        except Exception as error:  # Redis down: the default ladder still serves
            logger.warning("the frontier could not be read (%s): using the default ladder", error)
            return []

    async def with_text_prompts(self, body: CompletionBody) -> CompletionBody:
        """``body`` with every prompt of token ids as the text the model's engine reads in
        them: strategies reason over text, and every call re-tokenizes it the same way."""
        if not isinstance(body, CompletionRequest) or not body.has_token_ids:
            return body
        selection = self._select(body)
        self._check_model(selection.model, body.model)
        engine = self.engines.session(selection.model)
        try:
            texts = [
                p if isinstance(p, str) else await engine.detokenize(p) for p in body.prompt_list()
            ]
        except EngineRejected as error:
            raise InvalidRequest(
                f"the model's tokenizer does not read these token ids: {error}",
                param="prompt",
                code="invalid_prompt",
            ) from None
        return body.model_copy(update={"prompt": texts})

    def build(
        self,
        body: CompletionBody,
        reports: Sequence[EvalReport] = (),
        prompts: list[Prompt] | None = None,
    ) -> Plan:
        """The plan of ``body``; ``prompts``: its prompts when already read (they are the
        same each time, and a long conversation's messages cost a pass to convert)."""
        endpoint = endpoint_for(body)
        prompts = endpoint.prompts(body) if prompts is None else prompts
        options = body.ponder or PonderOptions()
        selection = self._select(body, reports, prompts[0] if prompts else "")
        strategy = self.registry.build(selection.strategy, selection.params)
        sampling = self._sampling(body, endpoint.max_tokens(body))
        shape = answer_shape(
            body.model_extra or {}, chat=endpoint.kind == "chat", stop=sampling.stop
        )
        sampling = replace(sampling, stop=())
        self._check_caps(body.n * len(prompts), endpoint.max_tokens(body), strategy, sampling)
        self._check_model(selection.model, body.model)
        if strategy.uses_reward_model and not self.reward_model:
            raise InvalidRequest(
                "ponder.scorer 'reward' needs a reward model, and this server has none "
                "(start it with --reward-url)",
                param="ponder.scorer",
                code="invalid_parameter",
            )
        if selection.budget is not None:
            self._check_budget(selection.budget, selection.model, prompts)
        return Plan(
            request_id=uuid.uuid4().hex,
            endpoint=endpoint,
            selection=selection,
            strategy=strategy,
            sampling=sampling,
            jobs=plan_jobs(strategy, prompts, body.n, max_all_tokens=self.limits.max_all_tokens),
            response_model=body.model,
            stream=body.stream,
            include_usage=bool(body.stream_options and body.stream_options.include_usage),
            caching=self._caching(
                options, endpoint, body, prompts, selection, strategy, sampling, shape
            ),
            shape=shape,
            # A text completion has no field for reasoning: only its stream shows it.
            reasoning=options.reasoning if endpoint.kind == "chat" or body.stream else "none",
            deadline=None if selection.budget is None else selection.budget.starting_now(),
        )

    def _check_budget(self, budget: UserBudget, model: str, prompts: Sequence[Prompt]) -> None:
        """Refuse a budget too small for one call: it could not even be tried."""
        reading = max((estimated_tokens(p) for p in prompts), default=0)
        needed = reading + MIN_CALL_TOKENS
        for name in ("sequential_tokens", "all_tokens"):
            tokens = getattr(budget, name)
            if tokens is not None and tokens < needed:
                raise InvalidRequest(
                    f"ponder.budget.{name} {tokens} cannot hold one call: the prompt alone is "
                    f"about {reading} tokens, and a call writes at least {MIN_CALL_TOKENS}",
                    param=f"ponder.budget.{name}",
                    code="invalid_value",
                )
        if budget.latency_s is not None:
            one_call = self.paces.of(model).seconds_for(MIN_CALL_TOKENS)
            if budget.latency_s < one_call:
                raise InvalidRequest(
                    f"ponder.budget.latency_s {budget.latency_s:g} is below what one call needs "
                    f"on this server (about {one_call:.2f} s, as measured)",
                    param="ponder.budget.latency_s",
                    code="invalid_value",
                )

    def _sampling(self, body: CompletionBody, max_tokens: int | None) -> Sampling:
        fields = body.model_extra or {}
        refuse_unsupported(fields)
        extra = {
            k: v for k, v in fields.items() if k not in WITHOUT_EFFECT and k not in ANSWER_FIELDS
        }
        self._check_forwarded(extra, text=isinstance(body, CompletionRequest))
        stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
        return Sampling(
            max_tokens=max_tokens or self.settings.default_max_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            seed=body.seed,
            stop=stop,
            presence_penalty=body.presence_penalty,
            frequency_penalty=body.frequency_penalty,
            extra=extra,
        )

    def _check_forwarded(self, extra: dict[str, Any], *, text: bool) -> None:
        """Refuse engine fields that would pass max_tokens, and any the operator's allow-list
        (``forward_fields``) leaves out: never forwarded silently, never dropped silently."""
        amount = GENERATION_AMOUNT | ({"max_completion_tokens"} if text else set())
        allowed = self.settings.forward_fields
        for name in extra:
            if name in amount:
                raise InvalidRequest(
                    f"{name} is not accepted: it changes how much the engine generates; "
                    "use max_tokens (and n)",
                    param=name,
                    code="unsupported_parameter",
                )
            if allowed is not None and name not in allowed:
                raise InvalidRequest(
                    f"{name} is not a field this server forwards to its engines "
                    f"(forward_fields: {', '.join(sorted(allowed)) or 'none'})",
                    param=name,
                    code="unsupported_parameter",
                )

    def _check_caps(
        self,
        answers: int,
        max_tokens: int | None,
        strategy: Strategy[Any],
        sampling: Sampling,
    ) -> None:
        try:
            self.limits.check_n(answers)
            if max_tokens is not None:
                self.limits.check_max_tokens(max_tokens)
            per_call = strategy.params.max_tokens or sampling.max_tokens
            assert per_call is not None  # the sampling always has a bound
            self.limits.check_max_tokens(per_call, param="ponder.max_tokens")
            strategy.check_limits(self.limits, per_call)
        except OverCap as error:
            raise InvalidRequest(str(error), param=error.param, code="over_cap") from None

    def _check_model(self, model: str, asked: str) -> None:
        if model in self.engines.models():
            return
        if not self.engines.ready and not self.engines.models():
            raise NoEngineReady("no engine is ready yet")
        raise ModelNotFound(
            f"model {asked!r} does not exist; GET /v1/models lists the models", param="model"
        )

    def _caching(
        self,
        options: PonderOptions,
        endpoint: Endpoint,
        body: CompletionBody,
        prompts: list[Prompt],
        selection: Selection,
        strategy: Strategy[Any],
        sampling: Sampling,
        shape: AnswerShape,
    ) -> ResponseCaching:
        temperature = (
            strategy.params.temperature
            if strategy.params.temperature is not None
            else sampling.temperature
        )
        greedy_or_seeded = sampling.seed is not None or temperature == 0
        mode = options.cache
        if not self.caching or mode is CacheMode.NO_STORE or not greedy_or_seeded:
            return ResponseCaching(mode)
        key = cache_key(
            "response",
            {
                "kind": endpoint.kind,
                "model": selection.model,
                "response_model": body.model,
                "strategy": selection.strategy,
                "params": strategy.params.model_dump(mode="json"),
                "prompts": [prompt_form(prompt) for prompt in prompts],
                "n": body.n,
                "sampling": sampling.to_body(),
                "shape": repr(shape),
                "reasoning": options.reasoning,
                "budget": None
                if selection.budget is None
                else selection.budget.model_dump(exclude_none=True),
            },
        )
        return ResponseCaching(mode, key)
