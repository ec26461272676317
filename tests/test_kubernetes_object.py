"""KubernetesObject registers exactly what pulumi-kubernetes' typed class for the kind would,
without the class's aliases to older API versions (components/kubernetes_object.py)."""

from __future__ import annotations

import importlib.metadata
import json
import textwrap

import pytest

from components.kubernetes_object import provider_type
from components.spec import SERVICE_KEY, read_stack_config
from moe_ep import engine

from .conftest import ROOT, planned

PROVIDER_VERSION = importlib.metadata.version("pulumi_kubernetes")


def test_provider_type_follows_pulumi_kubernetes_tokens():
    assert provider_type("v1", "ConfigMap") == "kubernetes:core/v1:ConfigMap"
    assert provider_type("apps/v1", "Deployment") == "kubernetes:apps/v1:Deployment"
    assert provider_type("rbac.authorization.k8s.io/v1", "Role") == "kubernetes:rbac.authorization.k8s.io/v1:Role"
    assert provider_type("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet") == "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"
    with pytest.raises(ValueError, match="apiVersion and kind"):
        provider_type("", "ConfigMap")
    with pytest.raises(ValueError, match="apiVersion and kind"):
        provider_type("v1", "")


# Each case: a typed pulumi-kubernetes class with its keyword arguments, and the same object as a
# manifest. The program registers both; the engine must receive the same type, inputs and version.
PAIRS_PROGRAM = textwrap.dedent("""
    import pulumi
    import pulumi_kubernetes as k8s
    from components.kubernetes_object import KubernetesObject

    meta = {"name": "x", "namespace": "llm", "labels": {"app": "x"}}
    pod = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}
    cases = {
        "deployment": (k8s.apps.v1.Deployment, {"metadata": meta, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "x"}}, "template": pod}},
                       {"apiVersion": "apps/v1", "kind": "Deployment"}, False),
        "config-map": (k8s.core.v1.ConfigMap, {"metadata": meta, "data": {"a.yaml": "b: 1"}},
                       {"apiVersion": "v1", "kind": "ConfigMap"}, False),
        "service-account": (k8s.core.v1.ServiceAccount, {"metadata": meta, "automount_service_account_token": False},
                            {"apiVersion": "v1", "kind": "ServiceAccount", "automountServiceAccountToken": False}, False),
        "role-binding": (k8s.rbac.v1.RoleBinding,
                         {"metadata": meta, "role_ref": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "x"},
                          "subjects": [{"kind": "ServiceAccount", "name": "x", "namespace": "llm"}]},
                         {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                          "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "x"},
                          "subjects": [{"kind": "ServiceAccount", "name": "x", "namespace": "llm"}]}, False),
        "hpa": (k8s.autoscaling.v2.HorizontalPodAutoscaler,
                {"metadata": meta, "spec": {"maxReplicas": 3, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"}}},
                {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler"}, False),
        "node": (k8s.core.v1.NodePatch, {"metadata": {"name": "gpu-1", "labels": {"pool": "x"}}, "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}},
                 {"apiVersion": "v1", "kind": "Node"}, True),
    }
    objects = {}
    for case, (cls, kwargs, wire, patch) in cases.items():
        cls(f"typed-{case}", **kwargs)
        manifest = {**wire, **{k: v for k, v in kwargs.items() if k in ("metadata", "spec", "data", "subjects")}}
        objects[case] = KubernetesObject(f"object-{case}", manifest, patch=patch)
    k8s.apiextensions.CustomResource("typed-lws", api_version="leaderworkerset.x-k8s.io/v1", kind="LeaderWorkerSet",
                                     metadata=meta, spec={"replicas": 1})
    KubernetesObject("object-lws", {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
                                    "metadata": meta, "spec": {"replicas": 1}})
    # Outputs are the manifest's top-level fields, as the engine returns them.
    pulumi.export("namespace", objects["deployment"].metadata.apply(lambda m: m["namespace"]))
    pulumi.export("replicas", objects["deployment"].spec.apply(lambda s: s["replicas"]))
    pulumi.export("data", objects["config-map"].data)
""")


def test_registers_what_the_typed_class_registers_without_its_aliases(tmp_path):
    program = tmp_path / "__main__.py"
    program.write_text(PAIRS_PROGRAM)
    run = engine.run_program(program, {}, "dev")
    by_name = {r.name: r for r in run.resources}
    cases = sorted(name.removeprefix("object-") for name in by_name if name.startswith("object-"))
    assert cases == ["config-map", "deployment", "hpa", "lws", "node", "role-binding", "service-account"]
    for case in cases:
        typed, obj = by_name[f"typed-{case}"], by_name[f"object-{case}"]
        assert (obj.type, obj.inputs, obj.version, obj.custom) == (typed.type, typed.inputs, typed.version, typed.custom), case
        assert obj.version == PROVIDER_VERSION
        assert obj.aliases == ()
    assert by_name["object-node"].type == "kubernetes:core/v1:NodePatch"
    # The typed classes carry aliases to older API versions; the test would not notice a change otherwise.
    alias_types = {json.loads(a)["spec"]["type"] for a in by_name["typed-deployment"].aliases}
    assert alias_types == {"kubernetes:apps/v1beta1:Deployment", "kubernetes:apps/v1beta2:Deployment", "kubernetes:extensions/v1beta1:Deployment"}
    assert by_name["typed-hpa"].aliases
    assert run.outputs == {"namespace": "llm", "replicas": 2, "data": {"a.yaml": "b: 1"}}


def test_every_stack_object_pins_the_provider_and_carries_no_alias(stack):
    run = planned(stack).run
    objects = [r for r in run.resources if r.custom and r.type.startswith("kubernetes:")]
    kinds = {r.kind for r in objects}
    # Kinds whose typed classes carry aliases, so the check has teeth.
    assert kinds & {"Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"}
    assert {r.version for r in objects} == {PROVIDER_VERSION}
    assert [(r.type, r.name, r.aliases) for r in run.resources if r.aliases] == []


def test_a_callers_alias_reaches_the_component(tmp_path):
    program = tmp_path / "__main__.py"
    program.write_text(textwrap.dedent("""
        import pulumi
        from components import MoEEPService

        spec = pulumi.Config("moe-ep").require_object("service")
        MoEEPService(spec["name"], spec, opts=pulumi.ResourceOptions(aliases=[pulumi.Alias(name="old-name")]))
    """))
    dev = read_stack_config(ROOT / "stacks/Pulumi.dev.yaml")[SERVICE_KEY]
    run = engine.run_program(program, {"moe-ep:service": dev}, "dev")
    service = run.of_type("moe-ep:index:MoEEPService")[0]
    assert [json.loads(a)["spec"]["name"] for a in service.aliases] == ["old-name"]
    assert [r.name for r in run.resources if r.aliases] == [service.name]
