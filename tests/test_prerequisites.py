"""What the cluster must have before `pulumi up`: the CRDs (read first) and the patched nodes."""

from __future__ import annotations

import copy

from components.prerequisites import CRDS, custom_kinds, required_crds
from moe_ep import engine, manifests, plan as planning

from .conftest import ROOT, planned


BUILT_IN_GROUPS = {"", "apps", "policy", "autoscaling", "networking.k8s.io", "rbac.authorization.k8s.io"}


def registered_custom_kinds(plan) -> list[str]:
    """Kinds of the rendered objects that no built-in API group serves."""
    groups = {o["kind"]: o["apiVersion"].rpartition("/")[0] for o in plan.objects}
    return sorted(kind for kind, group in groups.items() if group not in BUILT_IN_GROUPS)


def test_the_crds_read_first_are_exactly_those_of_the_custom_kinds_registered(stack):
    plan = planned(stack)
    assert custom_kinds(plan.spec) == registered_custom_kinds(plan)
    reads = sorted(r.name.split("-prerequisites-", 1)[1] for r in plan.run.reads if r.type.endswith(":CustomResourceDefinition"))
    assert reads == required_crds(plan.spec)


def test_switching_features_off_drops_their_crds():
    service = copy.deepcopy(planning.load(planning.stack_file(ROOT, "staging"))[0]["moe-ep:service"])
    service["monitoring"] = {"enabled": False}
    service["decode"]["autoscaling"]["engine"] = "hpa"
    run = engine.run_program(ROOT / "__main__.py", {"moe-ep:service": service}, "t")
    kinds = sorted({o["kind"] for o in manifests.manifests(run.resources)} & set(CRDS))
    assert kinds == ["InferencePool", "LeaderWorkerSet", "NodePool"]
    crds = sorted(r.name.split("-prerequisites-", 1)[1] for r in run.reads)
    assert crds == sorted(CRDS[k] for k in kinds)


def test_every_patched_node_is_read_before_its_patch():
    run = planned("prod").run
    nodes = {r.urn: r for r in run.reads if r.type == "kubernetes:core/v1:Node"}
    patches = [r for r in run.resources if r.type == "kubernetes:core/v1:NodePatch"]
    assert len(patches) == len(nodes) == 6
    for patch in patches:
        # Its own node's read only: all of them made the state grow with the square of the nodes.
        assert [nodes[d].name for d in patch.dependencies if d in nodes] == [patch.name]
    # The namespace (its component, which its Namespace registers after) waits for every read.
    namespace = next(r for r in run.resources if r.type == "moe-ep:index:ServiceNamespace")
    assert set(nodes) <= set(namespace.dependencies)
    assert planning.to_json(planned("prod"))["cluster"]["nodes"] == [f"gpu-h20-0{i}" for i in range(1, 7)]


def test_every_stack_pins_the_cluster_it_deploys_to(stack):
    # Without it, `pulumi up -s prod` from a shell pointed at dev deploys prod there.
    context = planning.to_json(planned(stack))["cluster"]["context"]
    assert context and planned(stack).config["kubernetes:context"] == context
