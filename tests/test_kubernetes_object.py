"""KubernetesObject registers exactly what pulumi-kubernetes' typed class for the kind would,
without the class's aliases to older API versions (components/kubernetes_object.py)."""

from __future__ import annotations

import importlib.metadata
import json
import textwrap

import pytest

from components.kubernetes_object import manifest_type, provider_type
from components.spec import SERVICE_KEY, read_stack_config
from benchmarks import replay
from moe_ep import engine

from .conftest import ROOT, planned

PROVIDER_VERSION = importlib.metadata.version("pulumi_kubernetes")


BUILT_IN = [
    ("v1", "ConfigMap", "kubernetes:core/v1:ConfigMap"),
    ("apps/v1", "Deployment", "kubernetes:apps/v1:Deployment"),
    ("rbac.authorization.k8s.io/v1", "Role", "kubernetes:rbac.authorization.k8s.io/v1:Role"),
    ("autoscaling/v2", "HorizontalPodAutoscaler", "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"),
    ("v1", "NodePatch", "kubernetes:core/v1:NodePatch"),
]


@pytest.mark.parametrize(("api_version", "kind", "token"), BUILT_IN)
def test_provider_type_is_the_token_pulumi_kubernetes_registers(api_version, kind, token):
    assert provider_type(api_version, kind) == token
    assert manifest_type(token) == (api_version, kind.removesuffix("Patch"))
    # The SDK's own table of tokens has a class for it: the token is one the provider knows.
    assert replay.provider_class(token) is not None


def test_provider_type_of_a_custom_resource_and_bad_input():
    assert provider_type("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet") == "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"
    with pytest.raises(ValueError, match="apiVersion and kind"):
        provider_type("", "ConfigMap")
    with pytest.raises(ValueError, match="apiVersion and kind"):
        provider_type("v1", "")


# The program registers each manifest twice: through the provider SDK's class for the kind (its
# fields as keyword arguments; apiextensions.CustomResource for a CRD's kind) and as a
# KubernetesObject. The engine must receive the same registration both ways.
PAIRS_PROGRAM = textwrap.dedent("""
    import pulumi
    import pulumi_kubernetes as k8s
    from benchmarks import replay
    from components.kubernetes_object import KubernetesObject, provider_type

    meta = {"name": "x", "namespace": "llm", "labels": {"app": "x"}}
    selector = {"matchLabels": {"app": "x"}}
    pod = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}
    rbac = "rbac.authorization.k8s.io"
    cases = {
        "deployment": {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
                       "spec": {"replicas": 2, "selector": selector, "template": pod}},
        "config-map": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"a.yaml": "b: 1"}},
        "service-account": {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, "automountServiceAccountToken": False},
        "secret": {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": meta, "stringData": {"k": "v"}},
        "namespace": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "llm", "labels": {"a": "b"}}},
        "service": {"apiVersion": "v1", "kind": "Service", "metadata": meta,
                    "spec": {"selector": {"app": "x"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
        "role": {"apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": meta,
                 "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]},
        "role-binding": {"apiVersion": f"{rbac}/v1", "kind": "RoleBinding", "metadata": meta,
                         "roleRef": {"apiGroup": rbac, "kind": "Role", "name": "x"},
                         "subjects": [{"kind": "ServiceAccount", "name": "x", "namespace": "llm"}]},
        "hpa": {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta,
                "spec": {"maxReplicas": 3, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"}}},
        "pdb": {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta, "spec": {"maxUnavailable": 1, "selector": selector}},
        "network-policy": {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta,
                           "spec": {"podSelector": selector, "policyTypes": ["Ingress"]}},
        "node": {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu-1", "labels": {"pool": "x"}},
                 "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}},
        "lws": {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "metadata": meta, "spec": {"replicas": 1}},
        "scaled-object": {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": meta,
                          "spec": {"scaleTargetRef": {"name": "x"}, "triggers": []}},
    }
    patches = {"node"}
    # The HPA owns replicas: the option must reach the engine the same way from both classes.
    options = {"deployment": pulumi.ResourceOptions(ignore_changes=["spec.replicas"])}
    # What the Secret class knows, the caller of KubernetesObject says (as components/api_key.py does).
    object_options = {"secret": pulumi.ResourceOptions(additional_secret_outputs=["data", "stringData"])}
    objects = {}
    for case, manifest in cases.items():
        kind = manifest["kind"] + ("Patch" if case in patches else "")
        cls = replay.provider_class(provider_type(manifest["apiVersion"], kind)) or k8s.apiextensions.CustomResource
        cls(f"typed-{case}", opts=options.get(case), **{replay.keyword("kubernetes", k): v for k, v in manifest.items()})
        opts = object_options.get(case, options.get(case))
        objects[case] = KubernetesObject(f"object-{case}", manifest, opts, patch=case in patches)
    # A caller's provider version wins over the pinned one.
    KubernetesObject("pinned", cases["config-map"], pulumi.ResourceOptions(version="4.99.0"))
    # Outputs are the manifest's top-level fields, as the engine returns them.
    pulumi.export("namespace", objects["deployment"].metadata.apply(lambda m: m["namespace"]))
    pulumi.export("replicas", objects["deployment"].spec.apply(lambda s: s["replicas"]))
    pulumi.export("data", objects["config-map"].data)
    # No status under mocks (the mock returns the inputs); the output exists, as on a typed class.
    pulumi.export("status", objects["service"].status)
""")


def test_registers_what_the_typed_class_registers_without_its_aliases(tmp_path):
    program = tmp_path / "__main__.py"
    program.write_text(PAIRS_PROGRAM)
    run = engine.run_program(program, {}, "dev")
    by_name = {r.name: r for r in run.resources}
    cases = sorted(name.removeprefix("object-") for name in by_name if name.startswith("object-"))
    assert len(cases) == 14
    for case in cases:
        typed, obj = by_name[f"typed-{case}"], by_name[f"object-{case}"]
        assert (obj.type, obj.inputs, obj.version, obj.custom, obj.ignore_changes, obj.additional_secret_outputs) == (
            typed.type, typed.inputs, typed.version, typed.custom, typed.ignore_changes, typed.additional_secret_outputs), case
        assert obj.version == PROVIDER_VERSION
        assert obj.aliases == ()
    assert by_name["object-node"].type == "kubernetes:core/v1:NodePatch"
    assert by_name["object-deployment"].ignore_changes == ("spec.replicas",)
    assert by_name["pinned"].version == "4.99.0"
    assert by_name["object-secret"].additional_secret_outputs == ("data", "stringData")
    # The typed classes carry aliases to older API versions; the test would not notice a change otherwise.
    alias_types = {json.loads(a)["spec"]["type"] for a in by_name["typed-deployment"].aliases}
    assert alias_types == {"kubernetes:apps/v1beta1:Deployment", "kubernetes:apps/v1beta2:Deployment", "kubernetes:extensions/v1beta1:Deployment"}
    assert by_name["typed-hpa"].aliases and by_name["typed-pdb"].aliases
    assert run.outputs == {"namespace": "llm", "replicas": 2, "data": {"a.yaml": "b: 1"}, "status": None}


def test_every_stack_object_pins_the_provider_and_carries_no_alias(stack):
    run = planned(stack).run
    objects = [r for r in run.resources if r.custom and r.type.startswith("kubernetes:")]
    kinds = {r.kind for r in objects}
    # Kinds whose typed classes carry aliases, so the check has teeth.
    assert kinds & {"Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"}
    assert {r.version for r in objects} == {PROVIDER_VERSION}
    # The API key stays encrypted in the state under both of the Secret's spellings.
    assert {r.kind: r.additional_secret_outputs for r in objects if r.kind == "Secret"} == {"Secret": ("data", "stringData")}
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
