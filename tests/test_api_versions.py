"""Kubernetes objects register without pulumi-kubernetes' aliases to older API versions; other
aliases are kept (components/api_versions.py)."""

from __future__ import annotations

import json
import textwrap

import pulumi

from components.api_versions import without_older_api_versions
from components.spec import SERVICE_KEY, read_stack_config
from moe_ep import engine

from .conftest import ROOT, planned

DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def _transform(type_: str, aliases: list) -> pulumi.ResourceTransformationResult | None:
    args = pulumi.ResourceTransformationArgs(
        resource=None, type_=type_, name="x", props={}, opts=pulumi.ResourceOptions(aliases=aliases),
    )
    return without_older_api_versions(args)


def test_drops_only_type_aliases_to_the_same_kind():
    kept_by_name = pulumi.Alias(name="old-name")
    kept_other_kind = pulumi.Alias(type_="kubernetes:apps/v1:StatefulSet")
    kept_with_parent = pulumi.Alias(type_="kubernetes:apps/v1beta1:Deployment", parent="urn:pulumi:s::p::a:b:C::c")
    result = _transform(DEPLOYMENT, [
        pulumi.Alias(type_="kubernetes:apps/v1beta1:Deployment"),
        kept_by_name,
        pulumi.Alias(type_="kubernetes:extensions/v1beta1:Deployment"),
        kept_other_kind,
        kept_with_parent,
    ])
    assert result is not None
    assert result.opts.aliases == [kept_by_name, kept_other_kind, kept_with_parent]


def test_leaves_other_providers_and_alias_free_objects_alone():
    assert _transform("random:index/randomPassword:RandomPassword", [pulumi.Alias(type_="random:index/x:RandomPassword")]) is None
    assert _transform(DEPLOYMENT, []) is None
    assert _transform(DEPLOYMENT, [pulumi.Alias(name="old")]) is None
    only_older = _transform(DEPLOYMENT, [pulumi.Alias(type_="kubernetes:apps/v1beta2:Deployment")])
    assert only_older is not None and only_older.opts.aliases is None


def test_no_stack_object_is_registered_with_an_alias(stack):
    run = planned(stack).run
    kinds = {r.kind for r in run.resources if r.custom}
    # The stacks hold kinds whose provider classes carry such aliases, so the check has teeth.
    assert kinds & {"Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"}
    assert [(r.type, r.name, r.aliases) for r in run.resources if r.aliases] == []


def test_the_provider_class_alone_sends_its_aliases_and_a_callers_alias_survives(tmp_path):
    program = tmp_path / "__main__.py"
    program.write_text(textwrap.dedent("""
        import pulumi
        import pulumi_kubernetes as k8s
        from components import MoEEPService

        spec = pulumi.Config("moe-ep").require_object("service")
        k8s.apps.v1.Deployment("plain", spec={"selector": {}, "template": {}})
        MoEEPService(spec["name"], spec, opts=pulumi.ResourceOptions(aliases=[pulumi.Alias(name="old-name")]))
    """))
    dev = read_stack_config(ROOT / "stacks/Pulumi.dev.yaml")[SERVICE_KEY]
    run = engine.run_program(program, {"moe-ep:service": dev}, "dev")
    by_name = {r.name: r for r in run.resources}
    plain_types = {json.loads(a)["spec"]["type"] for a in by_name["plain"].aliases}
    assert plain_types == {"kubernetes:apps/v1beta1:Deployment", "kubernetes:apps/v1beta2:Deployment", "kubernetes:extensions/v1beta1:Deployment"}
    service = run.of_type("moe-ep:index:MoEEPService")[0]
    assert [json.loads(a)["spec"]["name"] for a in service.aliases] == ["old-name"]
    deployments = [r for r in run.of_type(DEPLOYMENT) if r.name != "plain"]
    assert deployments and all(not r.aliases for r in deployments)

