"""``moe-ep status`` from live-shaped objects, without a cluster: which units are ready, and why
the others are not, in the words the pods and their events use."""

from __future__ import annotations

from pathlib import Path

import pytest

from moe_ep import plan as planning, status

ROOT = Path(__file__).resolve().parents[1]
NS = "llm-staging"


@pytest.fixture(scope="module")
def inv() -> status.Inventory:
    return status.inventory(planning.build(planning.stack_file(ROOT, "staging"), ROOT, "staging"))


def lws(name: str, replicas: int, size: int, ready: int | None = None) -> dict:
    return {"metadata": {"name": name, "namespace": NS}, "spec": {"replicas": replicas, "leaderWorkerTemplate": {"size": size}},
            "status": {"replicas": replicas, "readyReplicas": replicas if ready is None else ready}}


def deployment(name: str, replicas: int, component: str) -> dict:
    selector = {"app.kubernetes.io/name": "deepseek-r1", "app.kubernetes.io/component": component}
    return {"metadata": {"name": name, "namespace": NS}, "spec": {"replicas": replicas, "selector": {"matchLabels": selector}}}


def pod(name: str, node: str | None, *, lws_name: str | None = None, group: int = 0, worker: int = 0, component: str = "decode",
        ready: bool = True, phase: str = "Running", conditions: list | None = None, containers: list | None = None) -> dict:
    labels = {"app.kubernetes.io/name": "deepseek-r1", "app.kubernetes.io/component": component}
    if lws_name:
        labels.update({status.LWS_NAME: lws_name, status.GROUP_INDEX: str(group), status.WORKER_INDEX: str(worker),
                       status.LWS_REVISION: "rev-a"})
    else:
        labels[status.DEPLOYMENT_REVISION] = "hash-1"
    return {
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "labels": labels},
        "spec": {"nodeName": node} if node else {},
        "status": {"phase": phase,
                   "conditions": conditions if conditions is not None else [{"type": "Ready", "status": "True" if ready else "False"}],
                   "containerStatuses": containers or [{"name": "vllm", "restartCount": 0, "state": {"running": {}}}]},
    }


def node(name: str, product: str = "NVIDIA-H200") -> dict:
    return {"metadata": {"name": name, "labels": {status.GPU_PRODUCT: product}}}


def healthy(inv: status.Inventory) -> status.Snapshot:
    snap = status.Snapshot()
    snap.workloads = {
        ("LeaderWorkerSet", "deepseek-r1-prefill"): lws("deepseek-r1-prefill", 1, 1),
        ("LeaderWorkerSet", "deepseek-r1-decode"): lws("deepseek-r1-decode", 1, 2),
        ("Deployment", "deepseek-r1-router"): deployment("deepseek-r1-router", 1, "router"),
        ("Deployment", "deepseek-r1-scheduler"): deployment("deepseek-r1-scheduler", 1, "scheduler"),
    }
    snap.autoscalers = {
        ("HorizontalPodAutoscaler", "deepseek-r1-router"): {
            "spec": {"minReplicas": 1, "maxReplicas": 4},
            "status": {"currentReplicas": 1, "desiredReplicas": 1, "conditions": [
                {"type": "AbleToScale", "status": "True", "reason": "SucceededGetScale"},
                {"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric", "message": "no metrics"}]}},
        ("ScaledObject", "deepseek-r1-decode"): {"spec": {"minReplicaCount": 1, "maxReplicaCount": 3}},
    }
    snap.pods = [
        pod("deepseek-r1-prefill-0", "h200-a", lws_name="deepseek-r1-prefill", component="prefill"),
        pod("deepseek-r1-decode-0", "h200-b", lws_name="deepseek-r1-decode"),
        pod("deepseek-r1-decode-0-1", "h200-c", lws_name="deepseek-r1-decode", worker=1),
        pod("deepseek-r1-router-abc", "cpu-1", component="router"),
        pod("deepseek-r1-scheduler-def", "cpu-1", component="scheduler"),
    ]
    snap.nodes = {n: node(n) for n in ("h200-a", "h200-b", "h200-c")} | {"cpu-1": {"metadata": {"name": "cpu-1", "labels": {}}}}
    snap.endpoint_slices = [{"endpoints": [{"addresses": ["10.0.0.9"], "conditions": {"ready": True},
                                            "targetRef": {"kind": "Pod", "name": "deepseek-r1-router-abc"}}]}]
    return snap


def test_a_healthy_service_lists_every_unit_and_pod_with_its_node_and_gpu(inv):
    view = status.summarize(inv, healthy(inv))
    assert view["ready"] and view["problems"] == []
    assert list(view["pools"]) == ["prefill", "decode", "router", "scheduler"]
    decode = view["pools"]["decode"]
    assert (decode["desired"], decode["ready_units"], decode["size"]) == (1, 1, 2)
    assert [(p["name"], p["node"], p["gpu"], p["ready"]) for p in decode["units"][0]["pods"]] == [
        ("deepseek-r1-decode-0", "h200-b", "NVIDIA-H200", True), ("deepseek-r1-decode-0-1", "h200-c", "NVIDIA-H200", True)]
    assert decode["units"][0]["revision"] == "rev-a"
    assert view["pools"]["router"]["endpoints"] == [{"address": "10.0.0.9", "pod": "deepseek-r1-router-abc", "ready": True}]


def test_autoscalers_show_bounds_and_the_conditions_that_are_not_true(inv):
    view = status.summarize(inv, healthy(inv))
    hpa = view["pools"]["router"]["autoscaling"]
    assert (hpa["min"], hpa["max"], hpa["current"], hpa["desired"]) == (1, 4, 1, 1)
    assert hpa["conditions"]["ScalingActive"] == {"status": "False", "reason": "FailedGetResourceMetric", "message": "no metrics"}
    keda = view["pools"]["decode"]["autoscaling"]
    assert (keda["kind"], keda["min"], keda["max"], keda["current"], keda["desired"]) == ("ScaledObject", 1, 3, 1, 1)
    text = status.render(view, "ctx", "https://example")
    assert "HorizontalPodAutoscaler deepseek-r1-router: 1 current, 1 desired, 1..4; ScalingActive False (FailedGetResourceMetric)" in text


def test_a_unit_missing_a_rank_is_not_ready_and_says_which(inv):
    snap = healthy(inv)
    snap.pods = [p for p in snap.pods if p["metadata"]["name"] != "deepseek-r1-decode-0-1"]
    view = status.summarize(inv, snap)
    assert not view["ready"] and not view["pools"]["decode"]["ready"] and view["pools"]["prefill"]["ready"]
    assert view["problems"] == ["decode unit 0: 1 of 2 pods (missing rank 1)"]
    assert "NOT READY: 1 problem(s)" in status.render(view, "ctx", "https://example")


def test_an_unschedulable_rank_gives_the_schedulers_reason_and_the_newest_event(inv):
    snap = healthy(inv)
    snap.pods[2] = pod("deepseek-r1-decode-0-1", None, lws_name="deepseek-r1-decode", worker=1, phase="Pending", conditions=[
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/19 nodes are available: 19 node(s) were unschedulable."}])
    snap.events = [
        {"involvedObject": {"uid": "uid-deepseek-r1-decode-0-1"}, "reason": "FailedScheduling", "message": "older", "lastTimestamp": "2026-12-03T10:00:00Z"},
        {"involvedObject": {"uid": "uid-deepseek-r1-decode-0-1"}, "reason": "FailedScheduling", "message": "newest", "lastTimestamp": "2026-12-03T10:05:00Z"},
        {"involvedObject": {"uid": "uid-other"}, "reason": "BackOff", "message": "not this pod", "lastTimestamp": "2026-12-03T11:00:00Z"},
    ]
    view = status.summarize(inv, snap)
    assert view["problems"] == ["decode unit 0: pod deepseek-r1-decode-0-1: not scheduled: Unschedulable: 0/19 nodes are available: "
                                "19 node(s) were unschedulable.; event FailedScheduling: newest"]
    assert view["pools"]["decode"]["units"][0]["pods"][1]["node"] is None


def test_a_crash_looping_container_is_named_and_its_restarts_counted(inv):
    snap = healthy(inv)
    snap.pods[0] = pod("deepseek-r1-prefill-0", "h200-a", lws_name="deepseek-r1-prefill", component="prefill", ready=False, containers=[
        {"name": "vllm", "restartCount": 7, "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}}}])
    view = status.summarize(inv, snap)
    pod_view = view["pools"]["prefill"]["units"][0]["pods"][0]
    assert (pod_view["ready"], pod_view["restarts"]) == (False, 7)
    assert view["problems"] == ["prefill unit 0: pod deepseek-r1-prefill-0: container vllm waiting: CrashLoopBackOff back-off 5m0s"]


def test_a_workload_that_is_not_there_is_a_problem_naming_the_stack(inv):
    snap = healthy(inv)
    snap.workloads[("LeaderWorkerSet", "deepseek-r1-prefill")] = None
    snap.pods = [p for p in snap.pods if "prefill" not in p["metadata"]["name"]]
    view = status.summarize(inv, snap)
    assert view["pools"]["prefill"]["found"] is False
    assert view["problems"] == ["prefill: LeaderWorkerSet llm-staging/deepseek-r1-prefill not found (has `pulumi up` run for stack staging?)"]


def test_units_beyond_the_desired_count_are_reported_as_being_removed(inv):
    snap = healthy(inv)
    snap.pods.append(pod("deepseek-r1-prefill-1", "h200-c", lws_name="deepseek-r1-prefill", group=1, component="prefill"))
    view = status.summarize(inv, snap)
    assert [u["index"] for u in view["pools"]["prefill"]["units"]] == [0, 1]
    assert view["problems"] == ["prefill unit 1: beyond the 1 desired unit(s): being removed"]


def test_fewer_router_pods_than_desired_is_not_ready(inv):
    snap = healthy(inv)
    snap.workloads[("Deployment", "deepseek-r1-router")]["spec"]["replicas"] = 2
    view = status.summarize(inv, snap)
    assert not view["pools"]["router"]["ready"]
    assert view["problems"] == ["router: 1 of 2 desired unit(s) exist"]
