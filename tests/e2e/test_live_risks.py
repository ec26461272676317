"""What reading pulumi-kubernetes and the engine predicted would break under a real `pulumi up`
(../shared/research/pulumi-engine-risks.md), tried on the local control plane with small stacks of
their own (their own namespaces and nodes, beside the main stacks)."""

from __future__ import annotations

import copy

import pytest
import yaml

from .live import ROOT, deploy, eventually, get, kubectl

pytestmark = pytest.mark.e2e


def stack_file(tmp_path, stack: str, **changes) -> str:
    """A copy of the dev stack (one small unit on L40S) as stack ``stack``, with ``changes``
    merged into its service."""
    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())
    service = copy.deepcopy(document["config"]["moe-ep:service"])
    service.update(changes)
    document["config"]["moe-ep:service"] = service
    path = tmp_path / f"Pulumi.{stack}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return str(path)


@pytest.fixture
def cleanup():
    stacks = []
    yield stacks
    for stack in stacks:
        deploy("destroy", stack, check=False)


def test_a_misspelt_node_fails_the_preview_and_no_phantom_node_appears(plane, tmp_path, cleanup):
    # A NodePatch is a server-side apply: for a name the cluster lacks it would create a labelled,
    # tainted Node. The program now reads each node first.
    stack = stack_file(tmp_path, "phantom", name="phantom", namespace="e2e-phantom",
                       node_pool={"provisioner": "existing",
                                  "existing": {"nodes": ["gpu-l40s-01", "gpu-l40s-99"], "taint": False}})
    cleanup.append(stack)
    result = deploy("up", stack, check=False)
    assert result.returncode != 0
    assert "gpu-l40s-99" in result.stdout + result.stderr
    assert kubectl("get", "node", "gpu-l40s-99", check=False).returncode != 0, "a phantom node was created"
    # Nothing of the stack was created either: the read fails before the first object.
    assert kubectl("get", "namespace", "e2e-phantom", check=False).returncode != 0


def test_a_taint_the_platform_set_conflicts_and_taint_false_leaves_it(plane, tmp_path, cleanup):
    # spec.taints is one atomic list: the GKE-style `nvidia.com/gpu=present` taint the fleet file
    # puts on the L40S nodes belongs to another field manager, so applying ours conflicts (the
    # provider never forces). `existing.taint: false` is the setting for such nodes.
    tainting = stack_file(tmp_path, "taint", name="taint", namespace="e2e-taint",
                          node_pool={"provisioner": "existing", "existing": {"nodes": ["gpu-l40s-02"]}})
    cleanup.append(tainting)
    result = deploy("up", tainting, check=False)
    assert result.returncode != 0
    assert "conflict" in (result.stdout + result.stderr).lower()
    node = get("node", "gpu-l40s-02")[0]
    assert node["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    deploy("destroy", tainting)

    leaving = stack_file(tmp_path, "notaint", name="notaint", namespace="e2e-notaint",
                         node_pool={"provisioner": "existing", "existing": {"nodes": ["gpu-l40s-02"], "taint": False}})
    cleanup.append(leaving)
    deploy("up", leaving)
    node = get("node", "gpu-l40s-02")[0]
    assert node["metadata"]["labels"]["moe-ep.io/pool"] == "notaint"
    assert node["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    deploy("destroy", leaving)
    eventually(lambda: "moe-ep.io/pool" not in get("node", "gpu-l40s-02")[0]["metadata"]["labels"],
               timeout=30, what="the pool label released on destroy")


def test_a_namespace_that_already_exists_is_adopted_by_create_namespace(plane, tmp_path, cleanup):
    # Refutes the prediction for the pinned provider: 4.25 creates with server-side apply, which
    # upserts, so an existing namespace does not fail `up`; it is adopted.
    kubectl("create", "namespace", "e2e-adopt", check=False)  # a failed earlier run may have left it
    stack = stack_file(tmp_path, "adopt", name="adopt", namespace="e2e-adopt")
    cleanup.append(stack)
    deploy("up", stack)
    labels = get("namespace", "e2e-adopt")[0]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"]

