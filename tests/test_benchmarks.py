"""The benchmarks' code paths at tiny sizes, and the blast-radius property they report: day-2
changes that are not about a pool's own serving change no vLLM pod template."""

from __future__ import annotations

import json
import statistics

import pulumi
import pulumi_kubernetes as k8s
import pytest
import yaml

from benchmarks import __main__ as bench
from benchmarks import blast_radius, fleet, preview, replay
from components import api_key
from moe_ep import engine
from moe_ep.engine import Registration

from .conftest import ROOT, planned


def prod_service() -> dict:
    return yaml.safe_load((ROOT / "stacks/Pulumi.prod.yaml").read_text())["config"]["moe-ep:service"]


def test_day2_changes_not_about_serving_roll_no_vllm_unit():
    rows = {r["change"]: r for r in blast_radius.measure(ROOT / "__main__.py", prod_service(), "prod")}
    assert len(rows) >= 12
    for row in rows.values():
        assert row["objects_changed"] >= 1, f"{row['change']}: the edit took no effect"
        if row["serving"]:
            assert row["pod_templates_changed"] >= 1, row
        else:
            assert row["pod_templates_changed"] == 0, row
            assert not any(o.startswith("LeaderWorkerSet/") for o in row["objects"]), row
    # Autoscaled units leave spec.replicas to the autoscaler (ignore_changes): scaling touches only the HPA.
    assert rows["scale decode pool (replicas 1->2, autoscaling max 3->4)"]["objects"] == ["HorizontalPodAutoscaler/deepseek-r1-decode"]
    assert rows["control: image from a mirror registry"]["pod_templates"] == [
        "deepseek-r1-decode/workerTemplate", "deepseek-r1-prefill/workerTemplate",
    ]


def test_fleet_and_both_replays_register_the_same_resources(monkeypatch):
    one = len(planned("prod").run.resources)
    run = fleet.run_fleet(prod_service(), 3)
    assert len(run.resources) == 3 * one
    namespaces = {r.inputs["metadata"]["namespace"] for r in run.custom() if "namespace" in (r.inputs.get("metadata") or {})}
    assert namespaces == {"llm-serving-000", "llm-serving-001", "llm-serving-002"}
    expected = sorted(replay.identity(run.resources), key=repr)
    core = fleet.run_bare(run)
    assert sorted(replay.identity(core.resources), key=repr) == expected
    assert not any(r.type.startswith("moe-ep:") and r.custom for r in core.resources)

    # The typed replay builds each object with the provider SDK's generated class for its type.
    built: dict[str, set[type]] = {}
    typed_custom = replay.typed_custom

    def recording(r, opts):
        resource = typed_custom(r, opts)
        built.setdefault(r.type, set()).add(type(resource))
        return resource

    monkeypatch.setattr(replay, "typed_custom", recording)
    typed = fleet.run_typed(run)
    assert sorted(replay.identity(typed.resources), key=repr) == expected
    assert set(built) == {r.type for r in run.custom()}
    assert all(len(classes) == 1 for classes in built.values()), built
    classes = {type_: next(iter(c)) for type_, c in built.items()}
    assert classes["kubernetes:apps/v1:Deployment"] is k8s.apps.v1.Deployment
    assert classes["kubernetes:core/v1:NodePatch"] is k8s.core.v1.NodePatch
    assert classes["kubernetes:core/v1:Secret"] is k8s.core.v1.Secret
    assert classes["kubernetes:rbac.authorization.k8s.io/v1:Role"] is k8s.rbac.v1.Role
    assert classes["kubernetes:networking.k8s.io/v1:NetworkPolicy"] is k8s.networking.v1.NetworkPolicy
    assert classes["kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"] is k8s.apiextensions.CustomResource
    assert classes["kubernetes:monitoring.coreos.com/v1:PodMonitor"] is k8s.apiextensions.CustomResource
    assert classes[api_key.KEY_TYPE] is api_key.GeneratedKey
    assert all(c.__module__.startswith("pulumi_kubernetes.") for t, c in classes.items() if t != api_key.KEY_TYPE), classes


def test_every_stack_replays_identically_through_both_baselines(stack):
    # Each stack holds kinds the others lack (a Karpenter NodePool, a KEDA ScaledObject, llm-d's
    # scheduler objects): the generated class for each must register what moe-ep registered.
    run = planned(stack).run
    expected = sorted(replay.identity(run.resources), key=repr)
    for program in (fleet.BARE_PROGRAM, fleet.TYPED_PROGRAM):
        replay.hand_over(run)
        replayed = engine.run_program(program, {}, stack)  # the stack's name: the same URNs
        assert sorted(replay.identity(replayed.resources), key=repr) == expected, program.name
        assert sorted(replay.identity(replayed.reads), key=repr) == sorted(replay.identity(run.reads), key=repr)


def _without_older_api_versions(type_: str, aliases: list) -> pulumi.ResourceTransformationResult | None:
    args = pulumi.ResourceTransformationArgs(
        resource=None, type_=type_, name="x", props={}, opts=pulumi.ResourceOptions(aliases=aliases),
    )
    return replay.without_older_api_versions(args)


def test_typed_replay_drops_only_the_provider_classes_aliases():
    deployment = "kubernetes:apps/v1:Deployment"
    kept_by_name = pulumi.Alias(name="old-name")
    kept_other_kind = pulumi.Alias(type_="kubernetes:apps/v1:StatefulSet")
    kept_with_parent = pulumi.Alias(type_="kubernetes:apps/v1beta1:Deployment", parent="urn:pulumi:s::p::a:b:C::c")
    result = _without_older_api_versions(deployment, [
        pulumi.Alias(type_="kubernetes:apps/v1beta1:Deployment"), kept_by_name,
        pulumi.Alias(type_="kubernetes:extensions/v1beta1:Deployment"), kept_other_kind, kept_with_parent,
    ])
    assert result is not None and result.opts.aliases == [kept_by_name, kept_other_kind, kept_with_parent]
    dynamic_alias = [pulumi.Alias(type_="pulumi-python:dynamic:GeneratedKey")]
    assert _without_older_api_versions(api_key.KEY_TYPE, dynamic_alias) is None
    assert _without_older_api_versions(deployment, []) is None
    assert _without_older_api_versions(deployment, [pulumi.Alias(name="old")]) is None
    only_older = _without_older_api_versions(deployment, [pulumi.Alias(type_="kubernetes:apps/v1beta2:Deployment")])
    assert only_older is not None and only_older.opts.aliases is None


def test_typed_replay_keywords_and_classes():
    assert replay.keyword("kubernetes", "apiVersion") == "api_version"
    assert replay.keyword("kubernetes", "automountServiceAccountToken") == "automount_service_account_token"
    assert replay.keyword("kubernetes", "stringData") == "string_data"
    assert replay.keyword("kubernetes", "spec") == "spec"
    assert replay.keyword("pulumi-python", "keepers") == "keepers"
    assert replay.provider_class("kubernetes:policy/v1:PodDisruptionBudget") is k8s.policy.v1.PodDisruptionBudget
    assert replay.provider_class("kubernetes:inference.networking.k8s.io/v1:InferencePool") is None
    unknown = Registration(urn="urn:x", type="example:index/thing:Thing", name="t", parent="", custom=True, inputs={})
    with pytest.raises(ValueError, match="example:index/thing:Thing"):
        replay.typed_custom(unknown, None)


def test_fleet_size_in_a_fresh_interpreter():
    row = fleet.measure_in_child(ROOT / "stacks/Pulumi.prod.yaml", 2, 3)
    assert row["services"] == 2 and row["resources"] == 2 * len(planned("prod").run.resources) and row["runs"] == 3
    assert row["moe_ep_seconds"] > 0 and row["core_seconds"] > 0 and row["typed_seconds"] > 0 and row["peak_rss_mb"] > 0
    for base in ("core", "typed"):
        per_round = [m / b for m, b in zip(row["moe_ep_seconds_all"], row[f"{base}_seconds_all"])]
        assert row[f"{base}_ratio"] == pytest.approx(statistics.median(per_round), rel=1e-2)
        # Three rounds are too few for a 95% interval: it is the range, covering 75%.
        assert row[f"{base}_ratio_interval"] == pytest.approx([min(per_round), max(per_round), 0.75], rel=1e-2)
    provider_sdk = [t / c for t, c in zip(row["typed_seconds_all"], row["core_seconds_all"])]
    assert row["typed_over_core_ratio"] == pytest.approx(statistics.median(provider_sdk), rel=1e-2)


def test_median_interval_is_the_binomial_order_statistic_interval():
    # The tabulated 95% intervals: n=9 -> x(2)..x(8) covering 96.1%, n=100 -> x(40)..x(61) covering
    # 96.5%. Shuffled input: the order statistics are what count.
    nine = [7.0, 3.0, 9.0, 1.0, 5.0, 2.0, 8.0, 4.0, 6.0]
    assert fleet.median_interval(nine) == (2.0, 8.0, pytest.approx(0.9609375))
    hundred = [float(v) for v in range(100, 0, -1)]
    low, high, coverage = fleet.median_interval(hundred)
    assert (low, high) == (40.0, 61.0) and coverage == pytest.approx(0.9648, abs=1e-4)
    assert fleet.median_interval(nine, confidence=0.8) == (3.0, 7.0, pytest.approx(0.8203125))
    assert fleet.median_interval([5.0]) == (5.0, 5.0, 0.0)
    with pytest.raises(ValueError):
        fleet.median_interval([])


def test_small_fleets_get_more_rounds():
    assert [fleet.rounds_for(n, 5) for n in (1, 10, 50, 100)] == [100, 10, 5, 5]
    assert fleet.ORDERS == (("moe_ep", "core", "typed"), ("core", "typed", "moe_ep"), ("typed", "moe_ep", "core"))


def test_preview_timing_and_the_report(tmp_path, capsys):
    row = preview.measure(ROOT, "dev", runs=2, command_runs=1)
    assert row["resources"] == len(planned("dev").run.resources)
    assert row["median_seconds"] > 0 and row["command_median_seconds"] > 0
    out = tmp_path / "bench.json"
    assert bench.main(["--only", "blast-radius", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["blast-radius"]["target_met"] is True
    assert "vLLM pod templates" in capsys.readouterr().out
