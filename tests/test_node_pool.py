"""GpuNodePool and placement: both provisioners, the capacity rule, every placement field."""

from __future__ import annotations

import copy
import json

import kubernetes_validate
import pytest
import yaml

from components import node_pool as np
from components.placement import GPU_TAINT_KEY, RESTRICTED_CONTAINER
from components.spec import SERVICE_KEY, StackError, capacity, service_from_config
from moe_ep import plan as planning, schemas

from .conftest import ROOT, objects_of, planned

GPU_TOLERATION = {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}


def stack_service(stack: str) -> dict:
    text = (ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8")
    return copy.deepcopy(yaml.safe_load(text)["config"][SERVICE_KEY])


def spec_of(service: dict):
    return service_from_config(service, "test")


def karpenter_service(**node_pool) -> dict:
    service = stack_service("staging")
    service["node_pool"] = {
        "provisioner": "karpenter",
        "karpenter": {"node_class": {"name": "gpu"}},
        **node_pool,
    }
    return service


def problems_of(service: dict) -> list:
    with pytest.raises(StackError) as error:
        spec_of(service)
    return error.value.problems


def pod_templates(lws: dict) -> list[dict]:
    template = lws["spec"]["leaderWorkerTemplate"]
    return [template[k] for k in ("leaderTemplate", "workerTemplate") if k in template]


# --- the stack section ---------------------------------------------------------------------------


def test_a_provisioner_needs_its_own_section():
    service = karpenter_service()
    del service["node_pool"]["karpenter"]
    [problem] = problems_of(service)
    assert problem.path == f"{SERVICE_KEY}.node_pool" and "a `karpenter` section" in problem.expected


def test_the_two_provisioners_are_mutually_exclusive():
    service = karpenter_service(existing={"nodes": ["a"]})
    [problem] = problems_of(service)
    assert "mutually exclusive" in problem.expected


@pytest.mark.parametrize("requirement, message", [
    ({"key": "example.com/gpu", "operator": "In"}, "at least one value"),
    ({"key": "example.com/gpu", "operator": "Exists", "values": ["x"]}, "no values"),
    ({"key": "example.com/cores", "operator": "Gt", "values": ["many"]}, "non-negative integer"),
    ({"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}, "Karpenter allows"),
    ({"key": "karpenter.sh/nodepool", "operator": "In", "values": ["x"]}, None),
    ({"key": "node.karpenter.sh/anything", "operator": "Exists"}, "Karpenter allows"),
])
def test_requirements_follow_the_crd_rules(requirement, message):
    service = karpenter_service()
    service["node_pool"]["karpenter"]["requirements"] = [requirement]
    if message is None:
        spec_of(service)  # karpenter.sh/nodepool is one of the two allowed keys in that domain
        return
    [problem] = problems_of(service)
    assert problem.path.endswith("requirements[0]") or problem.path.endswith("requirements[0].key")
    assert message in problem.expected


@pytest.mark.parametrize("key, value", [
    ("consolidate_after", "10 minutes"), ("expire_after", "1d"), ("max_disrupted_nodes", "110%"),
])
def test_karpenter_durations_and_budgets_are_checked(key, value):
    service = karpenter_service()
    service["node_pool"]["karpenter"][key] = value
    [problem] = problems_of(service)
    assert problem.path == f"{SERVICE_KEY}.node_pool.karpenter.{key}" and problem.value == value


def test_existing_node_names_are_distinct_dns_names():
    service = stack_service("prod")
    service["node_pool"]["existing"]["nodes"] = ["gpu-1", "gpu-1", "gpu-2", "gpu-3", "gpu-4", "gpu-5"]
    assert "listed twice" in problems_of(service)[0].expected
    service["node_pool"]["existing"]["nodes"] = ["GPU_1"]
    assert "DNS-1123" in problems_of(service)[0].expected


def test_rdma_resource_needs_a_domain():
    service = karpenter_service(rdma={"resource_name": "rdma"})
    [problem] = problems_of(service)
    assert problem.path == f"{SERVICE_KEY}.node_pool.rdma.resource_name"


# --- capacity ------------------------------------------------------------------------------------


def test_capacity_counts_both_pools_at_their_autoscaling_ceiling():
    numbers = capacity(planned("staging").spec)
    # prefill: 1 unit (no autoscaling) x 1 node x 8; decode: keda max 2 units x 2 nodes x 8.
    assert numbers["roles"]["prefill"] == {"max_replicas": 1, "nodes_per_replica": 1, "gpus_per_node": 8,
                                           "max_nodes": 1, "max_gpus": 8}
    assert numbers["roles"]["decode"]["max_replicas"] == 2 and numbers["roles"]["decode"]["max_gpus"] == 32
    assert numbers["max_gpus"] == 40 and numbers["max_nodes"] == 5
    assert numbers["gpu_limit"] == 40 and numbers["nodes_available"] is None


def test_capacity_without_autoscaling_uses_replicas():
    service = karpenter_service()
    service["decode"].pop("autoscaling", None)
    service["decode"]["replicas"] = 3
    numbers = capacity(spec_of(service))
    assert numbers["roles"]["decode"]["max_replicas"] == 3 and numbers["max_gpus"] == 8 + 3 * 16


def test_a_gpu_limit_below_the_pools_is_bad_input():
    service = karpenter_service()
    service["node_pool"]["karpenter"]["gpu_limit"] = 39
    [problem] = problems_of(service)
    assert problem.path == f"{SERVICE_KEY}.node_pool.karpenter.gpu_limit" and problem.rule == "node-pool-covers-pools"
    assert "at least 40" in problem.expected
    service["node_pool"]["karpenter"]["gpu_limit"] = 64
    assert capacity(spec_of(service))["gpu_limit"] == 64


def test_capacity_of_existing_nodes_is_exposed_for_the_policy_pack():
    numbers = capacity(planned("prod").spec)
    # prod: prefill and decode autoscale to 3 single-node units each, on six named nodes.
    assert numbers["max_nodes"] == 6 and numbers["nodes_available"] == 6
    assert numbers["max_gpus"] == 48 and numbers["gpu_limit"] is None
    service = stack_service("prod")
    service["node_pool"]["existing"]["nodes"] = service["node_pool"]["existing"]["nodes"][:5]
    assert capacity(spec_of(service))["nodes_available"] == 5


def test_a_bad_node_pool_exits_2_naming_the_key(tmp_path, capsys):
    from moe_ep import cli

    service = karpenter_service()
    service["node_pool"]["karpenter"]["gpu_limit"] = 8
    path = tmp_path / "Pulumi.small.yaml"
    path.write_text(yaml.safe_dump({"config": {SERVICE_KEY: service}}), encoding="utf-8")
    assert cli.main(["preview", "--config", str(path)]) == 2
    assert "node_pool.karpenter.gpu_limit = 8" in capsys.readouterr().err


# --- placement -----------------------------------------------------------------------------------


def test_without_a_node_pool_pods_select_their_gpu_product_and_tolerate_the_gpu_taint():
    # On the live plane dev's L40S unit landed on an untainted H20 node: nothing said which GPU.
    spec = planned("dev").spec
    assert spec.node_pool is None
    where = np.placement(spec, "decode")
    assert dict(where.node_selector) == {"nvidia.com/gpu.product": "NVIDIA-L40S"}
    assert list(where.tolerations) == [GPU_TOLERATION]
    assert dict(where.extra_resources) == {} and where.exclusive_topology is None
    assert dict(where.security_context) == RESTRICTED_CONTAINER
    assert dict(where.pod_annotations) == {np.SECURITY_TIER_ANNOTATION: "restricted"}


def test_staging_multi_node_decode_gets_rdma_topology_and_ipc_lock():
    spec = planned("staging").spec
    where = np.placement(spec, "decode")
    assert dict(where.node_selector) == {
        np.POOL_LABEL: "deepseek-r1", np.RDMA_LABEL: "true", np.GPU_PRODUCT_LABEL: "NVIDIA-H200",
    }
    assert dict(where.extra_resources) == {"vpc.amazonaws.com/efa": 16}
    assert where.exclusive_topology == "topology.k8s.aws/network-node-layer-3"
    context = dict(where.security_context)
    assert context["capabilities"] == {"add": ["IPC_LOCK"], "drop": ["ALL"]}
    # Capabilities reach only uid 0 (no ambient capabilities): root is explicit, privilege is not.
    assert context["runAsUser"] == 0 and "privileged" not in context and context["allowPrivilegeEscalation"] is False
    assert where.pod_annotations[np.SECURITY_TIER_ANNOTATION] == "rdma"
    # Single-node prefill: RDMA for NIXL, but no exclusive topology.
    assert np.placement(spec, "prefill").exclusive_topology is None
    assert dict(np.placement(spec, "prefill").extra_resources) == {"vpc.amazonaws.com/efa": 16}


def test_single_node_decode_only_needs_no_rdma():
    service = karpenter_service(rdma={"resource_name": "rdma/ib"})
    del service["prefill"]
    service["decode"].update(nodes_per_replica=1, data_parallel_size=8, eplb={"num_redundant_experts": 0})
    spec = spec_of(service)
    where = np.placement(spec, "decode")
    assert dict(where.extra_resources) == {} and np.RDMA_LABEL not in where.node_selector
    assert dict(where.security_context) == RESTRICTED_CONTAINER and np.security_tier(spec, "decode") == "restricted"
    assert where.node_selector[np.POOL_LABEL] == "deepseek-r1"


def test_deepep_adds_sys_rawio_and_multus_networks_are_annotated():
    service = karpenter_service(rdma={"resource_name": "rdma/rdma_shared_device_a", "per_pod": 2, "networks": "llm/rdma-net"})
    service["decode"]["all2all_backend"] = "deepep_low_latency"
    spec = spec_of(service)
    decode, prefill = np.placement(spec, "decode"), np.placement(spec, "prefill")
    assert decode.security_context["capabilities"]["add"] == ["IPC_LOCK", "SYS_RAWIO"]
    assert prefill.security_context["capabilities"]["add"] == ["IPC_LOCK"]
    assert decode.pod_annotations[np.MULTUS_NETWORKS_ANNOTATION] == "llm/rdma-net"
    assert dict(decode.extra_resources) == {"rdma/rdma_shared_device_a": 2}


def test_privileged_only_when_the_provider_flag_says_so():
    spec = spec_of(karpenter_service(rdma={}, privileged=True))
    where = np.placement(spec, "decode")
    assert where.security_context["privileged"] is True and np.security_tier(spec, "decode") == "privileged"
    assert "capabilities" not in where.security_context


def test_gpu_product_selection_and_pool_name_are_settings():
    spec = spec_of(karpenter_service(select_gpu_product=False, name="h200-pool"))
    where = np.placement(spec, "decode")
    assert dict(where.node_selector) == {np.POOL_LABEL: "h200-pool"}
    labels = np.karpenter_node_pool_spec(spec)["template"]["metadata"]["labels"]
    assert labels == {np.POOL_LABEL: "h200-pool"}


# --- the Karpenter NodePool ----------------------------------------------------------------------


def nodepool_manifest(spec) -> dict:
    return {
        "apiVersion": np.KARPENTER_API_VERSION, "kind": "NodePool", "metadata": {"name": np.pool_name(spec)},
        "spec": np.karpenter_node_pool_spec(spec),
    }


def test_karpenter_node_pool_spec(crd_dir):
    service = karpenter_service(rdma={})
    service["node_pool"]["karpenter"].update(
        instance_types=["p5.48xlarge", "p5en.48xlarge"], capacity_types=["on-demand", "reserved"],
        requirements=[{"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt", "values": ["7"]},
                      {"key": "example.com/fabric", "operator": "Exists"}],
        replace_drifted_nodes=True, max_disrupted_nodes="10%", consolidate_after="30m",
    )
    spec = spec_of(service)
    body = np.karpenter_node_pool_spec(spec)
    assert body["template"]["spec"]["taints"] == [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]
    assert body["template"]["spec"]["requirements"] == [
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand", "reserved"]},
        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["p5.48xlarge", "p5en.48xlarge"]},
        {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt", "values": ["7"]},
        {"key": "example.com/fabric", "operator": "Exists"},
    ]
    assert body["disruption"] == {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "30m", "budgets": [{"nodes": "10%"}]}
    assert body["limits"] == {"nvidia.com/gpu": 40}
    assert schemas.validate_custom_resources([nodepool_manifest(spec)], crd_dir) == []


def test_the_node_pool_crd_check_is_strict(crd_dir):
    manifest = json.loads(json.dumps(nodepool_manifest(planned("staging").spec)))
    manifest["spec"]["disruption"]["consolidationPolicy"] = "WhenUnderutilized"
    manifest["spec"]["template"]["spec"]["taint"] = []
    messages = [p.message for p in schemas.validate_custom_resources([manifest], crd_dir)]
    assert any("consolidationPolicy" in m for m in messages) and any("'taint'" in m for m in messages)


def test_staging_registers_its_node_pool_under_the_service(crd_dir):
    plan = planned("staging")
    [pool] = plan.run.of_type("moe-ep:index:GpuNodePool")
    [node_pool] = [r for r in plan.run.resources if r.type == "kubernetes:karpenter.sh/v1:NodePool"]
    assert node_pool.parent == pool.urn and pool.parent_name == "deepseek-r1"
    [manifest] = objects_of(plan, "NodePool")
    assert manifest["spec"]["limits"] == {"nvidia.com/gpu": 40}
    assert manifest["spec"]["disruption"]["consolidationPolicy"] == "WhenEmpty"
    assert {"nodes": "0", "reasons": ["Drifted"]} in manifest["spec"]["disruption"]["budgets"]
    assert manifest["spec"]["template"]["spec"]["expireAfter"] == "Never"
    assert schemas.validate_custom_resources([manifest], crd_dir) == []
    assert plan.run.outputs["node_pool"] == "deepseek-r1"


# --- existing nodes ------------------------------------------------------------------------------


def test_prod_patches_each_existing_node_with_labels_and_taint():
    plan = planned("prod")
    patches = [r for r in plan.run.resources if r.type == "kubernetes:core/v1:NodePatch"]
    assert sorted(r.inputs["metadata"]["name"] for r in patches) == [f"gpu-h20-0{i}" for i in range(1, 7)]
    nodes = objects_of(plan, "Node")
    assert len(nodes) == 6
    for node in nodes:
        assert node["apiVersion"] == "v1"
        assert node["metadata"]["labels"] == {np.POOL_LABEL: "deepseek-r1", np.RDMA_LABEL: "true"}
        assert "annotations" not in node["metadata"]  # no field manager named, and never patchForce
        assert node["spec"] == {"taints": [{"effect": "NoSchedule", "key": "nvidia.com/gpu"}]}
        # A partial Node is a valid Node: the schema requires no field.
        kubernetes_validate.validate(node, "1.31", strict=True)
    assert objects_of(plan, "NodePool") == []


def test_existing_nodes_may_keep_their_own_taints():
    service = stack_service("prod")
    service["node_pool"]["existing"]["taint"] = False
    patch = np.node_patch(spec_of(service), "gpu-h20-01")
    assert "spec" not in patch and patch["metadata"]["labels"][np.POOL_LABEL] == "deepseek-r1"


def test_a_config_file_with_existing_nodes_runs_through_the_program(tmp_path):
    service = stack_service("dev")
    service["node_pool"] = {"provisioner": "existing", "existing": {"nodes": ["l40s-a"], "taint": False}}
    path = tmp_path / "Pulumi.lab.yaml"
    path.write_text(yaml.safe_dump({"config": {SERVICE_KEY: service}}), encoding="utf-8")
    plan = planning.build(path, ROOT, "lab")
    [node] = objects_of(plan, "Node")
    assert node["metadata"]["name"] == "l40s-a" and "spec" not in node
    [lws] = objects_of(plan, "LeaderWorkerSet")
    [template] = pod_templates(lws)
    assert template["spec"]["nodeSelector"] == {np.POOL_LABEL: "qwen3-30b", np.GPU_PRODUCT_LABEL: "NVIDIA-L40S"}


# --- every vLLM pod, every stack -----------------------------------------------------------------


def test_every_vllm_pod_is_placed(stack):
    plan = planned(stack)
    for lws in objects_of(plan, "LeaderWorkerSet"):
        role = lws["metadata"]["labels"]["moe-ep.io/role"]
        multi_node = lws["spec"]["leaderWorkerTemplate"]["size"] > 1
        for template in pod_templates(lws):
            pod = template["spec"]
            assert GPU_TOLERATION in pod["tolerations"]
            assert template["metadata"]["annotations"][np.SECURITY_TIER_ANNOTATION] in ("restricted", "rdma", "privileged")
            if plan.spec.node_pool is None or plan.spec.node_pool.select_gpu_product:
                assert pod["nodeSelector"]["nvidia.com/gpu.product"] == plan.spec.gpu.info.node_label
            if plan.spec.node_pool is None:
                continue
            assert pod["nodeSelector"][np.POOL_LABEL] == np.pool_name(plan.spec)
            if multi_node or plan.spec.disaggregated:
                vllm = pod["containers"][0]
                assert plan.spec.node_pool.rdma.resource_name in vllm["resources"]["limits"], (stack, role)
                assert "IPC_LOCK" in vllm["securityContext"]["capabilities"]["add"]
            if multi_node:
                assert lws["metadata"]["annotations"]["leaderworkerset.sigs.k8s.io/exclusive-topology"]


def test_prod_and_staging_have_node_pools():
    assert planned("prod").spec.node_pool.provisioner == "existing"
    assert planned("staging").spec.node_pool.provisioner == "karpenter"
    for stack in ("prod", "staging"):
        assert len(planned(stack).run.of_type("moe-ep:index:GpuNodePool")) == 1


def test_two_services_sharing_nodes_send_identical_patches():
    # A field manager named in the patch (the pool's name, later the service's) was applied to the
    # node as an annotation: two stacks on the same nodes conflicted over its value on the second
    # `up` (the local plane). Identical patches let server-side apply share every field between the
    # managers pulumi-kubernetes draws per resource; each destroy releases only its own.
    prod = planned("prod").spec
    other = prod.model_copy(update={"namespace": "llm-canary"})
    assert np.pool_name(prod) == np.pool_name(other)
    assert np.node_patch(prod, "gpu-h20-01") == np.node_patch(other, "gpu-h20-01")
