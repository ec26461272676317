"""Day 2 on the local control plane: what operators fear after the first `pulumi up`.

A failed rank takes its whole unit down and back (and no other unit); an autoscaler reaches the
LeaderWorkerSet through its scale subresource and a hand-edited replica count survives the next
`up`; node labels and taints land under the stack's own field manager, leave other managers'
labels alone through `up` and `destroy`, and two stacks that share nodes do not fight.

The stacks: ``guard``, prod's DeepSeek-R1 decode pool as two units of two H20 nodes (decode only),
and prod itself, both on the six H20 nodes prod labels and taints in place.
"""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from .live import GROUP_INDEX, LWS_NAME, ROOT, WORKER_INDEX, deploy, eventually, get, kubectl

pytestmark = pytest.mark.e2e

GUARD_NAMESPACE = "llm-guard"
GUARD_DECODE = "deepseek-r1-decode"
H20 = [f"gpu-h20-0{i}" for i in range(1, 7)]
POOL_LABEL = "moe-ep.io/pool"
OTHER_LABEL = "team.example/owner"
"""A label another team puts on the nodes, with kubectl (field manager kubectl-label)."""


def guard_stack(folder) -> str:
    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())
    service = copy.deepcopy(document["config"]["moe-ep:service"])
    service["namespace"] = GUARD_NAMESPACE
    service.pop("prefill")
    service.pop("kv_transfer")
    service["decode"].update(replicas=2, nodes_per_replica=2, data_parallel_size=16,
                             autoscaling={"engine": "hpa", "min_replicas": 1, "max_replicas": 2})
    document["config"]["moe-ep:service"] = service
    path = folder / "Pulumi.guard.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return str(path)


def pods_by_group(namespace: str, lws: str) -> dict[int, dict[str, str]]:
    """{group index: {pod name: uid}} of a LeaderWorkerSet's pods."""
    groups: dict[int, dict[str, str]] = {}
    for pod in get("pods", "-n", namespace, "-l", f"{LWS_NAME}={lws}"):
        labels = pod["metadata"]["labels"]
        groups.setdefault(int(labels[GROUP_INDEX]), {})[pod["metadata"]["name"]] = pod["metadata"]["uid"]
    return groups


def all_running(namespace: str, lws: str, groups: int, size: int) -> bool:
    pods = get("pods", "-n", namespace, "-l", f"{LWS_NAME}={lws}")
    ready = [p for p in pods if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
             and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]
    return len(pods) == len(ready) == groups * size


@pytest.fixture(scope="module")
def guard(plane, tmp_path_factory):
    for node in H20:  # before either stack: the other team was there first
        kubectl("label", "node", node, f"{OTHER_LABEL}=inference-infra", "--overwrite")
    path = guard_stack(tmp_path_factory.mktemp("guard"))
    deploy("up", path)
    eventually(lambda: all_running(GUARD_NAMESPACE, GUARD_DECODE, 2, 2), timeout=120, what="both guard units running")
    yield path
    deploy("destroy", path, check=False)
    deploy("destroy", "prod", check=False)
    for node in H20:
        kubectl("label", "node", node, f"{OTHER_LABEL}-", check=False)


def test_a_deleted_rank_recreates_its_whole_group_and_no_other(guard):
    before = pods_by_group(GUARD_NAMESPACE, GUARD_DECODE)
    assert sorted(before) == [0, 1] and all(len(pods) == 2 for pods in before.values()), before
    worker = next(name for name in before[0] if get("pod", "-n", GUARD_NAMESPACE, name)[0]["metadata"]["labels"][WORKER_INDEX] == "1")
    kubectl("delete", "pod", "-n", GUARD_NAMESPACE, worker, "--wait=false")

    def recreated():
        now = pods_by_group(GUARD_NAMESPACE, GUARD_DECODE)
        fresh = now.get(0, {})
        return (set(fresh) == set(before[0]) and not set(fresh.values()) & set(before[0].values())
                and all_running(GUARD_NAMESPACE, GUARD_DECODE, 2, 2) and now)

    after = eventually(recreated, timeout=120, what="group 0 back with new pods (leader and worker)")
    assert after[1] == before[1], "group 1 was restarted by a failure in group 0"


def test_the_autoscaler_reaches_the_unit_through_its_scale_subresource(guard):
    hpa = eventually(lambda: next((c for c in (get("hpa", "-n", GUARD_NAMESPACE, GUARD_DECODE)[0].get("status") or {})
                                   .get("conditions", []) if c["type"] == "AbleToScale"), None),
                     timeout=60, what="the HPA reports AbleToScale")
    assert hpa["status"] == "True" and hpa["reason"] == "SucceededGetScale", hpa
    # No metrics adapter runs here: the HPA reads the scale but not its pods metric (ScalingActive False).
    active = next(c for c in get("hpa", "-n", GUARD_NAMESPACE, GUARD_DECODE)[0]["status"]["conditions"] if c["type"] == "ScalingActive")
    assert active["status"] == "False" and active["reason"] == "FailedGetPodsMetric", active
    assert "custom.metrics.k8s.io" in active["message"], active
    lws = get("leaderworkersets.leaderworkerset.x-k8s.io", "-n", GUARD_NAMESPACE, GUARD_DECODE)[0]
    assert lws["status"]["hpaPodSelector"], "the LWS scale subresource exposes no selector for the HPA"


def test_a_hand_edited_replica_count_survives_the_next_up(guard):
    kubectl("scale", "leaderworkersets.leaderworkerset.x-k8s.io", "-n", GUARD_NAMESPACE, GUARD_DECODE, "--replicas=1")
    eventually(lambda: all_running(GUARD_NAMESPACE, GUARD_DECODE, 1, 2), timeout=120, what="one unit left")
    assert deploy("preview", guard, check=False).returncode == 0, "a preview after a hand edit of replicas shows a diff"
    deploy("up", guard)
    assert get("leaderworkersets.leaderworkerset.x-k8s.io", "-n", GUARD_NAMESPACE, GUARD_DECODE)[0]["spec"]["replicas"] == 1
    kubectl("scale", "leaderworkersets.leaderworkerset.x-k8s.io", "-n", GUARD_NAMESPACE, GUARD_DECODE, "--replicas=2")
    eventually(lambda: all_running(GUARD_NAMESPACE, GUARD_DECODE, 2, 2), timeout=120, what="two units again")


def test_kedas_scaled_object_is_accepted_against_its_crd(plane, tmp_path):
    out = tmp_path / "staging"
    subprocess.run([sys.executable, "-m", "moe_ep.cli", "render", "--stack", "staging", "--out", str(out)],
                   cwd=ROOT, check=True, capture_output=True)
    [scaled] = [yaml.safe_load(p.read_text()) for p in out.glob("*.yaml") if yaml.safe_load(p.read_text())["kind"] == "ScaledObject"]
    scaled["metadata"]["namespace"] = "e2e-keda"  # a namespace of its own: staging's is another test's
    kubectl("create", "namespace", "e2e-keda", check=False)
    try:
        result = kubectl("create", "--dry-run=server", "-f", "-", input_text=yaml.safe_dump(scaled), check=False)
        assert result.returncode == 0, result.stderr
        scaled["spec"]["maxReplicaCount"] = "two"
        rejected = kubectl("create", "--dry-run=server", "-f", "-", input_text=yaml.safe_dump(scaled), check=False)
        assert rejected.returncode != 0 and "maxReplicaCount" in rejected.stderr, "the API server does not check ScaledObjects"
    finally:
        kubectl("delete", "namespace", "e2e-keda", "--wait=false", check=False)


def h20_nodes() -> list[dict]:
    """The H20 nodes with their managedFields (which `kubectl get` leaves out unless asked)."""
    return [n for n in get("nodes", "--show-managed-fields") if n["metadata"]["name"] in H20]


def managers(node: dict) -> dict[str, dict]:
    return {m["manager"]: m.get("fieldsV1", {}) for m in node["metadata"]["managedFields"]}


def patch_managers(node: dict) -> set[str]:
    """The field managers of pulumi-kubernetes' node patches (one per patch resource)."""
    return {name for name in managers(node) if name.startswith("pulumi-kubernetes-")}


def test_node_labels_and_taints_land_under_the_stacks_field_manager(guard):
    for node in h20_nodes():
        [mine] = patch_managers(node)
        owned = managers(node)[mine]
        assert f"f:{POOL_LABEL}" in owned["f:metadata"]["f:labels"], node["metadata"]["name"]
        assert "f:taints" in owned["f:spec"], node["metadata"]["name"]
        assert "f:annotations" not in owned["f:metadata"], "the patch carries an annotation two stacks could fight over"
        assert node["metadata"]["labels"][OTHER_LABEL] == "inference-infra"
        assert node["metadata"]["labels"][POOL_LABEL] == "deepseek-r1"
    assert len(h20_nodes()) == len(H20)


def test_two_stacks_on_the_same_nodes_do_not_fight_and_destroy_releases_only_its_own(guard):
    guards = {n["metadata"]["name"]: patch_managers(n) for n in h20_nodes()}
    deploy("up", "prod")
    for name in ("prod", guard):  # each stack's second look: nothing to change
        result = deploy("preview", name, check=False)
        assert result.returncode == 0, f"{name} fights over the shared nodes:\n{result.stdout[-4000:]}"
    prods = {n["metadata"]["name"]: patch_managers(n) - guards[n["metadata"]["name"]] for n in h20_nodes()}
    assert all(len(m) == 1 for m in prods.values()), prods

    deploy("destroy", "prod")
    for node in h20_nodes():
        labels = node["metadata"]["labels"]
        # guard still owns the label and the taint it shared with prod; the other team's label stays.
        assert labels[POOL_LABEL] == "deepseek-r1" and labels[OTHER_LABEL] == "inference-infra"
        assert any(t["key"] == "nvidia.com/gpu" for t in node["spec"].get("taints", [])), node["metadata"]["name"]
        assert patch_managers(node) == guards[node["metadata"]["name"]], "prod's destroy left its manager or took guard's"
    assert deploy("preview", guard, check=False).returncode == 0, "guard sees a diff after prod's destroy"

    deploy("destroy", guard)
    for node in h20_nodes():
        labels = node["metadata"]["labels"]
        assert POOL_LABEL not in labels and labels[OTHER_LABEL] == "inference-infra", labels
        assert not [t for t in node["spec"].get("taints", []) if t["key"] == "nvidia.com/gpu"]
