"""Router, API key, per-role autoscaling and disruption budgets (issue: PD-aware router)."""

from __future__ import annotations

import copy

import yaml

from components import api_key, autoscaling, router
from components.spec import AutoscalingSpec, ServiceSpec
from moe_ep import engine, manifests, plan as planning

from .conftest import ROOT, STACKS, objects_of, planned


def service(stack: str) -> dict:
    return copy.deepcopy(yaml.safe_load((ROOT / f"stacks/Pulumi.{stack}.yaml").read_text())["config"]["moe-ep:service"])


def render(svc: dict, stack: str = "t") -> list[dict]:
    run = engine.run_program(ROOT / "__main__.py", {"moe-ep:service": svc}, stack)
    return manifests.manifests(run.resources)


def vllm_templates(objects: list[dict]) -> dict[str, dict]:
    return {o["metadata"]["name"]: o["spec"]["leaderWorkerTemplate"] for o in objects if o["kind"] == "LeaderWorkerSet"}


def test_prod_has_the_router_pool_secret_autoscalers_and_budgets():
    plan = planned("prod")
    kinds = {(o["kind"], o["metadata"]["name"]) for o in plan.objects}
    for expected in [
        ("Deployment", "deepseek-r1-router"), ("Deployment", "deepseek-r1-scheduler"), ("Service", "deepseek-r1-router"),
        ("InferencePool", "deepseek-r1"), ("Secret", "deepseek-r1-api-key"), ("Role", "deepseek-r1-scheduler"),
        ("PodDisruptionBudget", "deepseek-r1-router"),
    ]:
        assert expected in kinds, expected
    hpas = [o for o in objects_of(plan, "HorizontalPodAutoscaler") if o["spec"]["scaleTargetRef"]["kind"] == "LeaderWorkerSet"]
    assert sorted(h["spec"]["scaleTargetRef"]["name"] for h in hpas) == ["deepseek-r1-decode", "deepseek-r1-prefill"]
    for hpa in hpas:
        behavior = hpa["spec"]["behavior"]
        up = behavior["scaleUp"]["policies"]
        assert up == [{"type": "Pods", "value": 1, "periodSeconds": 120}]
        assert 60 <= up[0]["periodSeconds"] <= 120
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 600
        assert behavior["scaleDown"]["selectPolicy"] == "Min"
        assert hpa["spec"]["scaleTargetRef"]["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
    pdbs = {o["metadata"]["name"]: o["spec"] for o in objects_of(plan, "PodDisruptionBudget")}
    assert pdbs["deepseek-r1-router"]["minAvailable"] == 1
    for role in ("prefill", "decode"):
        assert pdbs[f"deepseek-r1-{role}"]["maxUnavailable"] == 1
        assert pdbs[f"deepseek-r1-{role}"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_autoscaled_units_are_not_fought_over_by_pulumi():
    plan = planned("prod")
    for lws in plan.run.of_type("kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"):
        assert lws.ignore_changes == ("spec.replicas",)
    dev = planned("dev")
    for lws in dev.run.of_type("kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"):
        assert lws.ignore_changes == ()


def test_keda_scaled_object_queries_one_aggregated_series():
    plan = planned("staging")
    scaled = objects_of(plan, "ScaledObject")
    assert [s["spec"]["scaleTargetRef"]["name"] for s in scaled] == ["deepseek-r1-decode"]
    trigger = scaled[0]["spec"]["triggers"][0]
    assert trigger["type"] == "prometheus" and trigger["metadata"]["query"].startswith("sum(vllm:num_requests_waiting{")
    assert scaled[0]["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["selectPolicy"] == "Min"


def test_decode_pods_behind_llm_d_get_the_routing_sidecar():
    lws = {o["metadata"]["name"]: o for o in objects_of(planned("prod"), "LeaderWorkerSet")}
    decode = lws["deepseek-r1-decode"]["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]
    sidecar = decode["initContainers"][0]
    assert sidecar["restartPolicy"] == "Always" and "--kv-connector=nixlv2" in sidecar["args"]
    assert not any(a.startswith("--connector") for a in sidecar["args"])  # deprecated in the sidecar v0.7.1
    vllm = decode["containers"][0]
    assert vllm["command"][vllm["command"].index("--port") + 1] == "8200"
    assert vllm["startupProbe"]["httpGet"]["port"] == 8200
    prefill = lws["deepseek-r1-prefill"]["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]
    assert "initContainers" not in prefill
    assert prefill["containers"][0]["ports"][0] == {"name": "http", "containerPort": 8000, "protocol": "TCP"}


def test_inference_pool_selects_rank_zero_of_both_roles_and_names_the_scheduler():
    pool = objects_of(planned("prod"), "InferencePool")[0]["spec"]
    assert pool["selector"]["matchLabels"]["leaderworkerset.sigs.k8s.io/worker-index"] == "0"
    assert "llm-d.ai/role" not in pool["selector"]["matchLabels"]
    assert pool["endpointPickerRef"]["name"] == "deepseek-r1-scheduler"
    config = yaml.safe_load(next(o for o in objects_of(planned("prod"), "ConfigMap") if o["metadata"]["name"] == "deepseek-r1-scheduler")["data"]["scheduler.yaml"])
    handler = next(p for p in config["plugins"] if p["type"] == "pd-profile-handler")
    assert handler["parameters"]["deciderPluginName"] == "prefix-based-pd-decider"
    assert {p["name"] for p in config["schedulingProfiles"]} == {"prefill", "decode"}


def test_decode_only_stacks_get_a_round_robin_router():
    plan = planned("dev")
    assert not objects_of(plan, "InferencePool")
    backends = next(o for o in objects_of(plan, "Service") if o["metadata"]["name"] == "qwen3-30b-router-backends")
    assert backends["spec"]["clusterIP"] == "None"
    envoy = yaml.safe_load(next(o for o in objects_of(plan, "ConfigMap") if o["metadata"]["name"] == "qwen3-30b-router")["data"]["envoy.yaml"])
    cluster = envoy["static_resources"]["clusters"][0]
    assert cluster["lb_policy"] == "ROUND_ROBIN" and cluster["type"] == "STRICT_DNS"


def test_every_vllm_container_reads_the_key_from_its_secret():
    for stack in STACKS:
        plan = planned(stack)
        for tpl in vllm_templates(plan.objects).values():
            for which in ("leaderTemplate", "workerTemplate"):
                if which not in tpl:
                    continue
                env = {e["name"]: e for e in tpl[which]["spec"]["containers"][0]["env"]}
                assert env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": f"{plan.spec.name}-api-key", "key": "api-key"}
        assert "api_key" in plan.run.secret_outputs
        assert planning.to_json(plan)["outputs"]["api_key"] == "[secret]"


def test_the_generated_key_is_in_no_rendered_file_but_its_secret(tmp_path, capsys):
    from moe_ep import cli

    for stack in STACKS:
        plan = planned(stack)
        key = next(r for r in plan.run.resources if r.type == api_key.KEY_TYPE)
        out = tmp_path / stack
        assert cli.main(["render", "--stack", stack, "--out", str(out)]) == 0
        texts = {p.name: p.read_text() for p in sorted(out.iterdir())}
        holders = [name for name, text in texts.items() if plan.run.outputs["api_key"] in text]
        assert len(holders) == 1 and holders[0].endswith(f"-secret-{plan.spec.name}-api-key.yaml"), holders
        assert len(plan.run.outputs["api_key"]) == key.inputs["length"] == 48
        # The serialized dynamic provider is an input of the key only: nothing shows it.
        provider = key.inputs["__provider"]
        assert not any(provider in text for text in texts.values())
        assert cli.main(["preview", "--stack", stack, "--json"]) == 0
        assert cli.main(["preview", "--stack", stack]) == 0
        printed = capsys.readouterr().out
        assert plan.run.outputs["api_key"] not in printed and provider not in printed


def test_router_settings_and_autoscaling_bounds_change_no_vllm_pod_template():
    base = service("prod")
    before = vllm_templates(render(base))
    changed = copy.deepcopy(base)
    changed["router"] = {"min_replicas": 3, "max_replicas": 10, "target_cpu_utilization": 50, "non_cached_tokens": 64,
                         "service_type": "LoadBalancer"}
    changed["decode"]["autoscaling"] = {"engine": "keda", "min_replicas": 2, "max_replicas": 8, "target_waiting_per_unit": 2}
    changed["prefill"]["autoscaling"]["max_replicas"] = 6
    changed["api_key"] = {"keepers": {"rotated": "2026-11"}}
    after_objects = render(changed)
    assert vllm_templates(after_objects) == before
    assert any(o["kind"] == "ScaledObject" for o in after_objects), "the change did take effect"


def test_autoscaling_bounds_are_validated():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="at most max_replicas"):
        AutoscalingSpec(min_replicas=5, max_replicas=2)
    with pytest.raises(ValidationError, match="scale to zero needs engine keda"):
        AutoscalingSpec(min_replicas=0, max_replicas=2)
    assert AutoscalingSpec(engine="keda", min_replicas=0, max_replicas=2).min_replicas == 0
    with pytest.raises(ValidationError):
        AutoscalingSpec(max_replicas=2, scale_down_stabilization_seconds=60)


def test_hpa_spec_is_pure_and_targets_the_unit():
    spec = autoscaling.hpa_spec(AutoscalingSpec(max_replicas=4, target_waiting_per_unit=2.5), "x-decode")
    assert spec["scaleTargetRef"] == {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "name": "x-decode"}
    assert spec["metrics"][0]["pods"]["target"]["averageValue"] == "2.5"


def test_llm_d_mode_needs_a_prefill_pool():
    from components.spec import StackError, service_from_config
    import pytest

    svc = service("dev")
    svc["router"] = {"mode": "llm-d"}
    with pytest.raises(StackError, match=r"router\.mode"):
        service_from_config(svc, "dev")
    assert router.endpoint(ServiceSpec.model_validate(service("dev"))) == "http://qwen3-30b-router.llm-dev.svc.cluster.local"


def test_config_files_read_as_the_pure_python_emitter_writes_them(stack):
    """The router's config files come from libyaml's emitter; the pure-Python one writes the same
    text, so the rendered ConfigMaps do not depend on which PyYAML build is installed."""
    files = [(name, text) for o in objects_of(planned(stack), "ConfigMap") if o["metadata"]["name"].endswith(("-router", "-scheduler"))
             for name, text in o["data"].items() if name.endswith(".yaml")]
    assert files
    for name, text in files:
        assert yaml.dump(yaml.safe_load(text), Dumper=yaml.SafeDumper, sort_keys=False) == text, name


def test_a_config_change_rolls_the_pods_that_read_it_and_nothing_else_does():
    # Envoy and the scheduler read their ConfigMap once at start: a new ConfigMap alone restarted no
    # pod (predicted by reading the provider, which replaces the ConfigMap and leaves the Deployment).
    def templates(objects):
        return {o["metadata"]["name"]: o["spec"]["template"] for o in objects if o["kind"] == "Deployment"}

    def configs(objects):
        return {o["metadata"]["name"]: o["data"] for o in objects if o["kind"] == "ConfigMap" and "dashboard" not in o["metadata"]["name"]}

    base = service("prod")
    before = render(base)
    for name, template in templates(before).items():
        config = next(iter(configs(before)[name].values()))
        assert template["metadata"]["annotations"] == router.config_checksum(config)
    rescaled = copy.deepcopy(base)
    rescaled["router"] = {"min_replicas": 3, "max_replicas": 10}
    assert templates(render(rescaled)) == templates(before)
    retuned = copy.deepcopy(base)
    retuned["router"] = {"non_cached_tokens": 64}
    after = render(retuned)
    changed = {n for n, t in templates(after).items() if t != templates(before)[n]}
    assert changed == {n for n, c in configs(after).items() if c != configs(before)[n]} != set()


def test_router_and_scheduler_pods_prefer_nodes_without_a_gpu_and_model_servers_do_not():
    """Found on the live plane by `moe-ep status`: routers ran on H20 nodes beside idle CPU nodes."""
    for stack in STACKS:
        plan = planned(stack)
        for deployment in objects_of(plan, "Deployment"):
            preferred = deployment["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
            assert {"key": "nvidia.com/gpu.product", "operator": "DoesNotExist"} in preferred[0]["preference"]["matchExpressions"], stack
            assert "requiredDuringSchedulingIgnoredDuringExecution" not in deployment["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
        for template in vllm_templates(plan.objects).values():
            for pod in (template.get("leaderTemplate"), template["workerTemplate"]):
                assert pod is None or "DoesNotExist" not in str(pod["spec"].get("affinity", {}))


def test_envoy_admits_what_each_decode_unit_runs_not_its_default_1024_per_cluster():
    # Without circuit breakers Envoy caps every cluster at 1,024 connections and requests: one prod
    # decode unit runs DP 8 x 1,024 sequences.
    for stack in STACKS:
        plan = planned(stack)
        envoy = yaml.safe_load(next(o for o in objects_of(plan, "ConfigMap") if o["metadata"]["name"].endswith("-router"))["data"]["envoy.yaml"])
        [backends] = [c for c in envoy["static_resources"]["clusters"] if c["name"] == "backends"]
        [per_unit] = backends["circuit_breakers"]["per_host_thresholds"]
        [cluster] = backends["circuit_breakers"]["thresholds"]
        assert per_unit["max_connections"] == 2 * router.unit_concurrency(plan.spec) > 1024, stack
        assert cluster["max_requests"] == cluster["max_connections"] == cluster["max_pending_requests"] == per_unit["max_connections"] * 1000
    assert router.unit_concurrency(planned("prod").spec) == 8 * 1024


def test_a_decode_unit_behind_the_routing_sidecar_is_reached_on_the_serving_port():
    # The decode leader Service said port 8200 (vLLM's, behind the sidecar) while it sent to the
    # sidecar's 8000: every unit's Service now listens where its pods serve clients.
    for stack in STACKS:
        for svc in objects_of(planned(stack), "Service"):
            if svc["metadata"]["name"].endswith("-leader"):
                assert svc["spec"]["ports"] == [{"name": "http", "port": 8000, "protocol": "TCP", "targetPort": "http"}], (stack, svc)


def test_router_and_scheduler_services_are_not_awaited_and_select_their_deployments_pods():
    # Awaiting them only slept 10 s after their endpoints settled: their Deployments are awaited,
    # and a Service selecting other pods than its Deployment's would be what that wait caught.
    objects = planned("prod").objects
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    services = [o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] in deployments]
    assert sorted(s["metadata"]["name"] for s in services) == ["deepseek-r1-router", "deepseek-r1-scheduler"]
    for svc in services:
        assert svc["metadata"]["annotations"] == router.SERVICE_ANNOTATIONS
        pod_labels = deployments[svc["metadata"]["name"]]["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= pod_labels.items()
