"""`pulumi up` of every stack and the example, side by side, on the local control plane: the real
CLI, engine, pulumi-kubernetes provider, API server, LWS controller and webhooks, scheduler and
KWOK. Checks what only a live cluster can show: the objects converge, pods land where the stack
asked, the live objects are the ones `moe-ep render` plans, a second preview is empty, and destroy
leaves nothing behind."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from components import catalog
from moe_ep import cli

from .live import (EXCLUSIVE_TOPOLOGY, GPU_PRODUCT_LABEL, GROUP_INDEX, LWS_NAME, PROGRAMS, STATE, WORKER_INDEX,
                   deploy, eventually, get, kubectl, quantity, tolerated, variables)

pytestmark = pytest.mark.e2e

STACKS = ("dev", "staging", "prod")


def leaderworkersets() -> list[dict]:
    return [lws for lws in get("leaderworkersets.leaderworkerset.x-k8s.io", "-A")
            if lws["metadata"]["labels"].get("app.kubernetes.io/part-of") == "moe-ep"]


def vllm_pods() -> list[dict]:
    return get("pods", "-A", "-l", LWS_NAME)


def all_groups_ready() -> list[str] | None:
    """None while some LeaderWorkerSet lacks a ready group, else their names."""
    sets = leaderworkersets()
    waiting = [lws["metadata"]["name"] for lws in sets
               if lws.get("status", {}).get("readyReplicas", 0) != lws["spec"]["replicas"]]
    return None if waiting or not sets else sorted(f"{s['metadata']['namespace']}/{s['metadata']['name']}" for s in sets)


def test_every_program_deploys_side_by_side(deployed):
    for name in PROGRAMS:
        assert "where each unit's pods landed:" in deployed[name], deployed[name][-3000:]
    namespaces = {lws["metadata"]["namespace"] for lws in leaderworkersets()}
    assert namespaces == {"llm-dev", "llm-staging", "llm-serving", "team-llm"}
    # Nothing was downloaded: the CLI took its plugins from PATH and installed none.
    assert not list((STATE / "pulumi-home").glob("plugins/*"))


def test_every_leaderworkerset_has_all_its_groups(deployed):
    ready = eventually(all_groups_ready, timeout=120, what="every LeaderWorkerSet with all groups ready")
    # dev 1 decode; staging and prod prefill + decode; the example chat (prefill + decode) and coder (decode).
    assert len(ready) == 8, ready
    for lws in leaderworkersets():
        size = lws["spec"]["leaderWorkerTemplate"]["size"]
        pods = [p for p in vllm_pods() if p["metadata"]["labels"][LWS_NAME] == lws["metadata"]["name"]
                and p["metadata"]["namespace"] == lws["metadata"]["namespace"]]
        assert len(pods) == lws["spec"]["replicas"] * size, lws["metadata"]["name"]
        assert all(p["status"]["phase"] == "Running" for p in pods)


def test_every_vllm_pod_runs_on_a_node_that_matches_its_stack(deployed):
    eventually(all_groups_ready, timeout=120, what="every LeaderWorkerSet ready")
    nodes = {n["metadata"]["name"]: n for n in get("nodes")}
    sets = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in leaderworkersets()}
    for pod in vllm_pods():
        lws = sets[(pod["metadata"]["namespace"], pod["metadata"]["labels"][LWS_NAME])]
        node = nodes[pod["spec"]["nodeName"]]
        where = f"{pod['metadata']['namespace']}/{pod['metadata']['name']} on {node['metadata']['name']}"
        labels = node["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in pod["spec"].get("nodeSelector", {}).items()), where
        for taint in node["spec"].get("taints", []):
            assert tolerated(taint, pod["spec"].get("tolerations", [])), (where, taint)
        product = catalog.GPUS[lws["metadata"]["annotations"]["moe-ep.io/gpu-product"]]
        assert labels[GPU_PRODUCT_LABEL] == product.node_label, where
        requests = pod["spec"]["containers"][0]["resources"]["requests"]
        allocatable = node["status"]["allocatable"]
        for resource, amount in requests.items():
            if "/" in resource:  # GPUs and RDMA devices: the node must have them
                assert quantity(allocatable.get(resource, 0)) >= quantity(amount), (where, resource)
        assert quantity(requests["nvidia.com/gpu"]) == quantity(allocatable["nvidia.com/gpu"]), (where, "one rank per node")


def test_multi_node_units_lie_in_one_exclusive_topology_domain(deployed):
    eventually(all_groups_ready, timeout=120, what="every LeaderWorkerSet ready")
    nodes = {n["metadata"]["name"]: n["metadata"]["labels"] for n in get("nodes")}
    checked = 0
    for lws in leaderworkersets():
        key = lws["metadata"].get("annotations", {}).get(EXCLUSIVE_TOPOLOGY)
        if lws["spec"]["leaderWorkerTemplate"]["size"] == 1:
            continue
        assert key, f"{lws['metadata']['name']}: a multi-node unit without an exclusive topology"
        domains = defaultdict(set)
        for pod in vllm_pods():
            if pod["metadata"]["labels"][LWS_NAME] == lws["metadata"]["name"] and \
                    pod["metadata"]["namespace"] == lws["metadata"]["namespace"]:
                domains[pod["metadata"]["labels"][GROUP_INDEX]].add(nodes[pod["spec"]["nodeName"]][key])
        assert domains and all(len(d) == 1 for d in domains.values()), dict(domains)
        checked += 1
    assert checked == 1  # staging's 2-node decode unit


def test_each_unit_leader_service_selects_exactly_the_rank_0_pods(deployed):
    eventually(all_groups_ready, timeout=120, what="every LeaderWorkerSet ready")
    for lws in leaderworkersets():
        namespace, name = lws["metadata"]["namespace"], lws["metadata"]["name"]
        # LWS's own headless Service, the subdomain of LWS_LEADER_ADDRESS, is the controller's.
        headless = get("service", "-n", namespace, name)[0]
        assert headless["spec"]["clusterIP"] == "None"
        assert [r["kind"] for r in headless["metadata"]["ownerReferences"]] == ["LeaderWorkerSet"]
        name = f"{name}-leader"
        service = get("service", "-n", namespace, name)[0]
        selector = ",".join(f"{k}={v}" for k, v in sorted(service["spec"]["selector"].items()))
        selected = get("pods", "-n", namespace, "-l", selector)
        assert len(selected) == lws["spec"]["replicas"], (name, selector)
        assert {p["metadata"]["labels"][WORKER_INDEX] for p in selected} == {"0"}
        ips = {p["status"]["podIP"] for p in selected}

        def endpoint_ips():
            slices = get("endpointslices", "-n", namespace, "-l", f"kubernetes.io/service-name={name}")
            found = {a for s in slices for e in s.get("endpoints") or [] for a in e["addresses"]}
            return found if found == ips else None

        eventually(endpoint_ips, timeout=60, what=f"{namespace}/{name}'s endpoints are its rank-0 pods {ips}")


def test_every_variable_in_a_vllm_argv_is_set_in_its_running_pod(deployed):
    eventually(all_groups_ready, timeout=120, what="every LeaderWorkerSet ready")
    pods = vllm_pods()
    assert pods
    injected = {"LWS_LEADER_ADDRESS", "LWS_GROUP_SIZE", "LWS_WORKER_INDEX"}
    for pod in pods:
        container = next(c for c in pod["spec"]["containers"] if c["name"] == "vllm")
        names = {e["name"] for e in container.get("env", [])}
        # LWS's pod webhook injects its variables: the argv relies on them.
        assert injected <= names, (pod["metadata"]["name"], sorted(names))
        missing = variables(container) - names
        assert not missing, f"{pod['metadata']['name']}: argv uses {sorted(missing)}, which the pod does not set"


def rendered(stack: str, out: Path) -> list[dict]:
    assert cli.main(["render", "--stack", stack, "--out", str(out)]) == 0
    objects = []
    for path in sorted(out.glob("*.yaml")):
        manifest = yaml.safe_load(path.read_text())
        objects.append({"kind": manifest["kind"], "namespace": manifest["metadata"].get("namespace", ""),
                        "name": manifest["metadata"]["name"]})
    return sorted(objects, key=lambda o: (o["kind"], o["namespace"], o["name"]))


@pytest.mark.parametrize("stack", STACKS)
def test_the_objects_pulumi_created_are_the_ones_moe_ep_renders(deployed, stack, tmp_path):
    live = json.loads(deploy("resources", stack).stdout)
    assert live == rendered(stack, tmp_path), stack


@pytest.mark.parametrize("name", PROGRAMS)
def test_a_preview_right_after_up_expects_no_changes(deployed, name):
    result = deploy("preview", name, check=False)
    assert result.returncode == 0, f"{name} shows a diff after up:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"


def test_destroy_leaves_nothing_of_the_stack_and_a_second_up_works(deployed):
    before = {n["metadata"]["name"]: n for n in get("nodes")}
    deploy("destroy", "prod")

    eventually(lambda: kubectl("get", "namespace", "llm-serving", check=False).returncode != 0,
               timeout=120, what="namespace llm-serving deleted")
    left = [lws["metadata"]["name"] for lws in leaderworkersets() if lws["metadata"]["namespace"] == "llm-serving"]
    assert not left
    assert not [p for p in vllm_pods() if p["metadata"]["namespace"] == "llm-serving"]
    for node in get("nodes"):
        name = node["metadata"]["name"]
        if not name.startswith("gpu-h20-"):
            continue
        labels = node["metadata"]["labels"]
        assert "moe-ep.io/pool" not in labels and "moe-ep.io/rdma" not in labels, (name, labels)
        assert not [t for t in node["spec"].get("taints", []) if t["key"] == "nvidia.com/gpu"], name
        # Labels another manager set stay.
        assert labels["platform.example/rack"] == before[name]["metadata"]["labels"]["platform.example/rack"]
        assert labels[GPU_PRODUCT_LABEL] == "NVIDIA-H20-141GB"
    # The other stacks are untouched.
    assert {lws["metadata"]["namespace"] for lws in leaderworkersets()} == {"llm-dev", "llm-staging", "team-llm"}

    deploy("up", "prod")
    eventually(all_groups_ready, timeout=120, what="prod's units ready again after a second up")
