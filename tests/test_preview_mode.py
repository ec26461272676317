"""The offline engine's preview mode and the policy pack on what a first `pulumi preview` sends.

What the real engine sends was read off the CLI (pkg/v3 v3.274.0) on the local plane; the
end-to-end check that both paths agree is tests/e2e/test_policy_cli.py. These pin, without a
cluster, each difference found there: unknowns where the engine has them, the pack reading only
what a rule reads, stack violations on the resource at fault (in any resource order), the
engine's URNs, and no internal keys sent.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache

import pytest
from google.protobuf import json_format
from pulumi.output import Unknown
from pulumi.runtime.proto import analyzer_pb2

from components import api_key
from moe_ep import analyze, cli, engine
from moe_ep import plan as planning

from .conftest import ROOT

LWS = "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"
SECRET = "kubernetes:core/v1:Secret"
POLICY_FIXTURES = ROOT / "tests" / "fixtures" / "policy"


@cache
def run(stack: str = "prod", preview: bool = True) -> engine.Run:
    config, _ = planning.load(planning.stack_file(ROOT, stack))
    return engine.run_program(ROOT / "__main__.py", config, stack, preview=preview)


def one(r: engine.Run, type_: str, name: str | None = None) -> engine.Registration:
    [found] = [x for x in r.resources if x.type == type_ and (name is None or x.name == name)]
    return found


def test_a_first_preview_does_not_know_the_key_nor_what_is_built_from_it():
    first, up = run(preview=True), run(preview=False)
    assert isinstance(one(first, SECRET).inputs["stringData"][api_key.SECRET_KEY], Unknown)
    assert one(first, api_key.KEY_TYPE).outputs.keys() == one(first, api_key.KEY_TYPE).inputs.keys()  # no `result`
    assert isinstance(first.outputs["api_key"], Unknown)
    assert isinstance(first.stack_resource().outputs["api_key"], Unknown)
    # Everything else is known, and the same as in the `pulumi up` view.
    assert {k: v for k, v in first.outputs.items() if k != "api_key"} == {k: v for k, v in up.outputs.items() if k != "api_key"}
    assert isinstance(up.outputs["api_key"], str) and one(up, api_key.KEY_TYPE).computed["result"] == up.outputs["api_key"]


def test_the_preview_plan_shows_unknown_outputs_as_unknown():
    plan = planning.build(planning.stack_file(ROOT, "prod"), ROOT, "prod", preview=True)
    assert planning.outputs_view(plan.run)["api_key"] == "[secret]"
    assert planning.outputs_view(replace(plan.run, secret_outputs=set()))["api_key"] == "[unknown]"


def test_components_carry_their_registered_outputs_nulls_included():
    service = one(run(), "moe-ep:index:MoEEPService")
    assert service.inputs == {} and isinstance(service.outputs["api_key"], Unknown)
    assert one(run(), "moe-ep:index:GpuNodePool").outputs["capacity"]["gpu_limit"] is None  # as the engine keeps it


def test_urns_are_the_engines():
    r = run()
    assert one(r, SECRET).urn == ("urn:pulumi:prod::moe-ep::moe-ep:index:MoEEPService$moe-ep:index:ApiKey$"
                                  "kubernetes:core/v1:Secret::deepseek-r1-api-key")
    assert one(r, "moe-ep:index:MoEEPService").urn == "urn:pulumi:prod::moe-ep::moe-ep:index:MoEEPService::deepseek-r1"
    assert r.stack_resource().urn == "urn:pulumi:prod::moe-ep::pulumi:pulumi:Stack::moe-ep-prod"


def test_internal_keys_are_not_sent_and_unknowns_go_as_the_wire_sentinel():
    r = run()
    key = json_format.MessageToDict(analyze._struct(one(r, api_key.KEY_TYPE).inputs))  # noqa: SLF001
    assert "__provider" in one(r, api_key.KEY_TYPE).inputs and key == {"length": 48.0}
    secret = json_format.MessageToDict(analyze._struct(one(r, SECRET).inputs))  # noqa: SLF001
    assert secret["stringData"][api_key.SECRET_KEY] == "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def test_every_rule_runs_on_a_first_preview_of_every_stack(stack):
    plan = planning.build(planning.stack_file(ROOT, stack), ROOT, stack, preview=True)
    assert [v for v in plan.violations if "can't run policy" in v["message"]] == []
    assert plan.mandatory_violations == []


def test_a_stack_rule_still_stops_a_first_preview():
    # The pack used to copy every property before a rule ran, reading the unknown key: on a first
    # preview every stack rule became an advisory "can't run policy" and this stack went through.
    plan = planning.build(POLICY_FIXTURES / "Pulumi.no-network-policies.yaml", preview=True)
    assert {(v["policy"], v["enforcement"], v["resource"]) for v in plan.violations} == {
        ("network-policy-present", "mandatory", "deepseek-r1-decode"),
        ("network-policy-present", "mandatory", "deepseek-r1-prefill")}


def test_moe_ep_preview_first_preview_gives_the_first_previews_policy_results(capsys):
    broken = str(POLICY_FIXTURES / "Pulumi.no-network-policies.yaml")
    assert cli.main(["preview", "--config", broken, "--first-preview", "--json"]) == 1
    shown = json.loads(capsys.readouterr().out)["policy"]["violations"]
    assert sorted(v["resource"] for v in shown if v["policy"] == "network-policy-present") == [
        "deepseek-r1-decode", "deepseek-r1-prefill"]
    assert cli.main(["preview", "--stack", "dev", "--first-preview"]) == 0
    assert "Policies: 0 violation(s)" in capsys.readouterr().out


def test_a_rule_that_reads_an_unknown_value_cannot_run_there_as_in_the_cli():
    r = run()
    lws = one(r, LWS, "deepseek-r1-decode")
    inputs = json.loads(json.dumps(lws.inputs))
    inputs["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["image"] = Unknown()
    resources = [replace(x, inputs=inputs) if x is lws else x for x in r.resources]
    found = analyze.analyze([*resources, r.stack_resource()])
    assert all(v["enforcement"] == "advisory" and v["resource"] == "deepseek-r1-decode" for v in found)
    pinned = [v for v in found if v["policy"] == "image-pinned"]
    assert [v["message"] for v in pinned] == [
        "can't run policy 'image-pinned' from policy pack 'moe-ep@v0.0.1' during preview: string value at "
        ".spec.leaderWorkerTemplate.workerTemplate.spec.containers.0.image can't be known during preview"]
    # Only the rules that read the image stop there; the others still run and pass.
    assert "experts-divisible-by-ep" not in {v["policy"] for v in found}


def _stack_urns(resources: list[engine.Registration], rule: str) -> list[str]:
    servicer = analyze.analyzer()
    request = analyzer_pb2.AnalyzeStackRequest(resources=[
        analyzer_pb2.AnalyzerResource(type=x.type, properties=analyze._struct(x.outputs), urn=x.urn, name=x.name)  # noqa: SLF001
        for x in resources])
    return sorted(d.urn for d in servicer.AnalyzeStack(request, None).diagnostics if d.policyName == rule)


def test_stack_violations_are_reported_on_the_resource_at_fault_in_any_order():
    # A unit's LWS, PDB, HPA and components share its name: the URN, not the name, says which.
    broken = planning.build(POLICY_FIXTURES / "Pulumi.no-network-policies.yaml", preview=True).run
    resources = [*broken.resources, broken.stack_resource()]
    urns = _stack_urns(resources, "network-policy-present")
    assert len(urns) == 2 and all(f"${LWS}::" in u for u in urns)
    assert _stack_urns(resources[::-1], "network-policy-present") == urns
    capacity = planning.build(POLICY_FIXTURES / "Pulumi.too-few-nodes.yaml", preview=True).run
    resources = [*capacity.resources, capacity.stack_resource()]
    urns = _stack_urns(resources, "autoscaler-within-capacity")
    assert len(urns) == 1 and urns == _stack_urns(resources[::-1], "autoscaler-within-capacity")


@pytest.mark.parametrize("name", ["no-network-policies", "too-few-nodes", "latest-image", "uneven-experts"])
def test_preview_and_up_views_agree_on_broken_stacks(name):
    # No rule reads the key, so the first preview stops what `pulumi up` would (this program).
    path = POLICY_FIXTURES / f"Pulumi.{name}.yaml"
    assert planning.build(path, preview=True).violations == planning.build(path).violations
