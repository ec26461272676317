"""``moe-ep status``: every unit of a deployed service, its pods and its autoscaler, in one view.

What to look for comes from the stack itself: the workloads (LeaderWorkerSets, Deployments), the
autoscalers (HPA, KEDA ScaledObject) and the router Service that ``moe-ep render`` writes. What
they are comes from the cluster, read once into a ``Snapshot``. ``summarize`` turns the two into
the view (pure: tested without a cluster); ``render`` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import urllib3
from kubernetes import client

from components.labels import COMPONENT
from components.placement import GPU_PRODUCT_LABEL as GPU_PRODUCT
from components.router import names as router_names

from .cluster import Cluster
from .plan import Plan

LWS_GROUP, LWS_VERSION, LWS_PLURAL = "leaderworkerset.x-k8s.io", "v1", "leaderworkersets"
KEDA_GROUP, KEDA_VERSION, KEDA_PLURAL = "keda.sh", "v1alpha1", "scaledobjects"
GROUP_INDEX = "leaderworkerset.sigs.k8s.io/group-index"
WORKER_INDEX = "leaderworkerset.sigs.k8s.io/worker-index"
LWS_NAME = "leaderworkerset.sigs.k8s.io/name"
LWS_REVISION = "leaderworkerset.sigs.k8s.io/template-revision-hash"
DEPLOYMENT_REVISION = "pod-template-hash"
SERVICE_NAME = "kubernetes.io/service-name"
ROLE_ORDER = ("prefill", "decode", "router", "scheduler")


@dataclass(frozen=True)
class Workload:
    role: str
    kind: str
    name: str


@dataclass(frozen=True)
class Autoscaler:
    kind: str
    name: str
    target_kind: str
    target_name: str


@dataclass(frozen=True)
class Inventory:
    """What a stack deploys that has health: read from its rendered manifests."""

    stack: str
    service: str
    namespace: str
    context: str | None
    workloads: tuple[Workload, ...]
    autoscalers: tuple[Autoscaler, ...]
    router_service: str | None


def inventory(plan: Plan) -> Inventory:
    workloads, autoscalers, services = [], [], set()
    for obj in plan.objects:
        kind, meta = obj["kind"], obj["metadata"]
        if kind in ("LeaderWorkerSet", "Deployment"):
            workloads.append(Workload(meta.get("labels", {}).get(COMPONENT, meta["name"]), kind, meta["name"]))
        elif kind in ("HorizontalPodAutoscaler", "ScaledObject"):
            target = obj["spec"]["scaleTargetRef"]
            autoscalers.append(Autoscaler(kind, meta["name"], target.get("kind", "Deployment"), target["name"]))
        elif kind == "Service":
            services.add(meta["name"])
    router = router_names(plan.spec)["router"]
    order = {role: i for i, role in enumerate(ROLE_ORDER)}
    return Inventory(
        stack=plan.stack, service=plan.spec.name, namespace=plan.spec.namespace,
        context=plan.config.get("kubernetes:context"),
        workloads=tuple(sorted(workloads, key=lambda w: (order.get(w.role, len(order)), w.role, w.name))),
        autoscalers=tuple(autoscalers), router_service=router if router in services else None,
    )


@dataclass
class Snapshot:
    """The live objects, as the API writes them (dicts, camelCase)."""

    workloads: dict[tuple[str, str], dict | None] = field(default_factory=dict)
    autoscalers: dict[tuple[str, str], dict | None] = field(default_factory=dict)
    pods: list[dict] = field(default_factory=list)
    nodes: dict[str, dict] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    endpoint_slices: list[dict] = field(default_factory=list)


def _absent_is_none(read, *args) -> Any:
    try:
        return read(*args)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise


def _get(cluster: Cluster, kind: str, name: str, namespace: str) -> dict | None:
    """One object of a kind the inventory names, as a dict; None when absent."""
    custom = {"LeaderWorkerSet": (LWS_GROUP, LWS_VERSION, LWS_PLURAL), "ScaledObject": (KEDA_GROUP, KEDA_VERSION, KEDA_PLURAL)}
    if kind in custom:
        group, version, plural = custom[kind]
        return _absent_is_none(cluster.custom.get_namespaced_custom_object, group, version, namespace, plural, name)
    typed = {"Deployment": cluster.apps.read_namespaced_deployment,
             "HorizontalPodAutoscaler": cluster.autoscaling.read_namespaced_horizontal_pod_autoscaler}[kind]
    got = _absent_is_none(typed, name, namespace)
    return None if got is None else cluster.as_dict(got)


def read(cluster: Cluster, inv: Inventory) -> Snapshot:
    """One read of everything ``summarize`` needs; a cluster that stops answering is a ClusterError."""
    ns, snap = inv.namespace, Snapshot()
    try:
        snap.workloads = {(w.kind, w.name): _get(cluster, w.kind, w.name, ns) for w in inv.workloads}
        snap.autoscalers = {(a.kind, a.name): _get(cluster, a.kind, a.name, ns) for a in inv.autoscalers}
        pods = cluster.core.list_namespaced_pod(ns, label_selector=f"app.kubernetes.io/name={inv.service}")
        snap.pods = [cluster.as_dict(p) for p in pods.items]
        for node in sorted({p["spec"].get("nodeName") for p in snap.pods} - {None}):
            got = _absent_is_none(cluster.core.read_node, node)
            if got is not None:
                snap.nodes[node] = cluster.as_dict(got)
        snap.events = [cluster.as_dict(e) for e in cluster.core.list_namespaced_event(
            ns, field_selector="type=Warning,involvedObject.kind=Pod").items]
        if inv.router_service:
            slices = cluster.discovery.list_namespaced_endpoint_slice(ns, label_selector=f"{SERVICE_NAME}={inv.router_service}")
            snap.endpoint_slices = [cluster.as_dict(s) for s in slices.items]
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise cluster.unreachable(error) from None
    except client.ApiException as error:
        if error.status in (401, 403):
            raise cluster.unreachable(error) from None
        raise
    return snap


# --- the view (pure) ---------------------------------------------------------------------------


def _condition(obj: dict, kind: str) -> dict | None:
    return next((c for c in obj.get("status", {}).get("conditions") or [] if c.get("type") == kind), None)


def _is_ready(pod: dict) -> bool:
    ready = _condition(pod, "Ready")
    return bool(ready and ready.get("status") == "True") and not pod["metadata"].get("deletionTimestamp")


def _restarts(pod: dict) -> int:
    status = pod.get("status", {})
    return sum(c.get("restartCount", 0) for c in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []))


def _why_not_ready(pod: dict, events: list[dict]) -> str:
    """The pod's own account of why it is not ready: its scheduling condition, a waiting or failed
    container, its Ready condition, and the newest Warning event about it."""
    meta, status = pod["metadata"], pod.get("status", {})
    reasons = []
    if meta.get("deletionTimestamp"):
        reasons.append("terminating")
    scheduled = _condition(pod, "PodScheduled")
    if scheduled and scheduled.get("status") == "False":
        reasons.append(f"not scheduled: {scheduled.get('reason', '')}: {scheduled.get('message', '')}".rstrip(": "))
    for c in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        state = c.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason") not in (None, "PodInitializing", "ContainerCreating"):
            reasons.append(f"container {c['name']} waiting: {state['waiting']['reason']} {state['waiting'].get('message', '')}".rstrip())
        elif "terminated" in state and state["terminated"].get("exitCode", 0) != 0:
            t = state["terminated"]
            reasons.append(f"container {c['name']} exited {t.get('exitCode')} ({t.get('reason', '')})")
    ready = _condition(pod, "Ready")
    if not reasons and status.get("phase") not in ("Running", None):
        reasons.append(f"phase {status['phase']}")
    if not reasons and ready and ready.get("status") != "True":
        reasons.append(f"not ready: {ready.get('reason') or ''} {ready.get('message') or ''}".strip())
    if not reasons:
        reasons.append("not ready")
    mine = [e for e in events if (e.get("involvedObject") or {}).get("uid") == meta.get("uid")]
    if mine:
        newest = max(mine, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        message = (newest.get("message") or "").strip()
        if not any(message in reason for reason in reasons):  # the scheduler says the same in both
            reasons.append(f"event {newest.get('reason')}: {message}")
    return "; ".join(reasons)


def _pod_view(pod: dict, nodes: dict[str, dict], events: list[dict]) -> dict[str, Any]:
    node = pod["spec"].get("nodeName")
    view = {
        "name": pod["metadata"]["name"],
        "node": node,
        "gpu": (nodes.get(node, {}).get("metadata", {}).get("labels") or {}).get(GPU_PRODUCT) if node else None,
        "phase": pod.get("status", {}).get("phase"),
        "ready": _is_ready(pod),
        "restarts": _restarts(pod),
    }
    if not view["ready"]:
        view["reason"] = _why_not_ready(pod, events)
    return view


def _lws_units(lws: dict, pods: list[dict], snap: Snapshot) -> list[dict[str, Any]]:
    size = lws["spec"].get("leaderWorkerTemplate", {}).get("size", 1)
    replicas = lws["spec"].get("replicas", 1)
    groups: dict[int, list[dict]] = {}
    for pod in pods:
        groups.setdefault(int(pod["metadata"]["labels"].get(GROUP_INDEX, -1)), []).append(pod)
    units = []
    for index in sorted(set(range(replicas)) | set(groups)):
        members = sorted(groups.get(index, []), key=lambda p: int(p["metadata"]["labels"].get(WORKER_INDEX, 0)))
        leader = next((p for p in members if p["metadata"]["labels"].get(WORKER_INDEX) == "0"), None)
        views = [_pod_view(p, snap.nodes, snap.events) for p in members]
        problems = [f"pod {v['name']}: {v['reason']}" for v in views if not v["ready"]]
        if len(members) < size:
            present = sorted(int(p["metadata"]["labels"].get(WORKER_INDEX, 0)) for p in members)
            missing = [str(i) for i in range(size) if i not in present]
            problems.insert(0, f"{len(members)} of {size} pods (missing rank{'s' if len(missing) > 1 else ''} {', '.join(missing)})")
        if index >= replicas:
            problems.insert(0, f"beyond the {replicas} desired unit(s): being removed")
        units.append({
            "index": index,
            "ready": not problems,
            "revision": leader["metadata"]["labels"].get(LWS_REVISION) if leader else None,
            "pods": views,
            **({"problems": problems} if problems else {}),
        })
    return units


def _deployment_units(deployment: dict, pods: list[dict], snap: Snapshot) -> list[dict[str, Any]]:
    units = []
    for index, pod in enumerate(sorted(pods, key=lambda p: p["metadata"]["name"])):
        view = _pod_view(pod, snap.nodes, snap.events)
        units.append({
            "index": index, "ready": view["ready"], "revision": pod["metadata"]["labels"].get(DEPLOYMENT_REVISION),
            "pods": [view], **({} if view["ready"] else {"problems": [f"pod {view['name']}: {view['reason']}"]}),
        })
    return units


def _selected(pods: list[dict], selector: dict[str, str]) -> list[dict]:
    return [p for p in pods if all(p["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())]


def _autoscaling(a: Autoscaler, live: dict | None, workload: dict | None) -> dict[str, Any]:
    view: dict[str, Any] = {"kind": a.kind, "name": a.name, "found": live is not None}
    if live is None:
        return view
    spec, status = live.get("spec", {}), live.get("status") or {}
    if a.kind == "HorizontalPodAutoscaler":
        view.update(min=spec.get("minReplicas", 1), max=spec.get("maxReplicas"),
                    current=status.get("currentReplicas"), desired=status.get("desiredReplicas"))
    else:  # KEDA drives the workload's replicas through an HPA of its own: read them off the workload
        view.update(min=spec.get("minReplicaCount", 0), max=spec.get("maxReplicaCount"),
                    current=(workload or {}).get("status", {}).get("replicas"),
                    desired=(workload or {}).get("spec", {}).get("replicas"))
    view["conditions"] = {c["type"]: {k: c[k] for k in ("status", "reason", "message") if c.get(k)}
                          for c in status.get("conditions") or []}
    return view


def _endpoints(slices: list[dict]) -> list[dict[str, Any]]:
    found = []
    for s in slices:
        for e in s.get("endpoints") or []:
            for address in e.get("addresses", []):
                found.append({"address": address, "pod": (e.get("targetRef") or {}).get("name"),
                              "ready": bool((e.get("conditions") or {}).get("ready"))})
    return sorted(found, key=lambda e: (e["address"], e["pod"] or ""))


def summarize(inv: Inventory, snap: Snapshot) -> dict[str, Any]:
    """The view ``--json`` prints: per pool its units and pods, its autoscaler, and every problem."""
    pools: dict[str, Any] = {}
    problems: list[str] = []
    for w in inv.workloads:
        live = snap.workloads.get((w.kind, w.name))
        pool: dict[str, Any] = {"kind": w.kind, "name": w.name, "found": live is not None}
        if live is None:
            pool.update(ready=False, units=[])
            problems.append(f"{w.role}: {w.kind} {inv.namespace}/{w.name} not found (has `pulumi up` run for stack {inv.stack}?)")
        else:
            if w.kind == "LeaderWorkerSet":
                units = _lws_units(live, [p for p in snap.pods if p["metadata"].get("labels", {}).get(LWS_NAME) == w.name], snap)
                pool["size"] = live["spec"].get("leaderWorkerTemplate", {}).get("size", 1)
            else:
                units = _deployment_units(live, _selected(snap.pods, live["spec"]["selector"].get("matchLabels", {})), snap)
            desired = live["spec"].get("replicas", 1)
            ready_units = sum(u["ready"] for u in units)
            pool.update(desired=desired, ready_units=ready_units, units=units)
            pool["ready"] = ready_units >= desired and all(u["ready"] for u in units)
            for u in units:
                problems.extend(f"{w.role} unit {u['index']}: {p}" for p in u.get("problems", []))
            if ready_units < desired and len(units) < desired:
                problems.append(f"{w.role}: {len(units)} of {desired} desired unit(s) exist")
        scalers = [a for a in inv.autoscalers if (a.target_kind, a.target_name) == (w.kind, w.name)]
        pool["autoscaling"] = _autoscaling(scalers[0], snap.autoscalers.get((scalers[0].kind, scalers[0].name)), live) if scalers else None
        if w.role == "router":
            pool["endpoints"] = _endpoints(snap.endpoint_slices)
        pools[w.role] = pool
    return {
        "stack": inv.stack, "service": inv.service, "namespace": inv.namespace,
        "ready": all(p["ready"] for p in pools.values()), "pools": pools, "problems": problems,
    }


def _scaling_line(a: dict[str, Any] | None) -> str:
    if a is None:
        return "fixed size"
    if not a["found"]:
        return f"{a['kind']} {a['name']} NOT FOUND"
    unhappy = [f"{t} {c.get('status')}" + (f" ({c['reason']})" if c.get("reason") else "")
               for t, c in a["conditions"].items() if c.get("status") != "True"]
    return (f"{a['kind']} {a['name']}: {a['current']} current, {a['desired']} desired, {a['min']}..{a['max']}"
            + (f"; {', '.join(unhappy)}" if unhappy else ""))


def render(view: dict[str, Any], context: str, server: str) -> str:
    lines = [f"moe-ep status: stack {view['stack']}, service {view['service']} in namespace {view['namespace']} "
             f"(context {context}, {server})"]
    for role, pool in view["pools"].items():
        lines.append("")
        if not pool["found"]:
            lines.append(f"{role}: {pool['kind']} {pool['name']} NOT FOUND")
            continue
        lines.append(f"{role}: {pool['kind']} {pool['name']}: {pool['ready_units']}/{pool['desired']} units ready"
                     f"{' (' + str(pool['size']) + ' pods each)' if pool.get('size', 1) > 1 else ''}; {_scaling_line(pool['autoscaling'])}")
        for u in pool["units"]:
            lines.append(f"  unit {u['index']}  {'ready' if u['ready'] else 'NOT READY'}  revision {u['revision'] or '-'}")
            for p in u["pods"]:
                lines.append(f"    {p['name']:<40} {p['node'] or '(unscheduled)':<16} {p['gpu'] or '-':<26} {p['phase'] or '-':<9} "
                             f"{'ready' if p['ready'] else 'not ready'}  restarts {p['restarts']}")
            for problem in u.get("problems", []):
                lines.append(f"    ! {problem}")
        if "endpoints" in pool:
            shown = [f"{e['address']} ({e['pod']}{'' if e['ready'] else ', not ready'})" for e in pool["endpoints"]]
            lines.append(f"  endpoints: {', '.join(shown) or 'none'}")
    lines.append("")
    units = [u for p in view["pools"].values() for u in p["units"]]
    if view["ready"]:
        lines.append(f"ready: all {len(units)} units of {len(view['pools'])} pools")
    else:
        lines.append(f"NOT READY: {len(view['problems'])} problem(s)")
        lines.extend(f"  - {p}" for p in view["problems"])
    return "\n".join(lines)
