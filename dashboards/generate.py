# ruff: noqa: E501  (panel descriptions and PromQL read best on one line)
"""Generate the Grafana dashboards of llm-autoscaler with grafana-foundation-sdk (pinned).

    python -m dashboards.generate           # write dashboards/json/*.json
    python -m dashboards.generate --check   # exit 1 when a committed JSON file is stale

``grafana-foundation-sdk==0.0.21`` exactly: an unpinned install resolves to a legacy
``<epoch>!10.1.0`` build with another API (see ../shared/research/dashboards.md, section 2).

Three dashboards, each with datasource, namespace and InferenceService variables:
*Autoscaler* (what it decided and why), *LLM serving saturation* (vLLM per ISVC and per
pod) and *GPU* (DCGM per pod and node, joined to ISVCs by the predictor pod name
``<isvc>-predictor-...``). Every panel has a description saying what to look for and the
metrics it reads. Label conventions (see docs/metrics.md): the service's own metrics carry
``job="llm-autoscaler"``; vLLM series carry ``namespace``, ``pod`` and ``isvc`` (relabelled
from the pod label ``serving.kserve.io/inferenceservice``); dcgm-exporter series carry the
workload in ``exported_namespace``/``exported_pod`` and the node in ``Hostname``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# The classic dashboard JSON (schemaVersion 4x) imports into Grafana 10-12; the SDK warns on
# import that it prefers its v2 schema, which only Grafana 12's new API reads.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Prefer using dashboardv2", DeprecationWarning)
    from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, timeseries
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import common as cm
    from grafana_foundation_sdk.models.dashboard import (
        DashboardCursorSync,
        DashboardLinkType,
        DataSourceRef,
        DynamicConfigValue,
        VariableRefresh,
        VariableSort,
    )

SDK_VERSION = "0.0.21"
OUT = Path(__file__).resolve().parent / "json"
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
JOB = 'job="llm-autoscaler"'
OWN = f'{JOB}, namespace=~"$namespace", isvc=~"$isvc"'
LEADER = f"on (instance) llm_autoscaler_leader{{{JOB}}} == 1"
VLLM = 'namespace=~"$namespace", isvc=~"$isvc"'
VLLM_POD = 'namespace=~"$namespace", isvc=~"$isvc", pod=~"$pod"'
GPU = 'exported_namespace=~"$namespace", exported_pod=~"($isvc)-predictor-.*"'


# ---------------------------------------------------------------------------------- helpers
def q(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> prometheus.Dataquery:
    d = prometheus.Dataquery().expr(expr).legend_format(legend or "__auto").ref_id(ref)
    d = d.datasource(DS)
    return d.instant() if instant else d.range()


def ts(
    title: str,
    description: str,
    targets: Sequence[tuple[str, str]],
    unit: str = "short",
    w: int = 12,
    h: int = 8,
    stack: bool = False,
    minimum: float | None = 0,
) -> timeseries.Panel:
    p = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .unit(unit)
        .height(h)
        .span(w)
        .line_width(1)
        .fill_opacity(10)
        .legend(
            common.VizLegendOptions()
            .display_mode(cm.LegendDisplayMode.TABLE)
            .placement(cm.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(
            common.VizTooltipOptions()
            .mode(cm.TooltipDisplayMode.MULTI)
            .sort(cm.SortOrder.DESCENDING)
        )
    )
    if minimum is not None:
        p = p.min(minimum)
    if stack:
        p = p.stacking(common.StackingConfig().mode(cm.StackingMode.NORMAL))
    for i, (expr, legend) in enumerate(targets):
        p = p.with_target(q(expr, legend, chr(ord("A") + i)))
    return p


def st(title: str, description: str, expr: str, unit: str = "short", w: int = 6) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .unit(unit)
        .height(4)
        .span(w)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]))
        .with_target(q(expr, title, instant=True))
    )


def ds_var() -> dashboard.DatasourceVariable:
    return dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")


def var(name: str, label: str, query: str) -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(DS)
        .query(query)
        .definition(query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def base(uid: str, title: str, description: str) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["llm-autoscaler", "kserve", "vllm"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .editable()
        .link(
            dashboard.DashboardLink("llm-autoscaler")
            .type(DashboardLinkType.DASHBOARDS)
            .tags(["llm-autoscaler"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
        .with_variable(ds_var())
    )


# ------------------------------------------------------------------------------- dashboards
def autoscaler() -> dashboard.Dashboard:
    own = f"{{{OWN}}}"
    return (
        base(
            "llm-autoscaler",
            "LLM autoscaler",
            "What llm-autoscaler decided for each InferenceService and why: replicas, signals "
            "against targets, decisions by rule, loop health.",
        )
        .with_variable(
            var(
                "namespace",
                "Namespace",
                f"label_values(llm_autoscaler_desired_replicas{{{JOB}}}, namespace)",
            )
        )
        .with_variable(
            var(
                "isvc",
                "InferenceService",
                f'label_values(llm_autoscaler_desired_replicas{{{JOB}, namespace=~"$namespace"}}, isvc)',
            )
        )
        .with_row(dashboard.Row("Health"))
        .with_panel(
            st(
                "Leaders",
                "Replicas holding the leader Lease. Exactly 1 is healthy: 0 means nothing scales (LLMAutoscalerNoLeader), 2 means split brain. Metric: llm_autoscaler_leader.",
                f"sum(llm_autoscaler_leader{{{JOB}}})",
            )
        )
        .with_panel(
            st(
                "Scaled InferenceServices",
                "InferenceServices the leader's loop scales (class external, resolved spec). A drop means ISVCs lost their annotation or spec. Metric: llm_autoscaler_targets.",
                f"max(llm_autoscaler_targets{{{JOB}}} and {LEADER})",
            )
        )
        .with_panel(
            st(
                "Snapshot age",
                "Age of the leader's newest metric snapshot. Above stale_after_seconds decisions freeze (never scale down on missing data). Metric: llm_autoscaler_snapshot_age_seconds.",
                f"max(llm_autoscaler_snapshot_age_seconds{{{JOB}}} and {LEADER})",
                unit="s",
            )
        )
        .with_panel(
            st(
                "Errors/s",
                "All errors of the service per second over 5 minutes; should be 0. See the Errors panel for the kind. Metric: llm_autoscaler_errors_total.",
                f"sum(rate(llm_autoscaler_errors_total{{{JOB}}}[5m])) or vector(0)",
                unit="reqps",
            )
        )
        .with_row(dashboard.Row("Replicas"))
        .with_panel(
            ts(
                "Desired vs current vs ready replicas",
                "Per InferenceService: what the policy wants (desired), what the Deployment's scale says (current) and the Ready pods. Desired above ready for long means pods cannot start (no GPU, crash) - LLMAutoscalerReplicasMismatch. Dashed lines: resolved min and max. Metrics: llm_autoscaler_{desired,current,ready,min,max}_replicas.",
                [
                    (
                        f"max by (namespace, isvc) (llm_autoscaler_desired_replicas{own} and {LEADER})",
                        "{{namespace}}/{{isvc}} desired",
                    ),
                    (
                        f"max by (namespace, isvc) (llm_autoscaler_current_replicas{own} and {LEADER})",
                        "{{namespace}}/{{isvc}} current",
                    ),
                    (
                        f"max by (namespace, isvc) (llm_autoscaler_ready_replicas{own} and {LEADER})",
                        "{{namespace}}/{{isvc}} ready",
                    ),
                    (
                        f"max by (namespace, isvc) (llm_autoscaler_min_replicas{own} and {LEADER})",
                        "{{namespace}}/{{isvc}} min",
                    ),
                    (
                        f"max by (namespace, isvc) (llm_autoscaler_max_replicas{own} and {LEADER})",
                        "{{namespace}}/{{isvc}} max",
                    ),
                ],
                w=24,
                h=9,
            ).override_by_regexp(
                ".* (min|max)$",
                [
                    DynamicConfigValue(
                        id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}
                    )
                ],
            )
        )
        .with_panel(
            ts(
                "Signal observed vs target (per replica)",
                "Each scaling signal's observed per-replica value next to its target. Observed well above target while replicas do not grow means the ISVC is at max (LLMAutoscalerSaturatedAtMax) or pods are starting. Metrics: llm_autoscaler_signal_observed, llm_autoscaler_signal_target.",
                [
                    (
                        f"max by (namespace, isvc, signal) (llm_autoscaler_signal_observed{own} and {LEADER})",
                        "{{isvc}} {{signal}} observed",
                    ),
                    (
                        f"max by (namespace, isvc, signal) (llm_autoscaler_signal_target{own} and {LEADER})",
                        "{{isvc}} {{signal}} target",
                    ),
                ],
                w=24,
            )
        )
        .with_row(dashboard.Row("Decisions"))
        .with_panel(
            ts(
                "Scale decisions by rule and direction",
                "Decisions that changed replicas, per minute, by the rule that won (signal, panic, stabilization, rate limit, clamp) and direction. Ups and downs alternating within the hour is thrashing (LLMAutoscalerThrashing). Metric: llm_autoscaler_decisions_total.",
                [
                    (
                        f'sum by (isvc, rule, direction) (increase(llm_autoscaler_decisions_total{{{OWN}, direction!="none"}}[$__rate_interval]))',
                        "{{isvc}} {{direction}} ({{rule}})",
                    )
                ],
                stack=True,
            )
        )
        .with_panel(
            ts(
                "Scale writes by result",
                "Writes to deployments/scale per second. 'conflict' means someone else changed replicas between read and write (another controller, kubectl scale, a second leader). Metric: llm_autoscaler_scale_writes_total.",
                [
                    (
                        f"sum by (isvc, result) (rate(llm_autoscaler_scale_writes_total{own}[$__rate_interval]))",
                        "{{isvc}} {{result}}",
                    )
                ],
                unit="ops",
            )
        )
        .with_row(dashboard.Row("Loop and sources"))
        .with_panel(
            ts(
                "Tick duration",
                "Time of one scaling-loop tick (snapshot, decisions, writes), p50/p95/p99. A p99 near tick_seconds means the loop falls behind. Metric: llm_autoscaler_tick_duration_seconds.",
                [
                    (
                        f"histogram_quantile({p}, sum by (le) (rate(llm_autoscaler_tick_duration_seconds_bucket{{{JOB}}}[$__rate_interval])))",
                        f"p{int(p * 100)}",
                    )
                    for p in (0.5, 0.95, 0.99)
                ],
                unit="s",
                w=8,
            )
        )
        .with_panel(
            ts(
                "Snapshot age and availability",
                "Age of the newest metric snapshot per source (direct scrape or Prometheus), and whether the source answered on the last tick (1 = yes). Age above 60 s or availability 0 for 5 minutes fires LLMAutoscalerMetricsStale. Metrics: llm_autoscaler_snapshot_age_seconds, llm_autoscaler_snapshot_available.",
                [
                    (
                        f"max by (source) (llm_autoscaler_snapshot_age_seconds{{{JOB}}} and {LEADER})",
                        "{{source}} age",
                    ),
                    (
                        f"min by (source) (llm_autoscaler_snapshot_available{{{JOB}}} and {LEADER})",
                        "{{source}} available",
                    ),
                ],
                unit="s",
                w=8,
            )
        )
        .with_panel(
            ts(
                "Source queries/s",
                "PromQL queries or pod scrapes per second by source. With Prometheus it stays flat as ISVCs are added (one query per signal for all targets). Metric: llm_autoscaler_source_queries_total.",
                [
                    (
                        f"sum by (source) (rate(llm_autoscaler_source_queries_total{{{JOB}}}[$__rate_interval]))",
                        "{{source}}",
                    )
                ],
                unit="ops",
                w=8,
            )
        )
        .with_panel(
            ts(
                "Errors by kind",
                "Errors per second by kind (tick, target, target-timeout, invalid-spec, snapshot-unavailable). Anything non-zero for 10 minutes fires LLMAutoscalerErrors; see docs/runbook.md. Metric: llm_autoscaler_errors_total.",
                [
                    (
                        f"sum by (kind) (rate(llm_autoscaler_errors_total{{{JOB}}}[$__rate_interval]))",
                        "{{kind}}",
                    )
                ],
                unit="ops",
                w=8,
            )
        )
        .with_panel(
            ts(
                "Leader by replica",
                "1 for the replica holding the Lease. A handover shows as the 1 moving from one instance to another; gaps mean no leader. Metric: llm_autoscaler_leader.",
                [(f"max by (instance) (llm_autoscaler_leader{{{JOB}}})", "{{instance}}")],
                w=8,
            )
        )
        .with_panel(
            ts(
                "Reconciles and metrics API requests",
                "InferenceService reconciles by result, and external metrics API requests by HTTP code (the HPA controller's reads through the aggregator). 5xx codes fire LLMAutoscalerMetricsAPIErrors. Metrics: llm_autoscaler_reconcile_total, llm_autoscaler_metrics_api_requests_total.",
                [
                    (
                        f"sum by (result) (rate(llm_autoscaler_reconcile_total{{{JOB}}}[$__rate_interval]))",
                        "reconcile {{result}}",
                    ),
                    (
                        f"sum by (code) (rate(llm_autoscaler_metrics_api_requests_total{{{JOB}}}[$__rate_interval]))",
                        "metrics API {{code}}",
                    ),
                ],
                unit="reqps",
                w=8,
            )
        )
    )


def serving() -> dashboard.Dashboard:
    sel, pod = f"{{{VLLM}}}", f"{{{VLLM_POD}}}"
    ttft = "vllm:time_to_first_token_seconds_bucket"
    return (
        base(
            "llm-autoscaler-serving",
            "LLM serving saturation",
            "vLLM load per InferenceService and per pod: queue, running requests, KV cache, TTFT, preemptions, tokens/s.",
        )
        .with_variable(
            var("namespace", "Namespace", "label_values(vllm:num_requests_running, namespace)")
        )
        .with_variable(
            var(
                "isvc",
                "InferenceService",
                'label_values(vllm:num_requests_running{namespace=~"$namespace"}, isvc)',
            )
        )
        .with_variable(
            var(
                "pod",
                "Pod",
                'label_values(vllm:num_requests_running{namespace=~"$namespace", isvc=~"$isvc"}, pod)',
            )
        )
        .with_row(dashboard.Row("Per InferenceService"))
        .with_panel(
            ts(
                "Queue depth",
                "Requests waiting for a slot, summed over the ISVC's pods. The autoscaler's main signal: a queue that stays up while replicas are at max is unmet demand. Metric: vllm:num_requests_waiting.",
                [
                    (
                        f"sum by (namespace, isvc) (vllm:num_requests_waiting{sel})",
                        "{{namespace}}/{{isvc}}",
                    )
                ],
                w=8,
            )
        )
        .with_panel(
            ts(
                "Running requests",
                "Requests being decoded, summed over pods. Flat at max_num_seqs x pods means every slot is busy. Metric: vllm:num_requests_running.",
                [
                    (
                        f"sum by (namespace, isvc) (vllm:num_requests_running{sel})",
                        "{{namespace}}/{{isvc}}",
                    )
                ],
                w=8,
            )
        )
        .with_panel(
            ts(
                "KV-cache use (max over pods)",
                "The fullest pod's KV cache (0-1). Near 1 vLLM preempts requests and TTFT climbs. Metric: vllm:kv_cache_usage_perc.",
                [
                    (
                        f"max by (namespace, isvc) (vllm:kv_cache_usage_perc{sel})",
                        "{{namespace}}/{{isvc}}",
                    )
                ],
                unit="percentunit",
                w=8,
            )
        )
        .with_panel(
            ts(
                "Time to first token",
                "TTFT p50/p95/p99 per ISVC over the rate interval: the latency promise. p95 rising with the queue means replicas came too late or are capped. Metric: vllm:time_to_first_token_seconds.",
                [
                    (
                        f"histogram_quantile({p}, sum by (le, namespace, isvc) (rate({ttft}{sel}[$__rate_interval])))",
                        f"{{{{isvc}}}} p{int(p * 100)}",
                    )
                    for p in (0.5, 0.95, 0.99)
                ],
                unit="s",
            )
        )
        .with_panel(
            ts(
                "Queue time p95 and preemptions",
                "How long requests wait in vLLM's queue (p95), and preemptions per second (KV cache exhausted: requests evicted and recomputed). Preemptions above 0 for minutes call for more replicas or a lower KV-cache target. Metrics: vllm:request_queue_time_seconds, vllm:num_preemptions_total.",
                [
                    (
                        f"histogram_quantile(0.95, sum by (le, namespace, isvc) (rate(vllm:request_queue_time_seconds_bucket{sel}[$__rate_interval])))",
                        "{{isvc}} queue time p95",
                    ),
                    (
                        f"sum by (namespace, isvc) (rate(vllm:num_preemptions_total{sel}[$__rate_interval]))",
                        "{{isvc}} preemptions/s",
                    ),
                ],
                unit="s",
            )
        )
        .with_panel(
            ts(
                "Tokens/s",
                "Prompt (prefill) and generated (decode) tokens per second per ISVC: the work done. Tokens/s that stops growing while the queue grows is saturation. Metrics: vllm:prompt_tokens_total, vllm:generation_tokens_total.",
                [
                    (
                        f"sum by (namespace, isvc) (rate(vllm:prompt_tokens_total{sel}[$__rate_interval]))",
                        "{{isvc}} prompt",
                    ),
                    (
                        f"sum by (namespace, isvc) (rate(vllm:generation_tokens_total{sel}[$__rate_interval]))",
                        "{{isvc}} generation",
                    ),
                ],
                unit="short",
            )
        )
        .with_panel(
            ts(
                "Finished requests/s",
                "Requests completed per second per ISVC and finish reason (stop, length, abort). Aborts rising with TTFT mean clients give up. Metric: vllm:request_success_total.",
                [
                    (
                        f"sum by (namespace, isvc, finished_reason) (rate(vllm:request_success_total{sel}[$__rate_interval]))",
                        "{{isvc}} {{finished_reason}}",
                    )
                ],
                unit="reqps",
            )
        )
        .with_row(dashboard.Row("Per pod"))
        .with_panel(
            ts(
                "Queue depth per pod",
                "Waiting requests on each pod. One pod far above the others points at uneven load balancing or a slow node. Metric: vllm:num_requests_waiting.",
                [(f"sum by (pod) (vllm:num_requests_waiting{pod})", "{{pod}}")],
                w=8,
            )
        )
        .with_panel(
            ts(
                "Running per pod",
                "Requests being decoded on each pod. Metric: vllm:num_requests_running.",
                [(f"sum by (pod) (vllm:num_requests_running{pod})", "{{pod}}")],
                w=8,
            )
        )
        .with_panel(
            ts(
                "KV-cache use per pod",
                "Each pod's KV cache (0-1); pods pinned near 1 preempt. Metric: vllm:kv_cache_usage_perc.",
                [(f"max by (pod) (vllm:kv_cache_usage_perc{pod})", "{{pod}}")],
                unit="percentunit",
                w=8,
            )
        )
        .with_panel(
            ts(
                "TTFT p95 per pod",
                "Time to first token p95 per pod; a single slow pod shows here before it moves the ISVC's p95. Metric: vllm:time_to_first_token_seconds.",
                [
                    (
                        f"histogram_quantile(0.95, sum by (le, pod) (rate({ttft}{pod}[$__rate_interval])))",
                        "{{pod}}",
                    )
                ],
                unit="s",
                w=24,
            )
        )
    )


def gpu() -> dashboard.Dashboard:
    sel = f"{{{GPU}}}"
    by_isvc = 'label_replace({m}{sel}, "isvc", "$1", "exported_pod", "(.*)-predictor-.*")'
    return (
        base(
            "llm-autoscaler-gpu",
            "LLM GPUs (DCGM)",
            "dcgm-exporter GPU utilisation and memory per predictor pod and per node, joined to InferenceServices by pod name.",
        )
        .with_variable(
            var("namespace", "Namespace", "label_values(DCGM_FI_DEV_GPU_UTIL, exported_namespace)")
        )
        .with_variable(
            var(
                "isvc",
                "InferenceService",
                'label_values(vllm:num_requests_running{namespace=~"$namespace"}, isvc)',
            )
        )
        .with_variable(var("node", "Node", "label_values(DCGM_FI_DEV_GPU_UTIL, Hostname)"))
        .with_row(dashboard.Row("Per InferenceService and pod"))
        .with_panel(
            ts(
                "GPU utilisation per ISVC",
                "Mean GPU utilisation (0-100) over the ISVC's GPUs. High utilisation with a low queue is healthy; low utilisation with many replicas is GPU money idle (scale-down too slow). Metric: DCGM_FI_DEV_GPU_UTIL.",
                [
                    (
                        f"avg by (exported_namespace, isvc) ({by_isvc.format(m='DCGM_FI_DEV_GPU_UTIL', sel=sel)})",
                        "{{exported_namespace}}/{{isvc}}",
                    )
                ],
                unit="percent",
                w=12,
            )
        )
        .with_panel(
            ts(
                "GPU utilisation per pod",
                "Mean GPU utilisation of each predictor pod's GPUs. Metric: DCGM_FI_DEV_GPU_UTIL (exported_pod).",
                [(f"avg by (exported_pod) (DCGM_FI_DEV_GPU_UTIL{sel})", "{{exported_pod}}")],
                unit="percent",
                w=12,
            )
        )
        .with_panel(
            ts(
                "GPU memory used per pod",
                "Framebuffer used by each predictor pod (vLLM preallocates most of it for the KV cache, so this is flat by design; a drop means the pod restarted). Metric: DCGM_FI_DEV_FB_USED (MiB).",
                [(f"sum by (exported_pod) (DCGM_FI_DEV_FB_USED{sel})", "{{exported_pod}}")],
                unit="decmbytes",
                w=12,
            )
        )
        .with_panel(
            ts(
                "GPU memory used per ISVC (%)",
                "Framebuffer used / (used + free) over the ISVC's GPUs. Metrics: DCGM_FI_DEV_FB_USED, DCGM_FI_DEV_FB_FREE.",
                [
                    (
                        f"100 * sum by (isvc) ({by_isvc.format(m='DCGM_FI_DEV_FB_USED', sel=sel)}) / (sum by (isvc) ({by_isvc.format(m='DCGM_FI_DEV_FB_USED', sel=sel)}) + sum by (isvc) ({by_isvc.format(m='DCGM_FI_DEV_FB_FREE', sel=sel)}))",
                        "{{isvc}}",
                    )
                ],
                unit="percent",
                w=12,
            )
        )
        .with_row(dashboard.Row("Per node"))
        .with_panel(
            ts(
                "GPU utilisation per node",
                "Mean utilisation of all GPUs of a node, whoever uses them. A node near 0 while ISVCs queue means pods cannot be scheduled there (taints, selectors). Metric: DCGM_FI_DEV_GPU_UTIL.",
                [('avg by (Hostname) (DCGM_FI_DEV_GPU_UTIL{Hostname=~"$node"})', "{{Hostname}}")],
                unit="percent",
                w=8,
            )
        )
        .with_panel(
            ts(
                "GPU power per node",
                "Board power summed per node, watts. Metric: DCGM_FI_DEV_POWER_USAGE.",
                [
                    (
                        'sum by (Hostname) (DCGM_FI_DEV_POWER_USAGE{Hostname=~"$node"})',
                        "{{Hostname}}",
                    )
                ],
                unit="watt",
                w=8,
            )
        )
        .with_panel(
            ts(
                "GPU temperature per node (max)",
                "Hottest GPU per node, Celsius; sustained values above about 85 C throttle clocks. Metric: DCGM_FI_DEV_GPU_TEMP.",
                [('max by (Hostname) (DCGM_FI_DEV_GPU_TEMP{Hostname=~"$node"})', "{{Hostname}}")],
                unit="celsius",
                w=8,
            )
        )
    )


DASHBOARDS = {"autoscaler": autoscaler, "serving": serving, "gpu": gpu}


def render(name: str) -> str:
    board = DASHBOARDS[name]().build()
    data: Any = json.loads(json.dumps(board, cls=JSONEncoder))
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail when a committed file is stale")
    args = ap.parse_args(argv)
    stale = []
    OUT.mkdir(exist_ok=True)
    for name in DASHBOARDS:
        path = OUT / f"{name}.json"
        text = render(name)
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(path)
        else:
            path.write_text(text)
            print(path)
    extra = sorted({p.stem for p in OUT.glob("*.json")} - set(DASHBOARDS))
    if stale or extra:
        for p in stale:
            print(f"stale: {p} (run: python -m dashboards.generate)", file=sys.stderr)
        for e in extra:
            print(f"not generated: {OUT / e}.json", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
