"""Monitoring: what an operator watches for one service, as prometheus-operator objects and a
Grafana dashboard.

- A ``PodMonitor`` per role scrapes ``/metrics`` of rank 0 of every unit. Only rank 0 runs vLLM's
  API server: the other ranks run ``vllm serve --headless`` (engine cores, no HTTP), and rank 0's
  front end reports the stats of every DP rank of the unit, labelled ``engine=<dp rank>``
  (vLLM 0.33 ``DPLBAsyncMPClient.engine_ranks_managed`` spans all ranks with internal load
  balancing). Relabelling puts the pod labels into every series as ``moe_ep_service``, ``role``
  and ``unit`` (the LWS group index).
- A ``ServiceMonitor`` for the router's metrics port, when the router has one.
- A ``PrometheusRule``: recording rules per role and alerts whose thresholds come from the
  stack's ``monitoring`` section. vLLM metric names are those vLLM 0.33.0 exports (counters with
  ``_total``, histograms with ``_bucket``); pod health comes from kube-state-metrics.
- A ``ConfigMap`` holding the dashboard (built with grafana-foundation-sdk) for the Grafana
  sidecar, panels per role: latency, throughput, queue, KV cache, GPU (dcgm-exporter).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Mapping, Optional

import pulumi
from grafana_foundation_sdk.builders import dashboard as gdash
from grafana_foundation_sdk.builders import prometheus as gprom
from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as gmodel
from pydantic import BaseModel, ConfigDict, Field

from . import sizing, vllm
from .kubernetes_object import KubernetesObject
from .labels import service_labels
from .pools import ROLE_LABEL, pool_labels
from .spec import ServiceSpec
from .unit import LWS_WORKER_INDEX_LABEL

MONITORING_API_VERSION = "monitoring.coreos.com/v1"
APP_NAME_LABEL = "app.kubernetes.io/name"
LWS_GROUP_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/group-index"
METRICS_PATH = "/metrics"

# Series labels the monitors add (Prometheus label names).
SERVICE_SERIES_LABEL = "moe_ep_service"
ROLE_SERIES_LABEL = "role"
UNIT_SERIES_LABEL = "unit"
BY_ROLE = f"namespace, {SERVICE_SERIES_LABEL}, {ROLE_SERIES_LABEL}"
BY_POD = f"{BY_ROLE}, pod"

RATE_WINDOW = "5m"
RESTART_WINDOW = "30m"
DASHBOARD_FOLDER_ANNOTATION = "grafana_folder"
"""The folder annotation of kube-prometheus-stack's Grafana sidecar (``sidecar.dashboards.folderAnnotation``)."""


def metrics_port(spec: ServiceSpec, role: str) -> str:
    """The name of the container port vLLM itself listens on in rank 0: ``vllm`` when the llm-d
    routing sidecar serves ``http`` in front of it (its ``/metrics`` would not be vLLM's)."""
    return "vllm" if vllm.behind_sidecar(spec, role) else "http"


def _discovered(pod_label: str) -> str:
    """Prometheus' Kubernetes discovery label of a pod label."""
    return "__meta_kubernetes_pod_label_" + re.sub(r"[^A-Za-z0-9_]", "_", pod_label)


def _labels(spec: ServiceSpec, base: Mapping[str, str]) -> dict[str, str]:
    return dict(sorted({**base, **spec.monitoring.labels}.items()))


def pod_monitor(spec: ServiceSpec, role: str) -> dict[str, Any]:
    """The PodMonitor scraping rank 0 of every unit of ``role``. Pure."""
    relabel = [
        {"action": "replace", "sourceLabels": [_discovered(pod_label)], "targetLabel": target}
        for pod_label, target in (
            (APP_NAME_LABEL, SERVICE_SERIES_LABEL), (ROLE_LABEL, ROLE_SERIES_LABEL), (LWS_GROUP_INDEX_LABEL, UNIT_SERIES_LABEL),
        )
    ]
    return {
        "apiVersion": MONITORING_API_VERSION,
        "kind": "PodMonitor",
        "metadata": {"name": f"{spec.name}-{role}", "namespace": spec.namespace, "labels": _labels(spec, pool_labels(spec, role))},
        "spec": {
            "selector": {"matchLabels": {APP_NAME_LABEL: spec.name, ROLE_LABEL: role, LWS_WORKER_INDEX_LABEL: "0"}},
            "namespaceSelector": {"matchNames": [spec.namespace]},
            "podMetricsEndpoints": [{
                "port": metrics_port(spec, role),
                "path": METRICS_PATH,
                "interval": spec.monitoring.scrape_interval,
                "relabelings": relabel,
            }],
        },
    }


def service_monitor(spec: ServiceSpec, name: str, selector: Mapping[str, str], port: str) -> dict[str, Any]:
    """A ServiceMonitor scraping ``/metrics`` on the named ``port`` of the Services matching
    ``selector`` in the service's namespace (the router's). Pure."""
    return {
        "apiVersion": MONITORING_API_VERSION,
        "kind": "ServiceMonitor",
        "metadata": {"name": name, "namespace": spec.namespace, "labels": _labels(spec, service_labels(spec))},
        "spec": {
            "selector": {"matchLabels": dict(sorted(selector.items()))},
            "namespaceSelector": {"matchNames": [spec.namespace]},
            "endpoints": [{
                "port": port,
                "path": METRICS_PATH,
                "interval": spec.monitoring.scrape_interval,
                "relabelings": [{"action": "replace", "replacement": spec.name, "targetLabel": SERVICE_SERIES_LABEL}],
            }],
        },
    }


# --- rules (pure) ------------------------------------------------------------------------------


def _selector(spec: ServiceSpec, **extra: str) -> str:
    matchers = {"namespace": spec.namespace, SERVICE_SERIES_LABEL: spec.name, **extra}
    return "{" + ", ".join(f'{k}="{v}"' for k, v in matchers.items()) + "}"


def _pods(spec: ServiceSpec, role: str, leaders_only: bool) -> str:
    """kube-state-metrics matchers for a role's pods: LWS names leaders ``<lws>-<group>`` and the
    other ranks ``<lws>-<group>-<index>``."""
    ranks = "" if leaders_only else "(-[0-9]+)?"
    return f'namespace="{spec.namespace}", pod=~"{spec.name}-{role}-[0-9]+{ranks}"'


def record_name(metric: str, operation: str) -> str:
    """Recording-rule name per Prometheus' ``level:metric:operation`` convention."""
    return f"moe_ep_role:{metric}:{operation}"


TTFT_P50 = record_name("vllm_time_to_first_token_seconds", "p50_5m")
TTFT_P99 = record_name("vllm_time_to_first_token_seconds", "p99_5m")
ITL_P99 = record_name("vllm_inter_token_latency_seconds", "p99_5m")
E2E_P99 = record_name("vllm_e2e_request_latency_seconds", "p99_5m")
PROMPT_TOKENS_RATE = record_name("vllm_prompt_tokens", "rate5m")
GENERATION_TOKENS_RATE = record_name("vllm_generation_tokens", "rate5m")
KV_CACHE_AVG = record_name("vllm_kv_cache_usage_perc", "avg")
KV_CACHE_MAX = record_name("vllm_kv_cache_usage_perc", "max")
WAITING = record_name("vllm_num_requests_waiting", "sum")
RUNNING = record_name("vllm_num_requests_running", "sum")
ERROR_RATIO = record_name("vllm_request_errors", "ratio_rate5m")
PREEMPTIONS_RATE = record_name("vllm_num_preemptions", "rate5m")


def recording_rules(spec: ServiceSpec) -> list[dict[str, str]]:
    """Per-role series the alerts and the dashboard read. Pure."""
    s = _selector(spec)

    def quantile(q: float, histogram: str) -> str:
        return f"histogram_quantile({q}, sum by ({BY_ROLE}, le) (rate({histogram}_bucket{s}[{RATE_WINDOW}])))"

    def rate(counter: str, selector: str = s) -> str:
        return f"sum by ({BY_ROLE}) (rate({counter}_total{selector}[{RATE_WINDOW}]))"

    errors = _selector(spec, finished_reason="error")
    return [
        {"record": TTFT_P50, "expr": quantile(0.5, "vllm:time_to_first_token_seconds")},
        {"record": TTFT_P99, "expr": quantile(0.99, "vllm:time_to_first_token_seconds")},
        {"record": ITL_P99, "expr": quantile(0.99, "vllm:inter_token_latency_seconds")},
        {"record": E2E_P99, "expr": quantile(0.99, "vllm:e2e_request_latency_seconds")},
        {"record": PROMPT_TOKENS_RATE, "expr": rate("vllm:prompt_tokens")},
        {"record": GENERATION_TOKENS_RATE, "expr": rate("vllm:generation_tokens")},
        {"record": KV_CACHE_AVG, "expr": f"avg by ({BY_ROLE}) (vllm:kv_cache_usage_perc{s})"},
        {"record": KV_CACHE_MAX, "expr": f"max by ({BY_ROLE}) (vllm:kv_cache_usage_perc{s})"},
        {"record": WAITING, "expr": f"sum by ({BY_ROLE}) (vllm:num_requests_waiting{s})"},
        {"record": RUNNING, "expr": f"sum by ({BY_ROLE}) (vllm:num_requests_running{s})"},
        # vLLM counts every finished request under its finish reason; `error` becomes a 500.
        {"record": ERROR_RATIO, "expr": f"{rate('vllm:request_success', errors)} / {rate('vllm:request_success')}"},
        {"record": PREEMPTIONS_RATE, "expr": rate("vllm:num_preemptions")},
    ]


def _alert(name: str, expr: str, for_: str | None, severity: str, summary: str, description: str,
           labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if for_:
        rule["for"] = for_
    rule["labels"] = {"severity": severity, **(labels or {})}
    rule["annotations"] = {"summary": summary, "description": description}
    return rule


def _number(value: float) -> str:
    return f"{value:g}"


def alert_rules(spec: ServiceSpec) -> list[dict[str, Any]]:
    """Alerts with the stack's thresholds. Pure."""
    m = spec.monitoring
    t, s = m.thresholds, _selector(spec)
    where = "{{ $labels.role }} of {{ $labels.namespace }}/{{ $labels.moe_ep_service }}"
    unit = "unit pod {{ $labels.pod }} (" + where + ")"
    rules = [
        _alert(
            "VllmQueueBacklog", f"sum by ({BY_POD}) (vllm:num_requests_waiting{s}) > {t.queue_waiting}", "5m", "warning",
            f"vLLM requests queue up in {unit}",
            f"More than {t.queue_waiting} requests have waited for 5 minutes: the unit is saturated; add units or lower the load.",
        ),
        _alert(
            "VllmKvCacheNearFull", f"max by ({BY_POD}) (vllm:kv_cache_usage_perc{s}) > {_number(t.kv_cache_usage)}", "10m", "warning",
            f"KV cache nearly full in {unit}",
            f"KV-cache usage above {_number(t.kv_cache_usage)} for 10 minutes: requests get preempted and recomputed.",
        ),
        _alert(
            "VllmTimeToFirstTokenOverSlo", f"{TTFT_P99}{s} > {_number(m.slo.ttft_seconds)}", "10m", "critical",
            f"p99 time to first token over the SLO in the {where}",
            f"p99 TTFT above {_number(m.slo.ttft_seconds)} s for 10 minutes.",
        ),
        _alert(
            "VllmInterTokenLatencyOverSlo", f"{ITL_P99}{_selector(spec, role='decode')} > {_number(m.slo.itl_seconds)}", "10m", "critical",
            f"p99 inter-token latency over the SLO in the {where}",
            f"p99 inter-token latency above {_number(m.slo.itl_seconds)} s for 10 minutes.",
        ),
        _alert(
            "VllmRequestErrors", f"{ERROR_RATIO}{s} > {_number(t.error_ratio)}", "5m", "critical",
            f"vLLM requests fail in the {where}",
            f"More than {_number(t.error_ratio)} of requests finished with an internal error for 5 minutes.",
        ),
        _alert(
            "VllmPreemptionsRising", f"{PREEMPTIONS_RATE}{s} * 60 > {_number(t.preemptions_per_minute)}", "10m", "warning",
            f"vLLM preempts requests in the {where}",
            f"More than {_number(t.preemptions_per_minute)} preemptions a minute for 10 minutes: KV cache too small for the load.",
        ),
    ]
    for role, pool in spec.pools().items():
        budget = sizing.startup_minutes(spec, pool)
        scope = {SERVICE_SERIES_LABEL: spec.name, ROLE_SERIES_LABEL: role}
        leaders, ranks = _pods(spec, role, leaders_only=True), _pods(spec, role, leaders_only=False)
        incarnations = f"sum by (namespace, pod) (changes(kube_pod_created{{{ranks}}}[{RESTART_WINDOW}]) + 1) - 1"
        restarts = f"sum by (namespace, pod) (increase(kube_pod_container_status_restarts_total{{{ranks}}}[{RESTART_WINDOW}]))"
        rules += [
            # Rank 0 turns ready only once every rank has joined, so it stands for the unit.
            _alert(
                "MoeEpUnitNotReady", f'kube_pod_status_ready{{{leaders}, condition="true"}} == 0',
                f"{t.unit_not_ready_minutes or budget}m", "critical",
                f"{role} unit {{{{ $labels.pod }}}} of {spec.namespace}/{spec.name} is not ready",
                f"Rank 0 has not been ready for longer than the {role} pool's startup budget.", scope,
            ),
            # A guarded unit is recreated (new pod uid) rather than restarted in place: count both.
            _alert(
                "MoeEpUnitRestarting", f"({restarts} >= {t.unit_restarts}) or ({incarnations} >= {t.unit_restarts})", None, "warning",
                f"{role} pod {{{{ $labels.pod }}}} of {spec.namespace}/{spec.name} keeps restarting",
                f"At least {t.unit_restarts} container restarts or pod recreations in {RESTART_WINDOW}.", scope,
            ),
            # Quiet while the pool is scaled to zero (kube-state-metrics says so), loud otherwise.
            _alert(
                "VllmPoolMetricsAbsent",
                f"absent(vllm:num_requests_running{_selector(spec, role=role)}) unless on () "
                f'(kube_statefulset_replicas{{namespace="{spec.namespace}", statefulset="{spec.name}-{role}"}} == 0)',
                f"{t.metrics_absent_minutes or budget}m", "critical",
                f"No vLLM metrics from the {role} pool of {spec.namespace}/{spec.name}",
                "Prometheus scrapes no vLLM metrics from this pool: it is down, or the PodMonitor does not reach it.", scope,
            ),
        ]
    return rules


def rule_groups(spec: ServiceSpec) -> list[dict[str, Any]]:
    """The PrometheusRule's groups; also a plain Prometheus rules file as they are. Pure."""
    return [
        {"name": f"moe-ep.{spec.namespace}.{spec.name}.recording", "rules": recording_rules(spec)},
        {"name": f"moe-ep.{spec.namespace}.{spec.name}.alerts", "rules": alert_rules(spec)},
    ]


def prometheus_rule(spec: ServiceSpec) -> dict[str, Any]:
    """The PrometheusRule of the service. Pure."""
    return {
        "apiVersion": MONITORING_API_VERSION,
        "kind": "PrometheusRule",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": _labels(spec, service_labels(spec))},
        "spec": {"groups": rule_groups(spec)},
    }


# --- dashboard (pure) --------------------------------------------------------------------------

_DATASOURCE = gmodel.DataSourceRef(type_val="prometheus", uid="${datasource}")


def dashboard_uid(spec: ServiceSpec) -> str:
    """Stable across runs, unique per namespace and service, within Grafana's 40 characters."""
    uid = f"moe-ep-{spec.namespace}-{spec.name}"
    return uid if len(uid) <= 40 else f"moe-ep-{hashlib.sha256(uid.encode()).hexdigest()[:33]}"


def _panel(panel_id: int, title: str, unit: str, queries: list[tuple[str, str]], description: str) -> timeseries.Panel:
    panel = timeseries.Panel().id(panel_id).title(title).description(description).unit(unit).datasource(_DATASOURCE).span(8).height(8)
    for ref, (expr, legend) in zip("ABCDEFGH", queries):
        panel = panel.with_target(gprom.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(_DATASOURCE))
    return panel


def _role_panels(spec: ServiceSpec, role: str, first_id: int) -> list[timeseries.Panel]:
    s = _selector(spec, role=role)
    pods = f'namespace="{spec.namespace}", pod=~"{spec.name}-{role}-.+"'
    latency = [(f"{TTFT_P50}{s}", "TTFT p50"), (f"{TTFT_P99}{s}", "TTFT p99"), (f"{E2E_P99}{s}", "end-to-end p99")]
    if role == "decode":
        latency.insert(2, (f"{ITL_P99}{s}", "inter-token p99"))
    gpu = "dcgm-exporter series mapped to pods (its Kubernetes mode); empty without dcgm-exporter."
    specs = [
        ("Latency", "s", latency, f"p99 over {RATE_WINDOW}; SLO: TTFT {_number(spec.monitoring.slo.ttft_seconds)} s, "
                                  f"inter-token {_number(spec.monitoring.slo.itl_seconds)} s."),
        ("Throughput", "tokens/s", [(f"{PROMPT_TOKENS_RATE}{s}", "prompt"), (f"{GENERATION_TOKENS_RATE}{s}", "generation")],
         "Tokens per second over all units."),
        ("Queue per unit", "short", [
            (f"sum by ({UNIT_SERIES_LABEL}) (vllm:num_requests_waiting{s})", "unit {{unit}} waiting"),
            (f"sum by ({UNIT_SERIES_LABEL}) (vllm:num_requests_running{s})", "unit {{unit}} running"),
        ], f"Requests waiting and running; alert above {spec.monitoring.thresholds.queue_waiting} waiting."),
        ("KV cache", "percentunit", [(f"{KV_CACHE_AVG}{s}", "average"), (f"{KV_CACHE_MAX}{s}", "fullest engine"),
                                     (f"{PREEMPTIONS_RATE}{s} * 60", "preemptions/min")],
         "KV-cache usage across the role's DP engines; preemptions per minute."),
        ("GPU utilization", "percent", [(f"avg by (pod) (DCGM_FI_DEV_GPU_UTIL{{{pods}}})", "{{pod}}")], gpu),
        ("GPU memory used", "mbytes", [(f"sum by (pod) (DCGM_FI_DEV_FB_USED{{{pods}}})", "{{pod}}")], gpu),
    ]
    return [_panel(first_id + i, f"{role}: {title}", unit, queries, text) for i, (title, unit, queries, text) in enumerate(specs)]


def dashboard(spec: ServiceSpec) -> dict[str, Any]:
    """The Grafana dashboard model of the service: a row per role. Pure."""
    board = (
        gdash.Dashboard(f"moe-ep / {spec.namespace} / {spec.name}")
        .uid(dashboard_uid(spec))
        .tags(["moe-ep", "vllm"])
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("browser")
        .with_variable(gdash.DatasourceVariable("datasource").label("Data source").type("prometheus"))
    )
    panel_id = 1
    for role in spec.pools():
        board = board.with_row(gdash.Row(f"{role} pool").id(panel_id))
        panels = _role_panels(spec, role, panel_id + 1)
        for panel in panels:
            board = board.with_panel(panel)
        panel_id += len(panels) + 1
    return json.loads(json.dumps(board.build(), cls=JSONEncoder))


def dashboard_json(spec: ServiceSpec) -> str:
    """The dashboard as the sidecar reads it: sorted keys, so it is byte-identical across runs."""
    return json.dumps(dashboard(spec), sort_keys=True, indent=2) + "\n"


def dashboard_config_map(spec: ServiceSpec) -> dict[str, Any]:
    """The ConfigMap the Grafana sidecar loads (selected by ``monitoring.dashboard.labels``). Pure."""
    board = spec.monitoring.dashboard
    metadata: dict[str, Any] = {
        "name": f"{spec.name}-dashboard",
        "namespace": spec.namespace,
        "labels": dict(sorted({**service_labels(spec), **board.labels}.items())),
    }
    if board.folder:
        metadata["annotations"] = {DASHBOARD_FOLDER_ANNOTATION: board.folder}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {f"{spec.name}.json": dashboard_json(spec)}}


# --- component ---------------------------------------------------------------------------------


class MetricsTarget(BaseModel):
    """Services to scrape with a ServiceMonitor (the router's metrics endpoint)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Name of the ServiceMonitor.")
    selector: dict[str, str] = Field(description="Labels of the Services to scrape.")
    port: str = Field(description="Name of the Service port serving /metrics.")


class MonitoringArgs(BaseModel):
    """What a Monitoring component watches."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: ServiceSpec = Field(description="The service; its `monitoring` section sets scrape interval, SLOs, thresholds, dashboard.")
    router: MetricsTarget | None = Field(None, description="The router's metrics Services; none = no ServiceMonitor. Default none.")


class Monitoring(pulumi.ComponentResource):
    """Monitors, rules and a dashboard for one service (prometheus-operator must be installed).

    Creates a PodMonitor per pool (rank 0 of every unit), a ServiceMonitor when ``router`` is
    given, a PrometheusRule (recording rules and alerts) and, unless
    ``monitoring.dashboard.enabled`` is false, a ConfigMap with the Grafana dashboard.

    Example::

        Monitoring("r1-monitoring", MonitoringArgs(
            service=spec, router=MetricsTarget(name="r1-scheduler", selector={"app": "r1-scheduler"}, port="metrics")))
    """

    def __init__(
        self,
        resource_name: str,
        args: MonitoringArgs | Mapping[str, Any],
        opts: Optional[pulumi.ResourceOptions] = None,
    ) -> None:
        super().__init__("moe-ep:index:Monitoring", resource_name, None, opts)
        args = MonitoringArgs.model_validate(args)
        spec = args.service
        child = pulumi.ResourceOptions(parent=self)
        objects = [pod_monitor(spec, role) for role in spec.pools()]
        if args.router is not None:
            objects.append(service_monitor(spec, args.router.name, args.router.selector, args.router.port))
        objects.append(prometheus_rule(spec))
        if spec.monitoring.dashboard.enabled:
            objects.append(dashboard_config_map(spec))
        for obj in objects:
            KubernetesObject(obj["metadata"]["name"], obj, child)
        names = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objects)
        self.objects = names
        self.register_outputs({"objects": names})
