"""DistributedUnit: the LeaderWorkerSet and rank-0 Service it builds (pure functions)."""

from __future__ import annotations

from components.placement import Placement
from components.unit import (
    LEADER_SERVICE_ANNOTATIONS,
    LWS_WORKER_INDEX_LABEL,
    DistributedUnitArgs,
    leader_service_spec,
    leader_worker_set_spec,
    lws_metadata,
    pod_template,
)

from .conftest import objects_of, planned


def args(**over) -> DistributedUnitArgs:
    base = dict(
        namespace="llm", name="r1-decode", image="vllm/vllm-openai:v0.33.0", size=2,
        leader_command=("vllm", "serve", "m"), worker_command=("vllm", "serve", "m", "--headless"), gpus_per_pod=8, startup_minutes=40,
        env=({"name": "NCCL_SOCKET_IFNAME", "value": "ib0"},), comm_interface="ib0",
    )
    base.update(over)
    return DistributedUnitArgs.model_validate(base)


def env_of(template: dict) -> dict[str, dict]:
    return {e["name"]: e for e in template["spec"]["containers"][0]["env"]}


def test_guard_recreates_the_whole_group():
    assert leader_worker_set_spec(args())["leaderWorkerTemplate"]["restartPolicy"] == "RecreateGroupOnPodRestart"
    assert leader_worker_set_spec(args(guard=False))["leaderWorkerTemplate"]["restartPolicy"] == "None"


def test_not_leader_ready_startup_and_whole_unit_rollout():
    spec = leader_worker_set_spec(args(max_surge=1, max_unavailable=0))
    assert spec["startupPolicy"] == "LeaderCreated"
    assert spec["rolloutStrategy"] == {
        "type": "RollingUpdate", "rollingUpdateConfiguration": {"maxSurge": 1, "maxUnavailable": 0},
    }
    assert spec["leaderWorkerTemplate"]["size"] == 2


def test_rank_env_maps_lws_to_pai_eas_names():
    for leader in (True, False):
        env = env_of(pod_template(args(), leader))
        assert env["RANK_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == f"metadata.labels['{LWS_WORKER_INDEX_LABEL}']"
        assert env["MASTER_ADDRESS"]["value"] == "$(LWS_LEADER_ADDRESS)"
        assert env["RANK_IP"]["value"] == "$(POD_IP)"
        assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
        assert env["COMM_IFNAME"]["value"] == "ib0"
        names = [e["name"] for e in pod_template(args(), leader)["spec"]["containers"][0]["env"]]
        assert names.index("POD_IP") < names.index("RANK_IP"), "POD_IP must precede its references"
        assert len(names) == len(set(names))


def test_service_selects_rank_zero_only():
    spec = leader_service_spec(args())
    assert spec["selector"] == {"leaderworkerset.sigs.k8s.io/name": "r1-decode", LWS_WORKER_INDEX_LABEL: "0"}
    assert spec["ports"][0]["port"] == 8000


def test_shm_is_a_sized_memory_volume_mounted_at_dev_shm():
    template = pod_template(args(shm_size="64Gi"), True)
    assert template["spec"]["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Gi"}}]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in template["spec"]["containers"][0]["volumeMounts"]


def test_gpu_requests_equal_limits_in_whole_gpus():
    container = pod_template(args(placement=Placement(extra_resources={"rdma/ib": 1})), True)["spec"]["containers"][0]
    assert container["resources"]["requests"] == container["resources"]["limits"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert container["resources"]["limits"]["rdma/ib"] == "1"


def test_every_quantity_is_the_string_the_api_server_gives_back(stack):
    # On the live plane a preview right after `up` showed `nvidia.com/gpu: "4" => 4` on the
    # LeaderWorkerSet: a custom resource's template comes back from the API server as stored.
    for lws in objects_of(planned(stack), "LeaderWorkerSet"):
        for role in ("leaderTemplate", "workerTemplate"):
            template = lws["spec"]["leaderWorkerTemplate"].get(role)
            for container in (template or {"spec": {"containers": []}})["spec"]["containers"]:
                for amounts in container.get("resources", {}).values():
                    assert all(isinstance(v, str) for v in amounts.values()), (stack, role, amounts)


def test_probes_budget_minutes_for_loading_on_rank_zero_only():
    leader = pod_template(args(startup_minutes=40), True)["spec"]["containers"][0]
    probe = leader["startupProbe"]
    assert probe["httpGet"]["path"] == "/health"
    assert probe["periodSeconds"] * probe["failureThreshold"] == 40 * 60
    assert leader["readinessProbe"]["httpGet"]["path"] == "/health"
    assert leader["livenessProbe"]["httpGet"]["path"] == "/health"
    worker = pod_template(args(), False)["spec"]["containers"][0]
    assert "startupProbe" not in worker and "readinessProbe" not in worker  # headless ranks serve no HTTP


def test_no_service_links():
    for leader in (True, False):
        assert pod_template(args(), leader)["spec"]["enableServiceLinks"] is False


def test_worker_template_runs_the_worker_command():
    spec = leader_worker_set_spec(args())["leaderWorkerTemplate"]
    assert spec["leaderTemplate"]["spec"]["containers"][0]["command"] == ["vllm", "serve", "m"]
    worker = spec["workerTemplate"]["spec"]["containers"][0]
    assert worker["command"] == ["vllm", "serve", "m", "--headless"] and "args" not in worker


def test_single_node_unit_has_only_the_worker_template_as_leader():
    spec = leader_worker_set_spec(args(size=1))["leaderWorkerTemplate"]
    assert "leaderTemplate" not in spec
    assert spec["workerTemplate"]["spec"]["containers"][0]["command"] == ["vllm", "serve", "m"]


def test_start_barrier_waits_for_every_rank():
    template = pod_template(args(start_barrier=True), False)
    init = template["spec"]["initContainers"][0]
    assert init["name"] == "start-barrier" and "LWS_GROUP_SIZE" in init["command"][-1]
    assert "initContainers" not in pod_template(args(), False)["spec"]


def test_exclusive_topology_only_for_multi_node_units():
    placement = Placement(exclusive_topology="topology.kubernetes.io/zone")
    assert lws_metadata(args(placement=placement))["annotations"] == {
        "leaderworkerset.sigs.k8s.io/exclusive-topology": "topology.kubernetes.io/zone"
    }
    assert "annotations" not in lws_metadata(args(size=1, placement=placement))


def test_pulumi_does_not_await_the_rank_0_service_through_a_model_load():
    # pulumi-kubernetes (provider/pkg/await/service.go) waits for a selector Service until no
    # endpoint is unready, 10 minutes at most; rank 0 is unready while the model loads (20+ minutes).
    leaders = [r for r in planned("prod").run.resources
               if r.type == "kubernetes:core/v1:Service" and r.name.endswith("-leader")]
    assert len(leaders) == 2
    assert all(r.inputs["metadata"]["annotations"] == LEADER_SERVICE_ANNOTATIONS == {"pulumi.com/skipAwait": "true"}
               for r in leaders)


def test_the_rank_0_service_leaves_the_unit_name_to_lws_headless_service(stack):
    # On the live plane the LWS controller's headless Service (named after the LeaderWorkerSet:
    # the subdomain in LWS_LEADER_ADDRESS) and ours collided: prod's `up` failed on an apply
    # conflict over .spec.selector, and where ours came first LWS created no headless Service.
    plan = planned(stack)
    units = {o["metadata"]["name"] for o in objects_of(plan, "LeaderWorkerSet")}
    services = {o["metadata"]["name"] for o in objects_of(plan, "Service")}
    assert units and not units & services
    assert {f"{u}-leader" for u in units} <= services
