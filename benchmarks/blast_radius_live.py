"""Blast radius, live: each day-2 change of ``blast_radius.CHANGES`` applied with ``pulumi up``
(``e2e/deploy.py``) on the local control plane, and the vLLM pods (label
``leaderworkerset.sigs.k8s.io/name``) whose UID changed, that appeared or that went, set beside
what the replay (``blast_radius.pods``) predicts for the same step.

The base stack is deployed first; each change is a modified copy of the stack file under the
same stack name (an update). ``chain=False`` restores the base after each change (the restore is
a step too, predicted and counted); ``chain=True`` applies the changes one on top of the other
(half the ``pulumi up`` runs). After each ``up`` the plane settles before pods are counted: every
HPA aimed at a LeaderWorkerSet has its replicas within its bounds (the HPA controller clamps
them within a sync period, 15 s; on the plane no metrics API answers, so within its bounds an HPA
never moves a unit), and every LeaderWorkerSet has converged (its controller saw the new
generation, updatedReplicas == readyReplicas == replicas, one revision, every pod Running).
The stack is destroyed at the end. A node the stack patches that the plane lacks (the change
that adds one) is posted as a copy of the pool's first fleet node, and deleted at the end.

``make bench`` runs it on a plane of its own (``plane_at``: .e2e-blast, ports + 2000, started
if it is down and then stopped), beside the tests' plane.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from components.spec import SERVICE_KEY
from moe_ep import engine
from moe_ep import plan as planning

from . import blast_radius

ROOT = Path(__file__).resolve().parents[1]
LWS_NAME = "leaderworkerset.sigs.k8s.io/name"
REVISION = "leaderworkerset.sigs.k8s.io/template-revision-hash"
CONVERGE_SECONDS = 240.0
PLANE_DIR = ROOT / ".e2e-blast"
PORT_OFFSET = 2000


def control_plane():
    """e2e/plane.py (a script, not a package), loaded once as module ``e2e_plane``."""
    if "e2e_plane" not in sys.modules:
        spec = importlib.util.spec_from_file_location("e2e_plane", ROOT / "e2e" / "plane.py")
        module = sys.modules["e2e_plane"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules["e2e_plane"]


@contextmanager
def plane_at(directory: Path = PLANE_DIR, port_offset: int = PORT_OFFSET) -> Iterator[Any]:
    """The plane in ``directory`` with its ports moved by ``port_offset`` (this process and the
    deploy.py it runs point at it), started if it is down and then stopped."""
    names = ("MOE_EP_PLANE_DIR", "MOE_EP_PLANE_PORT_OFFSET")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({"MOE_EP_PLANE_DIR": str(directory.resolve()), "MOE_EP_PLANE_PORT_OFFSET": str(port_offset)})
    plane = control_plane()
    started = False
    try:
        if plane.STATE != directory.resolve():
            raise RuntimeError(f"e2e/plane.py is already loaded for the plane at {plane.STATE}, not {directory}")
        if not plane.healthy():
            started = True
            result = subprocess.run([sys.executable, str(ROOT / "e2e" / "plane.py"), "up"], capture_output=True, text=True, cwd=ROOT)
            if result.returncode != 0:
                raise RuntimeError(f"the plane at {directory} did not start:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
        yield plane
    finally:
        if started:
            subprocess.run([sys.executable, str(ROOT / "e2e" / "plane.py"), "down"], capture_output=True, cwd=ROOT)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _get(*args: str) -> list[dict]:
    result = control_plane().kubectl("get", *args, "-o", "json")
    return json.loads(result.stdout).get("items", [])


@dataclass(frozen=True)
class Step:
    name: str
    kind: str
    """"base", "change" or "restore"."""
    service: dict[str, Any]
    serving: bool = False


def steps(service: dict[str, Any], changes: tuple[blast_radius.Change, ...], chain: bool) -> list[Step]:
    """The base, then each change: on the base and followed by a restore, or on the step before."""
    planned = [Step("deploy the base stack", "base", service)]
    current = service
    for change in changes:
        edited = copy.deepcopy(current if chain else service)
        change.edit(edited)
        planned.append(Step(change.name, "change", edited, change.serving))
        if chain:
            current = edited
        else:
            planned.append(Step(f"restore the base after: {change.name}", "restore", service))
    return planned


def _stack_exists(project: str, stack: str) -> bool:
    return (control_plane().STATE / "state" / ".pulumi" / "stacks" / project / f"{stack}.json").exists()


def _deploy(action: str, target: str | Path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "e2e" / "deploy.py"), action, str(target)],
                            capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"deploy.py {action} {target} exited {result.returncode}:\n"
                           f"{result.stdout[-4000:]}\n{result.stderr[-3000:]}")


def _post_missing_nodes(service: dict[str, Any]) -> list[str]:
    """Nodes the stack patches that the plane lacks, posted as copies of the pool's first fleet node."""
    names = ((service.get("node_pool") or {}).get("existing") or {}).get("nodes") or []
    if not names:
        return []
    plane = control_plane()
    present = {n["metadata"]["name"] for n in _get("nodes")}
    fleet = {n["metadata"]["name"]: n for n in plane.fleet_nodes()}
    posted = []
    for name in names:
        if name in present:
            continue
        if names[0] not in fleet:
            raise RuntimeError(f"node {name} is missing and {names[0]} is not a fleet node to copy")
        node = copy.deepcopy(fleet[names[0]])
        node["metadata"]["name"] = name
        node["metadata"]["labels"]["kubernetes.io/hostname"] = name
        plane.kubectl("apply", "--server-side", "-f", "-", input_text=json.dumps(node))
        posted.append(name)
    return posted


def _pods(namespace: str) -> dict[str, str]:
    """The namespace's vLLM pods: ``namespace/name`` -> UID."""
    return {f"{namespace}/{p['metadata']['name']}": p["metadata"]["uid"] for p in _get("pods", "-n", namespace, "-l", LWS_NAME)}


def unsettled(namespace: str) -> str:
    """Why the namespace's LeaderWorkerSets have not converged ('' when they have)."""
    sets = _get("leaderworkersets", "-n", namespace)
    pods = _get("pods", "-n", namespace, "-l", LWS_NAME)
    names = {s["metadata"]["name"] for s in sets}
    replicas = {s["metadata"]["name"]: s["spec"].get("replicas", 1) for s in sets}
    for hpa in _get("hpa", "-n", namespace):
        target, spec = hpa["spec"]["scaleTargetRef"], hpa["spec"]
        current = replicas.get(target["name"]) if target.get("kind") == "LeaderWorkerSet" else None
        if current and not spec.get("minReplicas", 1) <= current <= spec["maxReplicas"]:
            return f"HPA {hpa['metadata']['name']}: {target['name']} has {current} replicas, outside " \
                   f"{spec.get('minReplicas', 1)}..{spec['maxReplicas']}"
    for lws in sets:
        name, status = lws["metadata"]["name"], lws.get("status") or {}
        want = lws["spec"].get("replicas", 1)
        size = lws["spec"]["leaderWorkerTemplate"].get("size", 1)
        seen = (status.get("observedGeneration"), status.get("replicas"), status.get("updatedReplicas"), status.get("readyReplicas"))
        if seen != (lws["metadata"]["generation"], want, want, want):
            return f"{name}: generation {lws['metadata']['generation']}, replicas {want}; status (observed generation, " \
                   f"replicas, updated, ready) {seen}"
        mine = [p for p in pods if p["metadata"]["labels"][LWS_NAME] == name]
        if len(mine) != want * size or len({p["metadata"]["labels"].get(REVISION) for p in mine}) != 1:
            return f"{name}: {len(mine)} pods of {want * size}, revisions {sorted({p['metadata']['labels'].get(REVISION) for p in mine})}"
        waiting = [p["metadata"]["name"] for p in mine if p["metadata"].get("deletionTimestamp") or p["status"].get("phase") != "Running"]
        if waiting:
            return f"{name}: not Running yet: {', '.join(waiting)}"
    strays = sorted(p["metadata"]["name"] for p in pods if p["metadata"]["labels"][LWS_NAME] not in names)
    return f"pods of no LeaderWorkerSet: {', '.join(strays)}" if strays else ""


def _settle(namespace: str) -> None:
    deadline = time.monotonic() + CONVERGE_SECONDS
    time.sleep(1)  # the LWS controller's watch; the status already tells a new generation apart
    while why := unsettled(namespace):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the LeaderWorkerSets of {namespace} did not converge in {CONVERGE_SECONDS:.0f} s: {why}")
        time.sleep(1)


def _row(step: Step, predicted: dict[str, Any], before: dict[str, str], after: dict[str, str], seconds: float) -> dict[str, Any]:
    live = {"restarted": sorted(n for n in before.keys() & after.keys() if before[n] != after[n]),
            "added": sorted(after.keys() - before.keys()), "removed": sorted(before.keys() - after.keys())}
    agree = all(live[k] == predicted[k] for k in live)
    row = {"change": step.name, "kind": step.kind, "serving": step.serving,
           "replayed_pods_restarted": len(predicted["restarted"]), "live_pods_restarted": len(live["restarted"]),
           "replayed_added": len(predicted["added"]), "live_added": len(live["added"]),
           "replayed_removed": len(predicted["removed"]), "live_removed": len(live["removed"]),
           "agree": agree, "seconds": round(seconds, 1)}
    if not agree:
        row["replayed"] = {k: predicted[k] for k in live}
        row["live"] = live
    return row


def measure(stack_file: Path, changes: tuple[blast_radius.Change, ...] = blast_radius.CHANGES, chain: bool = False,
            progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)) -> list[dict[str, Any]]:
    """One row per step (see ``steps``): replayed and live pods restarted, added and removed, and
    whether they agree (the same pods, not only as many). Needs the plane up; destroys the stack."""
    plane = control_plane()
    if not plane.healthy():
        raise RuntimeError(f"the local control plane at {plane.STATE} is not up (python e2e/plane.py up)")
    document = yaml.safe_load(stack_file.read_text(encoding="utf-8"))
    service = document["config"][SERVICE_KEY]
    stack, project = planning.stack_name(stack_file), yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["name"]
    if _stack_exists(project, stack):
        raise RuntimeError(f"stack {stack} is already deployed on the plane at {plane.STATE}: "
                           "the blast radius would change and then destroy it")
    namespace = service["namespace"]
    rows, posted = [], []
    previous, replicas = None, None
    with tempfile.TemporaryDirectory(prefix="blast-radius-") as folder:
        target = Path(folder) / stack_file.name
        try:
            for step in steps(service, changes, chain):
                started = time.monotonic()
                posted += _post_missing_nodes(step.service)
                run = engine.run_program(ROOT / planning.PROGRAM, {SERVICE_KEY: step.service}, stack)
                predicted = blast_radius.pods(previous, run, replicas)
                before = _pods(namespace) if previous else {}
                target.write_text(yaml.safe_dump({**document, "config": {**document["config"], SERVICE_KEY: step.service}},
                                                 sort_keys=False), encoding="utf-8")
                _deploy("up", target)
                _settle(namespace)
                rows.append(_row(step, predicted, before, _pods(namespace), time.monotonic() - started))
                previous, replicas = run, predicted["replicas"]
                r = rows[-1]
                progress(f"  {'agree' if r['agree'] else 'DISAGREE'}: {step.name}: restarted {r['live_pods_restarted']} "
                         f"(replay {r['replayed_pods_restarted']}), added {r['live_added']} ({r['replayed_added']}), "
                         f"removed {r['live_removed']} ({r['replayed_removed']}); {r['seconds']} s")
        finally:
            if previous is not None or _stack_exists(project, stack):
                _deploy("destroy", target)
            for name in posted:
                plane.kubectl("delete", "node", name, "--ignore-not-found", check=False)
    return rows
