"""Write Ponder's three Grafana dashboards as JSON (run it after changing a panel).

    python deploy/grafana/build_dashboards.py

The JSON files in dashboards/ beside this script (and their copies in the Helm
chart, which can only package files inside it) are its output and are what
Grafana loads; a test keeps them equal to what this script writes, and
another evaluates every PromQL expression in them against a real Prometheus.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
OUTPUTS = (HERE / "dashboards", HERE.parent / "helm" / "ponder" / "dashboards")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"

Panel = dict[str, Any]


def target(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False) -> dict[str, Any]:
    query: dict[str, Any] = {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend,
        "refId": ref,
    }
    if instant:
        query.update(instant=True, range=False, format="table")
    return query


def timeseries(title: str, unit: str, *targets: dict[str, Any], description: str = "") -> Panel:
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom"}},
        "targets": list(targets),
    }


def stat(title: str, unit: str, expr: str, description: str = "") -> Panel:
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [target(expr)],
    }


#: The evaluation series a dashboard shows: the chosen datasets and models.
EVAL = 'dataset=~"$dataset", model=~"$model"'


def tradeoff_chart(title: str, x_field: str, x_metric: str, x_unit: str, cost: str) -> Panel:
    """Accuracy (y) against a cost (x), one point per configuration: the PDR paper's figure,
    with the ends of each accuracy's 95% interval as points above and below it, and the
    configurations on the Pareto frontier for that cost (``ponder_eval_pareto``, its
    ``cost`` label) joined by a dashed line."""
    pareto = (
        f"ponder_eval_accuracy{{{EVAL}}} and on(dataset, model, strategy, config) "
        f'(ponder_eval_pareto{{{EVAL}, cost="{cost}"}} == 1)'
    )
    return {
        "type": "xychart",
        "title": title,
        "description": "One point per evaluated configuration (hover: its config); the "
        "accuracy's 95% interval as the points above and below it; the dashed line joins "
        "the Pareto frontier (no other configuration is both cheaper and at least as "
        "accurate). Up and to the left is better; published by `ponder eval` through "
        "POST /v1/eval/results.",
        "datasource": DATASOURCE,
        "targets": [
            target(f"ponder_eval_accuracy{{{EVAL}}}", ref="accuracy", instant=True),
            target(f"ponder_eval_accuracy_ci_low{{{EVAL}}}", ref="low", instant=True),
            target(f"ponder_eval_accuracy_ci_high{{{EVAL}}}", ref="high", instant=True),
            target(f"{x_metric}{{{EVAL}}}", ref="cost", instant=True),
            target(pareto, ref="pareto", instant=True),
        ],
        "transformations": [
            {"id": "merge", "options": {}},
            # Rows in order of cost: the frontier's line joins its points left to right.
            {"id": "sortBy", "options": {"sort": [{"field": "Value #cost"}]}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True},
                    "renameByName": {
                        "Value #accuracy": "accuracy",
                        "Value #low": "95% CI low",
                        "Value #high": "95% CI high",
                        "Value #cost": x_field,
                        "Value #pareto": "Pareto frontier",
                    },
                },
            },
        ],
        "fieldConfig": {
            "defaults": {"custom": {"show": "points", "pointSize": {"fixed": 8}}},
            "overrides": [
                *(
                    {
                        "matcher": {"id": "byName", "options": name},
                        "properties": [
                            {"id": "unit", "value": "percentunit"},
                            {"id": "min", "value": 0},
                            {"id": "max", "value": 1},
                            *(
                                [{"id": "custom.pointSize", "value": {"fixed": 4}}]
                                if name != "accuracy"
                                else []
                            ),
                        ],
                    }
                    for name in ("accuracy", "95% CI low", "95% CI high")
                ),
                {
                    "matcher": {"id": "byName", "options": x_field},
                    "properties": [{"id": "unit", "value": x_unit}],
                },
                {
                    "matcher": {"id": "byName", "options": "Pareto frontier"},
                    "properties": [
                        {"id": "unit", "value": "percentunit"},
                        {"id": "custom.show", "value": "points+lines"},
                        {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                        {"id": "color", "value": {"mode": "fixed", "fixedColor": "gray"}},
                    ],
                },
            ],
        },
        "options": {
            "mapping": "auto",
            "dims": {
                "x": x_field,
                "exclude": ["dataset", "model", "strategy", "config", "items"],
            },
            "series": [],
            "legend": {"showLegend": True, "displayMode": "table", "placement": "right"},
            "tooltip": {"mode": "multi"},
        },
    }


def results_table() -> Panel:
    refs = {
        "accuracy": "ponder_eval_accuracy",
        "ci_low": "ponder_eval_accuracy_ci_low",
        "ci_high": "ponder_eval_accuracy_ci_high",
        "latency": "ponder_eval_mean_latency_seconds",
        "sequential": "ponder_eval_mean_sequential_tokens",
        "all": "ponder_eval_mean_all_tokens",
        "items": "ponder_eval_items",
    }
    return {
        "type": "table",
        "title": "Evaluation results",
        "description": "Per configuration: accuracy and its 95% interval, mean latency, "
        "mean sequential and all tokens (B_seq, B_total) per problem, problems graded.",
        "datasource": DATASOURCE,
        "targets": [
            target(f"{metric}{{{EVAL}}}", ref=ref, instant=True) for ref, metric in refs.items()
        ],
        "transformations": [
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True},
                    "renameByName": {f"Value #{ref}": ref for ref in refs},
                },
            },
        ],
        "fieldConfig": {
            "defaults": {},
            "overrides": [
                *(
                    {
                        "matcher": {"id": "byName", "options": name},
                        "properties": [{"id": "unit", "value": "percentunit"}],
                    }
                    for name in ("accuracy", "ci_low", "ci_high")
                ),
                {
                    "matcher": {"id": "byName", "options": "latency"},
                    "properties": [{"id": "unit", "value": "s"}],
                },
            ],
        },
    }


def variable_datasource() -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {"text": "Prometheus", "value": "prometheus"},
    }


def variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": name},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {"text": "All", "value": "$__all"},
    }


def dashboard(uid: str, title: str, panels: list[Panel], variables: list[dict[str, Any]]) -> Any:
    laid_out = []
    x = y = 0  # half-width panels fill rows of two; a table takes a row of its own
    for number, panel in enumerate(panels):
        width = 24 if panel["type"] == "table" else 12
        if x + width > 24:
            x, y = 0, y + 8
        laid_out.append(
            {**panel, "id": number + 1, "gridPos": {"h": 8, "w": width, "x": x, "y": y}}
        )
        x += width
    return {
        "uid": uid,
        "title": title,
        "tags": ["ponder"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [variable_datasource(), *variables]},
        "panels": laid_out,
    }


def tradeoffs() -> Any:
    return dashboard(
        "ponder-tradeoffs",
        "Ponder / Reasoning trade-offs",
        [
            tradeoff_chart(
                "Accuracy against latency",
                "latency",
                "ponder_eval_mean_latency_seconds",
                "s",
                "latency_seconds",
            ),
            tradeoff_chart(
                "Accuracy against sequential tokens",
                "sequential tokens",
                "ponder_eval_mean_sequential_tokens",
                "short",
                "sequential_tokens",
            ),
            tradeoff_chart(
                "Accuracy against all tokens (B_total, cost)",
                "all tokens (B_total)",
                "ponder_eval_mean_all_tokens",
                "short",
                "all_tokens",
            ),
            results_table(),
        ],
        [
            variable("dataset", "Dataset", "label_values(ponder_eval_accuracy, dataset)"),
            variable(
                "model",
                "Model",
                'label_values(ponder_eval_accuracy{dataset=~"$dataset"}, model)',
            ),
        ],
    )


def serving() -> Any:
    sel = 'model=~"$model"'
    quantiles = [
        target(
            f"histogram_quantile({q}, sum by (le, strategy) "
            f"(rate(ponder_request_duration_seconds_bucket{{{sel}}}[{RATE}])))",
            f"p{int(q * 100)} {{{{strategy}}}}",
            ref=f"p{int(q * 100)}",
        )
        for q in (0.5, 0.95, 0.99)
    ]
    ttft = [
        target(
            f"histogram_quantile({q}, sum by (le, strategy) "
            f"(rate(ponder_time_to_first_token_seconds_bucket{{{sel}}}[{RATE}])))",
            f"p{int(q * 100)} {{{{strategy}}}}",
            ref=f"p{int(q * 100)}",
        )
        for q in (0.5, 0.95)
    ]
    hits = f"sum by (level) (rate(ponder_cache_hits_total[{RATE}]))"
    misses = f"sum by (level) (rate(ponder_cache_misses_total[{RATE}]))"
    return dashboard(
        "ponder-serving",
        "Ponder / Serving",
        [
            timeseries(
                "Requests per second",
                "reqps",
                target(
                    f"sum by (strategy) (rate(ponder_requests_total{{{sel}}}[{RATE}]))",
                    "{{strategy}}",
                ),
            ),
            timeseries("Latency", "s", *quantiles),
            timeseries("Time to first token (streamed requests)", "s", *ttft),
            timeseries(
                "Tokens per second",
                "short",
                target(
                    f'sum by (strategy) (rate(ponder_tokens_total{{kind="completion"}}[{RATE}]))',
                    "completion {{strategy}}",
                    ref="completion",
                ),
                target(
                    f'sum by (strategy) (rate(ponder_tokens_total{{kind="all"}}[{RATE}]))',
                    "all calls {{strategy}}",
                    ref="all",
                ),
                description="Completion tokens of answers, and tokens read and written over "
                "every engine call (B_total).",
            ),
            timeseries(
                "Errors per second",
                "reqps",
                target(
                    f'sum by (status) (rate(ponder_requests_total{{status!="200",{sel}}}[{RATE}]))',
                    "{{status}}",
                ),
            ),
            timeseries(
                "Cache hit ratio",
                "percentunit",
                target(f"{hits} / ({hits} + {misses})", "{{level}}"),
                description="Response level: whole answers; call level: engine calls of "
                "strategies.",
            ),
            timeseries(
                "Cache errors per second",
                "ops",
                target(
                    f"sum by (backend, operation) (rate(ponder_cache_errors_total[{RATE}]))",
                    "{{backend}} {{operation}}",
                ),
                description="Redis down, slow or out of memory: requests go on uncached.",
            ),
            timeseries(
                "Requests in flight",
                "short",
                target("sum(ponder_in_flight_requests)", "in flight"),
            ),
            timeseries(
                "Rounds and drafts per request (median)",
                "short",
                target(
                    f"histogram_quantile(0.5, sum by (le, strategy) "
                    f"(rate(ponder_rounds_bucket[{RATE}])))",
                    "rounds {{strategy}}",
                    ref="rounds",
                ),
                target(
                    f"histogram_quantile(0.5, sum by (le, strategy) "
                    f"(rate(ponder_drafts_bucket[{RATE}])))",
                    "drafts {{strategy}}",
                    ref="drafts",
                ),
            ),
            timeseries(
                "Budget requests per second",
                "reqps",
                target(
                    f"sum by (source, stopped) (rate(ponder_budget_requests_total[{RATE}]))",
                    "{{source}}, stopped: {{stopped}}",
                ),
                description="Requests served under a budget (ponder.budget, reasoning_effort): "
                "configuration from the frontier, the default ladder or named by the request; "
                "stopped: what cut the run short (none: it finished its plan).",
            ),
            timeseries(
                "Workspace tokens (p95)",
                "short",
                target(
                    f"histogram_quantile(0.95, sum by (le, strategy) "
                    f"(rate(ponder_workspace_tokens_bucket[{RATE}])))",
                    "{{strategy}}",
                ),
            ),
        ],
        [variable("model", "Model", "label_values(ponder_requests_total, model)")],
    )


def engines() -> Any:
    return dashboard(
        "ponder-engines",
        "Ponder / Engines",
        [
            timeseries(
                "vLLM requests running and waiting",
                "short",
                target(
                    'sum by (instance) (vllm:num_requests_running{job="vllm"})',
                    "running {{instance}}",
                    ref="running",
                ),
                target(
                    'sum by (instance) (vllm:num_requests_waiting{job="vllm"})',
                    "waiting {{instance}}",
                    ref="waiting",
                ),
            ),
            timeseries(
                "vLLM KV-cache usage",
                "percentunit",
                target('max by (instance) (vllm:kv_cache_usage_perc{job="vllm"})', "{{instance}}"),
            ),
            timeseries(
                "vLLM prefix-cache hit rate",
                "percentunit",
                target(
                    f'sum by (instance) (rate(vllm:prefix_cache_hits_total{{job="vllm"}}[{RATE}]))'
                    f" / sum by (instance) "
                    f'(rate(vllm:prefix_cache_queries_total{{job="vllm"}}[{RATE}]))',
                    "{{instance}}",
                ),
                description="Strategies send many prompts with one prefix (drafts of a round, "
                "refinements of one question): Ponder keeps a request on one replica for this.",
            ),
            timeseries(
                "vLLM time to first token (p95)",
                "s",
                target(
                    f"histogram_quantile(0.95, sum by (le, instance) "
                    f'(rate(vllm:time_to_first_token_seconds_bucket{{job="vllm"}}[{RATE}])))',
                    "{{instance}}",
                ),
            ),
            timeseries(
                "vLLM generation tokens per second",
                "short",
                target(
                    f'sum by (instance) (rate(vllm:generation_tokens_total{{job="vllm"}}[{RATE}]))',
                    "{{instance}}",
                ),
            ),
            timeseries(
                "Ponder engine calls per second, by replica",
                "ops",
                target(
                    f"sum by (replica) (rate(ponder_engine_call_duration_seconds_count[{RATE}]))",
                    "{{replica}}",
                ),
            ),
            timeseries(
                "Ponder engine call latency (p95), by replica and role",
                "s",
                target(
                    f"histogram_quantile(0.95, sum by (le, replica, role) "
                    f"(rate(ponder_engine_call_duration_seconds_bucket[{RATE}])))",
                    "{{replica}} {{role}}",
                ),
            ),
            timeseries(
                "Ponder engine call errors per second, by replica",
                "ops",
                target(
                    f"sum by (replica, status) (rate(ponder_engine_call_errors_total[{RATE}]))",
                    "{{replica}} {{status}}",
                ),
                description="503: replica down (the request moved to another); 504: timed "
                "out; 4xx: the engine refused the call.",
            ),
        ],
        [],
    )


DASHBOARDS = {"tradeoffs.json": tradeoffs, "serving.json": serving, "engines.json": engines}


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def main() -> None:
    for folder in OUTPUTS:
        folder.mkdir(exist_ok=True)
        for name, text in render().items():
            (folder / name).write_text(text)
            print(f"wrote {folder / name}")


if __name__ == "__main__":
    main()
