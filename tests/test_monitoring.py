"""Monitoring: monitors, rules and dashboard, checked by promtool, the CRDs and vLLM's own names."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from components import monitoring, sizing
from components.pools import ROLE_LABEL
from components.spec import ServiceSpec, StackError, load_service, service_from_config
from components.unit import LWS_WORKER_INDEX_LABEL
from moe_ep import schemas

from .conftest import ROOT, objects_of, planned

NS, NAME = "llm-serving", "deepseek-r1"


def prod() -> ServiceSpec:
    return load_service(ROOT / "stacks" / "Pulumi.prod.yaml")


def variant(**monitoring_section) -> ServiceSpec:
    """prod with a `monitoring` section."""
    data = prod().model_dump(mode="json", by_alias=False, exclude_none=True)
    data["monitoring"] = monitoring_section
    return service_from_config(data, "test")


TUNED = {
    "slo": {"ttft_seconds": 0.8, "itl_seconds": 0.05},
    "thresholds": {"queue_waiting": 4, "kv_cache_usage": 0.9, "error_ratio": 0.02, "preemptions_per_minute": 0.5,
                   "unit_restarts": 3, "unit_not_ready_minutes": 45, "metrics_absent_minutes": 7},
    "labels": {"release": "kube-prometheus-stack"},
    "scrape_interval": "30s",
}


def alerts(spec: ServiceSpec) -> list[dict]:
    return monitoring.alert_rules(spec)


def alert(spec: ServiceSpec, name: str, role: str | None = None) -> dict:
    found = [a for a in alerts(spec) if a["alert"] == name and (role is None or a["labels"].get("role") == role)]
    assert len(found) == 1, (name, role, found)
    return found[0]


# --- pure functions ----------------------------------------------------------------------------


def test_pod_monitor_scrapes_vllm_on_rank_zero_only():
    spec = prod()
    for role in spec.pools():
        pm = monitoring.pod_monitor(spec, role)
        assert pm["spec"]["selector"]["matchLabels"] == {
            "app.kubernetes.io/name": NAME, ROLE_LABEL: role, LWS_WORKER_INDEX_LABEL: "0"}
        endpoint = pm["spec"]["podMetricsEndpoints"][0]
        assert endpoint["path"] == "/metrics" and endpoint["interval"] == "15s"
        targets = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
        assert targets == {
            "moe_ep_service": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
            "role": ["__meta_kubernetes_pod_label_moe_ep_io_role"],
            "unit": ["__meta_kubernetes_pod_label_leaderworkerset_sigs_k8s_io_group_index"],
        }


def test_pod_monitor_port_is_vllms_own_port_in_the_rendered_pods():
    """The named port must exist on rank 0's vLLM container (not the llm-d sidecar's `http`)."""
    for stack in ("prod", "dev", "staging"):
        plan = planned(stack)
        monitors = {o["metadata"]["name"]: o for o in objects_of(plan, "PodMonitor")}
        for lws in objects_of(plan, "LeaderWorkerSet"):
            template = lws["spec"]["leaderWorkerTemplate"]
            leader = template.get("leaderTemplate") or template["workerTemplate"]
            vllm_container = next(c for c in leader["spec"]["containers"] if c["name"] == "vllm")
            port = monitors[lws["metadata"]["name"]]["spec"]["podMetricsEndpoints"][0]["port"]
            assert port in {p["name"] for p in vllm_container["ports"]}, (stack, lws["metadata"]["name"], port)
            labels = leader["metadata"]["labels"]
            selector = monitors[lws["metadata"]["name"]]["spec"]["selector"]["matchLabels"]
            assert {k: v for k, v in selector.items() if k != LWS_WORKER_INDEX_LABEL}.items() <= labels.items()
            if "leaderTemplate" in template:
                # Headless ranks serve no HTTP: they must not carry the port the monitor scrapes.
                worker = template["workerTemplate"]["spec"]["containers"][0]
                assert port not in {p["name"] for p in worker.get("ports", [])}


def test_monitoring_labels_reach_every_monitor_and_rule():
    spec = variant(**TUNED)
    objects = [monitoring.pod_monitor(spec, r) for r in spec.pools()]
    objects += [monitoring.prometheus_rule(spec), monitoring.service_monitor(spec, "x", {"a": "b"}, "metrics")]
    for obj in objects:
        assert obj["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert objects[0]["spec"]["podMetricsEndpoints"][0]["interval"] == "30s"


def test_service_monitor_takes_the_routers_labels_and_port():
    sm = monitoring.service_monitor(prod(), "deepseek-r1-scheduler", {"b": "2", "a": "1"}, "metrics")
    assert sm["spec"]["selector"] == {"matchLabels": {"a": "1", "b": "2"}}
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NS]}


def test_thresholds_come_from_the_stack():
    spec = variant(**TUNED)
    assert alert(spec, "VllmQueueBacklog")["expr"].endswith("> 4")
    assert alert(spec, "VllmKvCacheNearFull")["expr"].endswith("> 0.9")
    assert alert(spec, "VllmTimeToFirstTokenOverSlo")["expr"].endswith("> 0.8")
    assert alert(spec, "VllmInterTokenLatencyOverSlo")["expr"].endswith("> 0.05")
    assert alert(spec, "VllmRequestErrors")["expr"].endswith("> 0.02")
    assert alert(spec, "VllmPreemptionsRising")["expr"].endswith("> 0.5")
    assert ">= 3" in alert(spec, "MoeEpUnitRestarting", "decode")["expr"]
    assert alert(spec, "MoeEpUnitNotReady", "prefill")["for"] == "45m"
    assert alert(spec, "VllmPoolMetricsAbsent", "decode")["for"] == "7m"


def test_readiness_windows_default_to_each_pools_startup_budget():
    spec = prod()
    for role, pool in spec.pools().items():
        budget = f"{sizing.startup_minutes(spec, pool)}m"
        assert alert(spec, "MoeEpUnitNotReady", role)["for"] == budget
    decode_only = load_service(ROOT / "stacks" / "Pulumi.dev.yaml")
    assert {a["labels"].get("role") for a in alerts(decode_only) if a["alert"] == "VllmPoolMetricsAbsent"} == {"decode"}


@pytest.mark.parametrize("section, path", [
    ({"slo": {"ttft_seconds": 0}}, "monitoring.slo.ttft_seconds"),
    ({"thresholds": {"kv_cache_usage": 1.5}}, "monitoring.thresholds.kv_cache_usage"),
    ({"scrape_interval": "fast"}, "monitoring.scrape_interval"),
    ({"labels": {"bad key!": "x"}}, "monitoring.labels"),
    ({"dashboard": {"labels": {"grafana_dashboard": "not a value"}}}, "monitoring.dashboard.labels"),
    ({"thresholds": {"queue_depth": 3}}, "monitoring.thresholds.queue_depth"),
])
def test_bad_monitoring_sections_are_bad_input(section, path):
    with pytest.raises(StackError) as error:
        variant(**section)
    assert any(p.path == f"moe-ep:service.{path}" for p in error.value.problems), error.value


def test_recording_rules_cover_the_issue_and_have_unique_names():
    names = [r["record"] for r in monitoring.recording_rules(prod())]
    assert len(names) == len(set(names))
    for part in ("time_to_first_token_seconds:p50", "time_to_first_token_seconds:p99", "inter_token_latency_seconds:p99",
                 "e2e_request_latency_seconds:p99", "prompt_tokens:rate", "generation_tokens:rate",
                 "kv_cache_usage_perc", "num_requests_waiting"):
        assert any(part in n for n in names), part
    for rule in monitoring.recording_rules(prod()):
        assert "by (namespace, moe_ep_service, role" in rule["expr"], rule["record"]


def test_dashboard_is_deterministic_and_reads_only_recorded_or_raw_series():
    spec = prod()
    assert monitoring.dashboard_json(spec) == monitoring.dashboard_json(prod())
    board = json.loads(monitoring.dashboard_json(spec))
    assert board["uid"] == "moe-ep-llm-serving-deepseek-r1" and len(board["uid"]) <= 40
    recorded = {r["record"] for r in monitoring.recording_rules(spec)}
    rows = [p for p in board["panels"] if p["type"] == "row"]
    assert [r["title"] for r in rows] == ["prefill pool", "decode pool"]
    for role in spec.pools():
        titles = {p["title"] for p in board["panels"] if p["title"].startswith(f"{role}:")}
        assert titles == {f"{role}: {t}" for t in ("Latency", "Throughput", "Queue per unit", "KV cache", "GPU utilization", "GPU memory used")}
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for expr in exprs:
        for name in re.findall(r"moe_ep_role:[A-Za-z0-9_:]+", expr):
            assert name in recorded, name
    assert any("DCGM_FI_DEV_GPU_UTIL" in e for e in exprs) and any("DCGM_FI_DEV_FB_USED" in e for e in exprs)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))


def test_long_names_get_a_short_stable_dashboard_uid():
    data = prod().model_dump(mode="json", exclude_none=True)
    data["namespace"] = "a-rather-long-namespace-name"
    spec = service_from_config(data, "test")
    uid = monitoring.dashboard_uid(spec)
    assert len(uid) <= 40 and uid == monitoring.dashboard_uid(service_from_config(data, "test"))


def test_dashboard_config_map_is_for_the_grafana_sidecar():
    cm = monitoring.dashboard_config_map(prod())
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "moe-ep"}
    assert list(cm["data"]) == ["deepseek-r1.json"]
    text = cm["data"]["deepseek-r1.json"]
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n"
    plain = variant(dashboard={"folder": None, "labels": {"dashboards": "llm"}})
    cm = monitoring.dashboard_config_map(plain)
    assert "annotations" not in cm["metadata"] and cm["metadata"]["labels"]["dashboards"] == "llm"
    assert "grafana_dashboard" not in cm["metadata"]["labels"]


# --- the program -------------------------------------------------------------------------------


def test_prod_renders_monitors_rules_and_a_dashboard(crd_dir):
    plan = planned("prod")
    kinds = {o["kind"]: [x["metadata"]["name"] for x in plan.objects if x["kind"] == o["kind"]] for o in plan.objects}
    assert sorted(kinds["PodMonitor"]) == ["deepseek-r1-decode", "deepseek-r1-prefill"]
    assert kinds["ServiceMonitor"] == ["deepseek-r1-scheduler"]
    assert kinds["PrometheusRule"] == ["deepseek-r1"]
    assert "deepseek-r1-dashboard" in kinds["ConfigMap"]
    monitors = [o for o in plan.objects if o["kind"] in ("PodMonitor", "ServiceMonitor", "PrometheusRule")]
    assert schemas.validate_custom_resources(monitors, crd_dir) == []
    # What the mock runtime recorded is exactly what the pure functions build.
    assert objects_of(plan, "PrometheusRule")[0]["spec"] == json.loads(json.dumps(monitoring.prometheus_rule(plan.spec)["spec"]))
    scheduler = next(o for o in objects_of(plan, "Service") if o["metadata"]["name"] == "deepseek-r1-scheduler")
    sm = objects_of(plan, "ServiceMonitor")[0]
    assert sm["spec"]["selector"]["matchLabels"].items() <= scheduler["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] in {p["name"] for p in scheduler["spec"]["ports"]}
    components = plan.run.of_type("moe-ep:index:Monitoring")
    assert len(components) == 1 and components[0].parent_name == "deepseek-r1"


def test_round_robin_router_gets_no_service_monitor():
    assert objects_of(planned("dev"), "ServiceMonitor") == []
    assert len(objects_of(planned("dev"), "PodMonitor")) == 1


def test_monitoring_can_be_turned_off(tmp_path):
    from moe_ep import plan as planning

    text = (ROOT / "stacks" / "Pulumi.dev.yaml").read_text()
    document = yaml.safe_load(text)
    document["config"]["moe-ep:service"]["monitoring"] = {"enabled": False}
    path = tmp_path / "Pulumi.nomon.yaml"
    path.write_text(yaml.safe_dump(document))
    objects = planning.build(path, ROOT, "nomon").objects
    assert not [o for o in objects if o["kind"] in ("PodMonitor", "PrometheusRule", "ServiceMonitor")]
    assert not [o for o in objects if o["metadata"]["name"].endswith("-dashboard")]


# --- vLLM's own metric names -------------------------------------------------------------------

_VLLM_SERIES = re.compile(r"(?<![\w:])vllm:[A-Za-z0-9_:]+")


def vllm_series(text: str) -> set[str]:
    return set(_VLLM_SERIES.findall(text))


def queries(spec: ServiceSpec) -> list[str]:
    """Every PromQL expression we ship: rules and dashboard targets."""
    exprs = [r["expr"] for g in monitoring.rule_groups(spec) for r in g["rules"]]
    board = monitoring.dashboard(spec)
    return exprs + [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def unknown_series(referenced: set[str], kinds: dict[str, str]) -> list[str]:
    """Series names that vLLM does not expose, with the reason."""
    wire = {}
    for name, kind in kinds.items():
        if kind == "counter":
            wire[name.removesuffix("_total") + "_total"] = (name, kind)
        elif kind == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                wire[name + suffix] = (name, kind)
        else:
            wire[name] = (name, kind)
    problems = []
    for series in sorted(referenced):
        if series in wire:
            continue
        base = re.sub(r"_(total|bucket|sum|count)$", "", series)
        if base in kinds or series in kinds:
            kind = kinds.get(base) or kinds[series]
            problems.append(f"{series}: {kind} {base if base in kinds else series} is exposed as "
                            f"{sorted(k for k, v in wire.items() if v[0] == (base if base in kinds else series))}")
        else:
            problems.append(f"{series}: vLLM defines no such metric")
    return problems


def test_the_name_check_catches_wrong_suffixes_and_unknown_names():
    kinds = {"vllm:num_preemptions": "counter", "vllm:kv_cache_usage_perc": "gauge", "vllm:e2e_request_latency_seconds": "histogram"}
    assert unknown_series({"vllm:num_preemptions_total", "vllm:kv_cache_usage_perc", "vllm:e2e_request_latency_seconds_bucket"}, kinds) == []
    found = unknown_series({"vllm:num_preemptions", "vllm:kv_cache_usage_perc_total", "vllm:e2e_request_latency_seconds",
                            "vllm:gpu_cache_usage_perc"}, kinds)
    assert len(found) == 4, found
    assert vllm_series('x{a="b"} / moe_ep_role:vllm_x:sum + rate(vllm:a_total[5m])') == {"vllm:a_total"}


@pytest.mark.conformance
@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_every_vllm_metric_we_query_exists_in_vllm(stack):
    from tests.conformance.vllm_cli import vllm_metric_names

    kinds = vllm_metric_names()
    assert {"vllm:num_requests_waiting", "vllm:time_to_first_token_seconds"} <= set(kinds), "metric parsing found too little"
    spec = load_service(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    referenced = set().union(*(vllm_series(q) for q in queries(spec)))
    assert len(referenced) >= 10
    assert unknown_series(referenced, kinds) == []


# --- promtool ----------------------------------------------------------------------------------


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed: `apt-get install prometheus` (CI's .ci/run installs it)")
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("spec_of", [prod, lambda: variant(**TUNED), lambda: load_service(ROOT / "stacks" / "Pulumi.dev.yaml")])
def test_every_rule_group_passes_promtool_lint(spec_of, tmp_path):
    groups = monitoring.rule_groups(spec_of())
    for group in groups:
        path = tmp_path / f"{group['name']}.yaml"
        path.write_text(yaml.safe_dump({"groups": [group]}, sort_keys=False))
        result = promtool("check", "rules", "--lint=all", "--lint-fatal", path.name, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"SUCCESS: {len(group['rules'])} rules found" in result.stdout


def test_promtool_check_catches_a_broken_rule(tmp_path):
    group = monitoring.rule_groups(prod())[1]
    broken = {**group, "rules": group["rules"] + [group["rules"][0]]}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump({"groups": [broken]}))
    assert promtool("check", "rules", "--lint=all", "--lint-fatal", "r.yaml", cwd=tmp_path).returncode != 0


# Synthetic series: one sample a minute. Scenario helpers return (series, eval minutes, labels).

STEPS = 1  # minutes between samples


def _series(name: str, labels: dict[str, str], values: list[float | None]) -> dict[str, str]:
    text = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{text}}}", "values": " ".join("_" if v is None else f"{v:g}" for v in values)}


def _vllm_labels(spec: ServiceSpec, role: str, unit: int = 0) -> dict[str, str]:
    return {**_role_labels(spec, role), "pod": f"{spec.name}-{role}-{unit}", "unit": str(unit),
            "engine": "0", "model_name": spec.model.id, "job": f"{spec.namespace}/{spec.name}-{role}"}


def _role_labels(spec: ServiceSpec, role: str) -> dict[str, str]:
    return {"namespace": spec.namespace, "moe_ep_service": spec.name, "role": role}


def _minutes(duration: str) -> int:
    return int(duration.removesuffix("m"))


def _constant(spec, name, role, value, n):
    return [_series(name, _vllm_labels(spec, role), [value] * n)]


def _counter(name, labels, per_minute, n):
    return [_series(name, labels, [per_minute * i for i in range(n)])]


def _histogram(spec, name, role, n, slow: bool, boundary: float):
    """10 observations a minute, all in the bucket above ``boundary`` (slow) or in the lowest one."""
    bounds = [boundary / 2, boundary, boundary * 2, math.inf]
    out = []
    for le in bounds:
        counting = le > boundary if slow else True
        labels = {**_vllm_labels(spec, role), "le": "+Inf" if le == math.inf else f"{le:g}"}
        out += _counter(f"{name}_bucket", labels, 10 if counting else 0, n)
    return out


def scenarios(spec: ServiceSpec) -> list[dict]:
    """For every alert rule: a firing case just past its threshold and quiet cases at or below it."""
    t, slo = spec.monitoring.thresholds, spec.monitoring.slo
    cases = []

    def case(alertname, role, fire, quiet, for_, labels, fire_at=None):
        eval_minutes = fire_at or _minutes(for_) + 10
        n = eval_minutes + 2
        cases.append({"alertname": alertname, "role": role, "eval": eval_minutes, "labels": labels,
                      "fire": fire(n), "quiet": [q(n) for q in quiet]})

    roles = list(spec.pools())
    for role in roles:
        pod = {**_role_labels(spec, role), "pod": f"{spec.name}-{role}-0"}
        case("VllmQueueBacklog", role, lambda n, r=role: _constant(spec, "vllm:num_requests_waiting", r, t.queue_waiting + 1, n),
             [lambda n, r=role: _constant(spec, "vllm:num_requests_waiting", r, t.queue_waiting, n)], "5m", {**pod, "severity": "warning"})
        case("VllmKvCacheNearFull", role, lambda n, r=role: _constant(spec, "vllm:kv_cache_usage_perc", r, min(1, t.kv_cache_usage + 0.01), n),
             [lambda n, r=role: _constant(spec, "vllm:kv_cache_usage_perc", r, t.kv_cache_usage, n)], "10m", {**pod, "severity": "warning"})
        case("VllmTimeToFirstTokenOverSlo", role,
             lambda n, r=role: _histogram(spec, "vllm:time_to_first_token_seconds", r, n, True, slo.ttft_seconds),
             [lambda n, r=role: _histogram(spec, "vllm:time_to_first_token_seconds", r, n, False, slo.ttft_seconds)],
             "10m", {**_role_labels(spec, role), "severity": "critical"})
        errors_fire, errors_quiet = math.floor(1000 * t.error_ratio) + 10, max(0, math.ceil(1000 * t.error_ratio) - 10)

        def requests(errors, r=role):
            return lambda n: (_counter("vllm:request_success_total", {**_vllm_labels(spec, r), "finished_reason": "error"}, errors, n)
                              + _counter("vllm:request_success_total", {**_vllm_labels(spec, r), "finished_reason": "stop"}, 1000 - errors, n))
        case("VllmRequestErrors", role, requests(errors_fire), [requests(errors_quiet)], "5m", {**_role_labels(spec, role), "severity": "critical"})
        case("VllmPreemptionsRising", role,
             lambda n, r=role: _counter("vllm:num_preemptions_total", _vllm_labels(spec, r), t.preemptions_per_minute + 1, n),
             [lambda n, r=role: _counter("vllm:num_preemptions_total", _vllm_labels(spec, r), t.preemptions_per_minute / 2, n)],
             "10m", {**_role_labels(spec, role), "severity": "warning"})

        scope = {"moe_ep_service": spec.name, "role": role}
        not_ready = _minutes(alert(spec, "MoeEpUnitNotReady", role)["for"])
        ready = {"namespace": spec.namespace, "pod": f"{spec.name}-{role}-0", "condition": "true", "uid": "u0"}
        case("MoeEpUnitNotReady", role, lambda n, lab=ready: [_series("kube_pod_status_ready", lab, [0] * n)],
             # Loading the model (not ready for less than the budget), then ready: quiet.
             [lambda n, lab=ready, m=not_ready: [_series("kube_pod_status_ready", lab, [0] * (m - 2) + [1] * (n - m + 2))],
              # A worker rank (no probe of its own) is not the unit's readiness.
              lambda n, r=role: [_series("kube_pod_status_ready", {**ready, "pod": f"{spec.name}-{r}-0-1"}, [0] * n)]],
             f"{not_ready}m", {**ready, **scope, "severity": "critical"})

        restarts_pod = {"namespace": spec.namespace, "pod": f"{spec.name}-{role}-0-1"}
        window = 30

        def restarts(count, r=role):
            lab = {**restarts_pod, "container": "vllm", "uid": "u1"}
            return lambda n: [_series("kube_pod_container_status_restarts_total", lab, [0] * (n - window) + [min(count, i // 5) for i in range(window)])]

        def recreations(count, r=role):
            # Each recreation is a new pod uid, the old one's series ending.
            def build(n):
                out, span = [], window // (count + 1)
                for i in range(count + 1):
                    start = n - window + i * span
                    values = [None] * start + [1000 + i] * (span if i < count else n - start)
                    values += [None] * (n - len(values))
                    out.append(_series("kube_pod_created", {**restarts_pod, "uid": f"u{i}"}, values))
                return out
            return build
        for branch, make in (("restarts", restarts), ("recreations", recreations)):
            case("MoeEpUnitRestarting", f"{role}/{branch}", make(t.unit_restarts), [make(t.unit_restarts - 1)], "0m",
                 {**restarts_pod, **scope, "severity": "warning"}, fire_at=60)

        absent = _minutes(alert(spec, "VllmPoolMetricsAbsent", role)["for"])
        others = [x for x in roles if x != role]
        sts = {"namespace": spec.namespace, "statefulset": f"{spec.name}-{role}"}

        def pool(present: bool, replicas: int, r=role):
            def build(n):
                out = [_series("kube_statefulset_replicas", sts, [replicas] * n)]
                for x in ([r] if present else []) + others:
                    out += _constant(spec, "vllm:num_requests_running", x, 1, n)
                return out
            return build
        case("VllmPoolMetricsAbsent", role, pool(False, 1), [pool(True, 1), pool(False, 0)], f"{absent}m",
             {**_role_labels(spec, role), "severity": "critical"})

    decode_ttft = {**_role_labels(spec, "decode"), "severity": "critical"}
    case("VllmInterTokenLatencyOverSlo", "decode",
         lambda n: _histogram(spec, "vllm:inter_token_latency_seconds", "decode", n, True, slo.itl_seconds),
         [lambda n: _histogram(spec, "vllm:inter_token_latency_seconds", "decode", n, False, slo.itl_seconds)]
         + ([lambda n: _histogram(spec, "vllm:inter_token_latency_seconds", "prefill", n, True, slo.itl_seconds)] if "prefill" in roles else []),
         "10m", decode_ttft)
    return cases


def _expand(template: str, labels: dict[str, str]) -> str:
    text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], template)
    assert "{{" not in text, text
    return text


def unit_tests(spec: ServiceSpec) -> tuple[dict, int]:
    """A `promtool test rules` file: every alert fires and stays quiet; recording rules' values."""
    tests = []
    for c in scenarios(spec):
        role = c["role"].split("/")[0]
        rule = next(a for a in alerts(spec) if a["alert"] == c["alertname"] and a["labels"].get("role") in (None, role))
        annotations = {k: _expand(v, c["labels"]) for k, v in rule["annotations"].items()}
        expected = {"alertname": c["alertname"], "eval_time": f"{c['eval']}m"}
        tests.append({"name": f"{c['alertname']} {c['role']} fires", "interval": f"{STEPS}m", "input_series": c["fire"],
                      "alert_rule_test": [{**expected, "exp_alerts": [{"exp_labels": c["labels"], "exp_annotations": annotations}]}]})
        for i, quiet in enumerate(c["quiet"]):
            tests.append({"name": f"{c['alertname']} {c['role']} quiet {i}", "interval": f"{STEPS}m", "input_series": quiet,
                          "alert_rule_test": [{**expected, "exp_alerts": []}]})
    tests.append(recording_values_test(spec))
    return {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}, len(tests)


def recording_values_test(spec: ServiceSpec) -> dict:
    """Known inputs, known per-role outputs."""
    n = 20
    series = _counter("vllm:prompt_tokens_total", _vllm_labels(spec, "decode"), 600, n)
    series += _counter("vllm:generation_tokens_total", _vllm_labels(spec, "decode"), 120, n)
    series += _counter("vllm:generation_tokens_total", _vllm_labels(spec, "decode", unit=1), 60, n)
    series += [_series("vllm:kv_cache_usage_perc", _vllm_labels(spec, "decode"), [0.5] * n),
               _series("vllm:kv_cache_usage_perc", _vllm_labels(spec, "decode", unit=1), [0.7] * n),
               _series("vllm:num_requests_waiting", _vllm_labels(spec, "decode"), [3] * n),
               _series("vllm:num_requests_waiting", _vllm_labels(spec, "decode", unit=1), [4] * n)]
    # All TTFT observations between 1 s and 2 s: p50 interpolates to 1.5 s, p99 to 1.99 s.
    for le, per_minute in (("1", 0), ("2", 60), ("+Inf", 60)):
        series += _counter("vllm:time_to_first_token_seconds_bucket", {**_vllm_labels(spec, "decode"), "le": le}, per_minute, n)
    series += _counter("vllm:request_success_total", {**_vllm_labels(spec, "decode"), "finished_reason": "error"}, 6, n)
    series += _counter("vllm:request_success_total", {**_vllm_labels(spec, "decode"), "finished_reason": "stop"}, 54, n)
    labels = _role_labels(spec, "decode")
    expect = {
        monitoring.PROMPT_TOKENS_RATE: 10, monitoring.GENERATION_TOKENS_RATE: 3, monitoring.KV_CACHE_AVG: 0.6,
        monitoring.KV_CACHE_MAX: 0.7, monitoring.WAITING: 7, monitoring.TTFT_P50: 1.5, monitoring.TTFT_P99: 1.99,
        monitoring.ERROR_RATIO: 0.1,
    }
    return {"name": "recording rules", "interval": "1m", "input_series": series, "promql_expr_test": [
        {"expr": name, "eval_time": "15m", "exp_samples": [{"labels": name + "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}", "value": value}]}
        for name, value in expect.items()
    ]}


@pytest.mark.parametrize("spec_of", [prod, lambda: variant(**TUNED), lambda: load_service(ROOT / "stacks" / "Pulumi.dev.yaml")],
                         ids=["prod", "tuned", "dev"])
def test_promtool_unit_tests_every_alert_fires_and_stays_quiet(spec_of, tmp_path):
    spec = spec_of()
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": monitoring.rule_groups(spec)}, sort_keys=False))
    suite, count = unit_tests(spec)
    covered = {t["name"].split(" ")[0] for t in suite["tests"] if t["name"].endswith("fires")}
    assert covered == {a["alert"] for a in alerts(spec)}, "an alert without a promtool test"
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    result = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
    assert count >= 2 * len(covered)


def test_promtool_unit_tests_fail_when_a_threshold_moves(tmp_path):
    """The suite is not vacuous: rules with a looser queue threshold than the tests expect fail."""
    spec = prod()
    looser = variant(thresholds={"queue_waiting": spec.monitoring.thresholds.queue_waiting + 5})
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": monitoring.rule_groups(looser)}, sort_keys=False))
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(unit_tests(spec)[0], sort_keys=False))
    result = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode != 0 and "VllmQueueBacklog" in result.stdout + result.stderr
