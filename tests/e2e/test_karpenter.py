"""Karpenter's KWOK provider (e2e/karpenter.py) launches a staging-like stack's nodes on the local
control plane: its NodePool's NodeClaims become fake nodes KWOK runs, the LWS units are scheduled
on them, and `destroy` has Karpenter drain and remove them.

The stack is a copy of stacks/Pulumi.staging.yaml under its own name (so its own pool label,
NodePool and namespace): its pods select `moe-ep.io/pool: karpenter-e2e`, which no fleet node
carries (gpu-h200-a/b are labelled for `deepseek-r1`), so only nodes Karpenter launches can take
them. Two changes beside the name: the node class is the KWOKNodeClass e2e/karpenter.py creates,
and a requirement lists the values of the exclusive-topology key. Without it Karpenter refuses
both units: "label "topology.k8s.aws/network-node-layer-3" does not have known values" for decode,
"unsatisfiable topology constraint for pod anti-affinity" for prefill (LWS's exclusive placement
keeps other groups out of decode's domain); on EKS that label only appears once a node is up.
"""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from .live import LWS_NAME, ROOT, deploy, eventually, get, kubectl

pytestmark = pytest.mark.e2e

NAME = "karpenter-e2e"
NAMESPACE = "e2e-karpenter"
NODE_CLASS = {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "moe-ep-kwok"}
"""The node class e2e/karpenter.py creates (its NODE_CLASS)."""
TOPOLOGY_KEY = "topology.k8s.aws/network-node-layer-3"
DOMAINS = ["nn-karpenter-1", "nn-karpenter-2"]
NODEPOOL_LABEL = "karpenter.sh/nodepool"


def _karpenter(action: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "e2e" / "karpenter.py"), action],
                          capture_output=True, text=True, cwd=ROOT)


@pytest.fixture
def karpenter(plane):
    result = _karpenter("up")
    assert result.returncode == 0, f"e2e/karpenter.py up failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    started = "already running" not in result.stdout
    yield
    if started:
        _karpenter("down")


def stack_file(tmp_path) -> str:
    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.staging.yaml").read_text())
    service = copy.deepcopy(document["config"]["moe-ep:service"])
    service["name"], service["namespace"] = NAME, NAMESPACE
    karpenter = service["node_pool"]["karpenter"]
    karpenter["node_class"] = dict(NODE_CLASS)
    karpenter["requirements"] = [{"key": TOPOLOGY_KEY, "operator": "In", "values": DOMAINS}]
    assert service["node_pool"]["exclusive_topology_key"] == TOPOLOGY_KEY
    document["config"]["moe-ep:service"] = service
    path = tmp_path / f"Pulumi.{NAME}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return str(path)


def launched() -> dict[str, dict]:
    """The nodes of our NodePool, by name."""
    return {n["metadata"]["name"]: n for n in get("nodes", "-l", f"{NODEPOOL_LABEL}={NAME}")}


def claims() -> list[dict]:
    return get("nodeclaims", "-l", f"{NODEPOOL_LABEL}={NAME}")


def unit_pods() -> list[dict]:
    return get("pods", "-n", NAMESPACE, "-l", LWS_NAME)


def test_karpenter_launches_the_node_pools_nodes_and_removes_them_on_destroy(karpenter, tmp_path):
    assert get(f"kwoknodeclasses.{NODE_CLASS['group']}", NODE_CLASS["name"])
    stack = stack_file(tmp_path)
    destroyed = False
    try:
        deploy("up", stack)
        [pool] = get("nodepools", NAME)
        assert pool["spec"]["template"]["spec"]["nodeClassRef"] == NODE_CLASS

        # prefill: one 8-GPU rank; decode: one unit of two 8-GPU ranks -> three p5en.48xlarge.
        def all_running():
            pods = unit_pods()
            return len(pods) == 3 and all(p["status"].get("phase") == "Running" for p in pods) and pods
        pods = eventually(all_running, timeout=150, interval=2, what="3 vLLM pods Running on launched nodes")
        # Karpenter found nothing to reject in our NodePool (its runtime validation, the node class).
        [pool] = get("nodepools", NAME)
        conditions = {c["type"]: c["status"] for c in pool["status"]["conditions"]}
        assert conditions["ValidationSucceeded"] == conditions["NodeClassReady"] == conditions["Ready"] == "True", conditions
        nodes = launched()
        assert len(nodes) == 3, sorted(nodes)
        for claim in claims():
            conditions = {c["type"]: c["status"] for c in claim["status"].get("conditions", [])}
            assert conditions.get("Initialized") == "True", (claim["metadata"]["name"], conditions)
            assert claim["status"]["nodeName"] in nodes
        assert len(claims()) == 3
        for name, node in nodes.items():
            labels = node["metadata"]["labels"]
            # Karpenter's nodes are KWOK's to run: the annotation the plane's KWOK selects on.
            assert node["metadata"]["annotations"].get("kwok.x-k8s.io/node") == "fake", name
            assert node["spec"]["providerID"].startswith("kwok://"), name
            assert labels["node.kubernetes.io/instance-type"] == "p5en.48xlarge"
            assert labels["nvidia.com/gpu.product"] == "NVIDIA-H200"
            assert labels["moe-ep.io/pool"] == NAME and labels["moe-ep.io/rdma"] == "true"
            assert labels[TOPOLOGY_KEY] in DOMAINS
            assert {"key": "nvidia.com/gpu", "effect": "NoSchedule"} in node["spec"]["taints"]
            assert int(node["status"]["allocatable"]["nvidia.com/gpu"]) == 8
        on = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in pods}
        assert set(on.values()) == set(nodes), on  # every pod on a launched node, one pod per node
        # The decode unit has one network node to itself; prefill lands in the other.
        domain = {pod: nodes[node]["metadata"]["labels"][TOPOLOGY_KEY] for pod, node in on.items()}
        decode = {domain[p] for p in on if p.startswith(f"{NAME}-decode")}
        assert len(decode) == 1 and domain[f"{NAME}-prefill-0"] not in decode, domain

        deploy("destroy", stack)
        destroyed = True
        eventually(lambda: not launched() and not claims(), timeout=90, interval=2,
                   what="Karpenter removed the launched nodes and their NodeClaims")
    finally:
        if not destroyed:
            deploy("destroy", stack, check=False)
        kubectl("delete", "nodeclaims", "-l", f"{NODEPOOL_LABEL}={NAME}", "--wait=false", check=False)
