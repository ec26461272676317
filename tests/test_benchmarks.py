"""The benchmarks' code paths at tiny sizes, and the blast-radius property they report: day-2
changes that are not about a pool's own serving change no vLLM pod template."""

from __future__ import annotations

import copy
import json
import statistics
from contextlib import nullcontext

import pulumi
import pulumi_kubernetes as k8s
import pytest
import yaml

from benchmarks import __main__ as bench
from benchmarks import blast_radius, blast_radius_live, fleet, preview, replay
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


def _replay(service: dict) -> engine.Run:
    return engine.run_program(ROOT / "__main__.py", {"moe-ep:service": service}, "prod")


def _changed(service: dict, name: str) -> dict:
    edited = copy.deepcopy(service)
    next(c for c in blast_radius.CHANGES if c.name == name).edit(edited)
    return edited


def test_replayed_pods_of_each_day2_change():
    base = _replay(prod_service())
    deployed = blast_radius.pods(None, base)
    assert deployed["added"] == ["llm-serving/deepseek-r1-decode-0", "llm-serving/deepseek-r1-prefill-0"]
    for change in blast_radius.CHANGES:
        after = _replay(_changed(prod_service(), change.name))
        found = blast_radius.pods(base, after)
        assert bool(found["restarted"]) is change.serving, (change.name, found)
        # The autoscaled units keep their live replicas (ignore_changes) unless the HPA's new bounds clamp them.
        expected = ["llm-serving/deepseek-r1-prefill-1"] if change.name.startswith("HPA bounds") else []
        assert (found["added"], found["removed"]) == (expected, []), (change.name, found)
    mirror = blast_radius.pods(base, _replay(_changed(prod_service(), "control: image from a mirror registry")))
    assert mirror["restarted"] == ["llm-serving/deepseek-r1-decode-0", "llm-serving/deepseek-r1-prefill-0"]


def test_replayed_pods_carry_the_live_replicas_from_step_to_step():
    base = _replay(prod_service())
    wider = _changed(prod_service(), "HPA bounds (prefill min 1->2, max 3->4, target 4->8)")
    widened = blast_radius.pods(base, _replay(wider))
    assert widened["replicas"]["llm-serving/deepseek-r1-prefill"] == 2
    # Back to min 1: the HPA does not scale in without metrics, so the second unit stays and a new image rolls it too.
    back = blast_radius.pods(_replay(wider), base, widened["replicas"])
    assert (back["added"], back["removed"], back["replicas"]["llm-serving/deepseek-r1-prefill"]) == ([], [], 2)
    mirror = blast_radius.pods(base, _replay(_changed(prod_service(), "control: image from a mirror registry")), back["replicas"])
    assert len(mirror["restarted"]) == 3 and "llm-serving/deepseek-r1-prefill-1" in mirror["restarted"]
    # A unit whose replicas the stack owns (no ignore_changes) follows them; a 2-node unit is 2 pods (leader, worker).
    run = copy.deepcopy(base)
    for r in run.of_type(blast_radius.LWS_TYPE):
        object.__setattr__(r, "ignore_changes", ())
        r.inputs["spec"]["leaderWorkerTemplate"]["size"] = 2
    scaled = copy.deepcopy(run)
    for r in scaled.of_type(blast_radius.LWS_TYPE):
        r.inputs["spec"]["replicas"] = 3
    grown = blast_radius.pods(run, scaled)
    assert grown["restarted"] == [] and len(grown["added"]) == 8 and "llm-serving/deepseek-r1-decode-2-1" in grown["added"]
    assert grown["replicas"] == {"llm-serving/deepseek-r1-decode": 3, "llm-serving/deepseek-r1-prefill": 3}


def test_replayed_restarts_follow_the_lws_revision_not_only_the_pod_templates():
    # LWS v0.9 hashes the whole leaderWorkerTemplate and networkConfig into a group's revision.
    base = _replay(prod_service())
    for edit in (lambda spec: spec["leaderWorkerTemplate"].__setitem__("restartPolicy", "None"),
                 lambda spec: spec.__setitem__("networkConfig", {"subdomainPolicy": "UniquePerReplica"})):
        after = copy.deepcopy(base)
        for r in after.of_type(blast_radius.LWS_TYPE):
            edit(r.inputs["spec"])
        assert blast_radius.diff(base, after)["pod_templates_changed"] == 0
        assert len(blast_radius.pods(base, after)["restarted"]) == 2
    # The default networkConfig written out is no change.
    after = copy.deepcopy(base)
    for r in after.of_type(blast_radius.LWS_TYPE):
        r.inputs["spec"]["networkConfig"] = dict(blast_radius.SHARED_SUBDOMAIN)
    assert blast_radius.pods(base, after)["restarted"] == []


def test_live_blast_radius_steps_restore_or_chain():
    service = prod_service()
    changes = blast_radius.CHANGES[:2]
    restored = blast_radius_live.steps(service, changes, chain=False)
    assert [s.kind for s in restored] == ["base", "change", "restore", "change", "restore"]
    assert all(s.service == service for s in restored if s.kind != "change")
    assert restored[3].service["router"]["non_cached_tokens"] == 64 and restored[3].service["decode"]["replicas"] == 1
    chained = blast_radius_live.steps(service, changes, chain=True)
    assert [s.kind for s in chained] == ["base", "change", "change"]
    assert chained[2].service["router"]["non_cached_tokens"] == 64 and chained[2].service["decode"]["replicas"] == 2
    assert service == prod_service()


def _live_row(change: str, agree: bool) -> dict:
    return {"change": change, "kind": "change", "serving": False, "replayed_pods_restarted": 0, "live_pods_restarted": 0,
            "replayed_added": 1, "live_added": 1 if agree else 0, "replayed_removed": 0, "live_removed": 0,
            "agree": agree, "seconds": 1.0}


@pytest.mark.parametrize("agree", [True, False])
def test_bench_fails_when_live_and_replay_disagree(monkeypatch, tmp_path, capsys, agree):
    planes = []
    monkeypatch.setattr(blast_radius_live, "plane_at", lambda directory, offset: planes.append((directory, offset)) or nullcontext())
    monkeypatch.setattr(blast_radius_live, "measure", lambda stack_file, chain: [_live_row("HPA bounds", agree)])
    out = tmp_path / "bench.json"
    assert bench.main(["--only", "blast-radius-live", "--out", str(out)]) == (0 if agree else 1)
    printed = capsys.readouterr().out
    assert "HPA bounds" in printed and f"1 / {1 if agree else 0}" in printed  # replayed / live added
    assert ("FAILED: blast-radius-live" in printed) is not agree
    assert planes == [(blast_radius_live.PLANE_DIR, blast_radius_live.PORT_OFFSET)]
    assert json.loads(out.read_text())["blast-radius-live"]["failed"] is not agree
