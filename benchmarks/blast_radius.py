"""Update blast radius: what typical day-2 changes to a stack would make ``pulumi up`` touch.

Each change edits the stack's ``moe-ep:service``; both versions run through the real program
under mocks and are compared resource by resource (custom resources by URN, inputs after the
fields a resource's ``ignore_changes`` hands to someone else, e.g. an autoscaled unit's
``spec.replicas``). The figure that matters is how many vLLM pod templates (a LeaderWorkerSet's
``leaderTemplate``/``workerTemplate``) change: each one rolls every unit of its pool, minutes of
model loading per unit. Changes not about a pool's own serving must change none.

``pods`` turns two runs into what the cluster will do to the vLLM pods: which are recreated
(LeaderWorkerSet rolls every group when its revision changes), added or removed (replicas, as
the stack sets them or as an autoscaler clamps them). ``benchmarks.blast_radius_live`` checks it
against ``pulumi up`` on the local control plane.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from moe_ep import engine, manifests

LWS_TYPE = "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"
HPA_TYPE = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
TEMPLATES = ("leaderTemplate", "workerTemplate")
SHARED_SUBDOMAIN = {"subdomainPolicy": "Shared"}
"""LWS's default networkConfig (its webhook sets it; its revision reads an absent one as this)."""


@dataclass(frozen=True)
class Change:
    name: str
    edit: Callable[[dict[str, Any]], None]
    """Edits a copy of the service config in place."""
    serving: bool
    """About a pool's own serving (vLLM flags, image): its templates are expected to change."""


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(service: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = service
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return edit


def _edits(*edits: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def edit(service: dict[str, Any]) -> None:
        for one in edits:
            one(service)
    return edit


def _add_node(service: dict[str, Any]) -> None:
    nodes = service["node_pool"]["existing"]["nodes"]
    service["node_pool"]["existing"]["nodes"] = [*nodes, f"{nodes[-1]}-added"]


def _image_mirror(service: dict[str, Any]) -> None:
    # Same vLLM version from another registry: only where the pods pull from changes.
    service["image"] = f"registry.example.com/{service['image']}"


CHANGES: tuple[Change, ...] = (
    Change("scale decode pool (replicas 1->2, autoscaling max 3->4)",
           _edits(_set("decode.replicas", 2), _set("decode.autoscaling.max_replicas", 4)), serving=False),
    Change("router policy (non_cached_tokens 16->64)", _set("router.non_cached_tokens", 64), serving=False),
    Change("HPA bounds (prefill min 1->2, max 3->4, target 4->8)",
           _edits(_set("prefill.autoscaling.min_replicas", 2), _set("prefill.autoscaling.max_replicas", 4),
                  _set("prefill.autoscaling.target_waiting_per_unit", 8)), serving=False),
    Change("rotate the API key (api_key.keepers)", _set("api_key.keepers", {"rotated": "2026-11"}), serving=False),
    Change("alert thresholds (queue 16->32, KV 0.95->0.9)",
           _edits(_set("monitoring.thresholds.queue_waiting", 32), _set("monitoring.thresholds.kv_cache_usage", 0.9)),
           serving=False),
    Change("dashboard folder (moe-ep->llm)", _set("monitoring.dashboard.folder", "llm"), serving=False),
    Change("add a node to the existing pool", _add_node, serving=False),
    Change("router replicas (2..6 -> 3..10)",
           _edits(_set("router.min_replicas", 3), _set("router.max_replicas", 10)), serving=False),
    Change("disruption budget (decode max_unavailable_units 1->2)", _set("decode.max_unavailable_units", 2), serving=False),
    Change("autoscaler engine (decode HPA -> KEDA)", _set("decode.autoscaling.engine", "keda"), serving=False),
    Change("control: decode gpu_memory_utilization 0.9->0.92", _set("decode.gpu_memory_utilization", 0.92), serving=True),
    Change("control: image from a mirror registry", _image_mirror, serving=True),
)


def _without(inputs: dict[str, Any], paths: tuple[str, ...]) -> dict[str, Any]:
    """``inputs`` without the dotted ``ignore_changes`` paths (Pulumi does not diff them)."""
    inputs = copy.deepcopy(inputs)
    for path in paths:
        *parents, leaf = path.split(".")
        node: Any = inputs
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return inputs


def _state(run: engine.Run) -> dict[str, Any]:
    return {r.urn: (r.type, _without(r.inputs, r.ignore_changes)) for r in run.custom()}


def _templates(run: engine.Run) -> dict[tuple[str, str], Any]:
    found = {}
    for r in run.of_type(LWS_TYPE):
        template = manifests.to_manifest(r)["spec"]["leaderWorkerTemplate"]
        for which in TEMPLATES:
            if which in template:
                found[(r.name, which)] = template[which]
    return found


def _changed(before: dict, after: dict) -> list:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def diff(before: engine.Run, after: engine.Run) -> dict[str, Any]:
    """Pod templates and resources that differ between two runs of the program."""
    templates = _changed(_templates(before), _templates(after))
    old, new = _state(before), _state(after)
    objects = _changed(old, new)
    return {
        "pod_templates_changed": len(templates),
        "pod_templates": [f"{name}/{which}" for name, which in templates],
        "objects_changed": len(objects),
        "objects_added": sum(1 for urn in objects if urn not in old),
        "objects_removed": sum(1 for urn in objects if urn not in new),
        "objects": [f"{(new.get(urn) or old[urn])[0].rsplit(':', 1)[-1]}/{urn.rsplit('::', 1)[-1]}" for urn in objects],
    }


def measure(program: Path, service: dict[str, Any], stack: str, changes: tuple[Change, ...] = CHANGES) -> list[dict[str, Any]]:
    base = engine.run_program(program, {"moe-ep:service": service}, stack)
    rows = []
    for change in changes:
        edited = copy.deepcopy(service)
        change.edit(edited)
        after = engine.run_program(program, {"moe-ep:service": edited}, stack)
        rows.append({"change": change.name, "serving": change.serving, **diff(base, after),
                     "pods_restarted": len(pods(base, after)["restarted"])})
    return rows


@dataclass(frozen=True)
class Unit:
    """One LeaderWorkerSet as the cluster will see it."""

    revision: Any
    """What LWS v0.9 hashes into a revision (``revision_utils.getPatch``): the whole
    leaderWorkerTemplate and networkConfig. A change to it rolls every group."""
    size: int
    replicas: int
    """spec.replicas as written (1 when absent)."""
    replicas_ignored: bool
    """``ignore_changes`` hands spec.replicas to someone else: an update keeps the live value."""
    bounds: tuple[int, int] | None
    """(minReplicas, maxReplicas) of an HPA that targets it."""


def units(run: engine.Run) -> dict[str, Unit]:
    """Every LeaderWorkerSet of a run, by ``namespace/name``."""
    hpas = {}
    for r in run.of_type(HPA_TYPE):
        manifest = manifests.to_manifest(r)
        target = manifest["spec"]["scaleTargetRef"]
        if target.get("kind") == "LeaderWorkerSet":
            key = f"{manifest['metadata'].get('namespace', 'default')}/{target['name']}"
            hpas[key] = (manifest["spec"].get("minReplicas", 1), manifest["spec"]["maxReplicas"])
    found = {}
    for r in run.of_type(LWS_TYPE):
        manifest = manifests.to_manifest(r)
        spec = manifest["spec"]
        key = f"{manifest['metadata'].get('namespace', 'default')}/{manifest['metadata']['name']}"
        template = spec["leaderWorkerTemplate"]
        found[key] = Unit(revision=(template, spec.get("networkConfig") or SHARED_SUBDOMAIN),
                          size=template.get("size", 1), replicas=spec.get("replicas", 1),
                          replicas_ignored="spec.replicas" in r.ignore_changes, bounds=hpas.get(key))
    return found


def _live_replicas(unit: Unit, before: int | None) -> int:
    """Replicas after ``pulumi up``, then the HPA controller: below its minimum it scales to the
    minimum, above its maximum to the maximum, without metrics; in between it needs metrics
    (none on the local plane, and none that would move a unit in a benchmark), and at 0 it is off."""
    replicas = before if before is not None and unit.replicas_ignored else unit.replicas
    if unit.bounds is not None and replicas != 0:
        low, high = unit.bounds
        replicas = min(max(replicas, low), high)
    return replicas


def _pods(key: str, replicas: int, size: int) -> set[str]:
    """Pod names as LWS gives them: group leader ``name-G``, worker ``name-G-W``."""
    name = key.split("/", 1)[1]
    return {f"{key.split('/', 1)[0]}/{name}-{g}" + (f"-{w}" if w else "") for g in range(replicas) for w in range(size)}


def pods(before: engine.Run | None, after: engine.Run, replicas: dict[str, int] | None = None) -> dict[str, Any]:
    """The vLLM pods ``pulumi up`` from ``before`` (None: nothing deployed) to ``after`` recreates,
    adds and removes, and each unit's replicas afterwards. ``replicas`` are the units' live
    replicas before (from the previous call's ``replicas``; by default those ``before`` deploys)."""
    old_units = units(before) if before is not None else {}
    if replicas is None:
        replicas = {key: _live_replicas(unit, None) for key, unit in old_units.items()}
    new_units = units(after)
    now = {key: _live_replicas(unit, replicas.get(key) if key in old_units else None) for key, unit in new_units.items()}
    restarted, added, removed = set(), set(), set()
    for key in old_units.keys() | new_units.keys():
        old = _pods(key, replicas.get(key, 0), old_units[key].size) if key in old_units else set()
        new = _pods(key, now[key], new_units[key].size) if key in new_units else set()
        added |= new - old
        removed |= old - new
        if key in old_units and key in new_units and old_units[key].revision != new_units[key].revision:
            restarted |= old & new
    return {"restarted": sorted(restarted), "added": sorted(added), "removed": sorted(removed), "replicas": now}
