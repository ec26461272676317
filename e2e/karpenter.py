"""Karpenter's KWOK provider on the local control plane: NodePools launch fake nodes that KWOK runs.

    python e2e/karpenter.py up      # builds it if missing; CRDs, the KWOKNodeClass; starts it, waits until ready
    python e2e/karpenter.py down    # stops it, by pid (CRDs, node class and launched nodes stay)

The provider is sigs.k8s.io/karpenter's `kwok` main package at the version e2e/tools/karpenter/go.mod
pins (v1.14.1: v1.14.3 and v1.15.0 need a newer Go than 1.26.8). It is Karpenter's core (provisioning,
disruption, NodeClaim lifecycle) with a cloud provider that "launches" an instance by creating a Node
annotated `kwok.x-k8s.io/node: fake` (which the plane's KWOK then marks Ready and runs pods on) and
terminates it by deleting that Node.

What it needs here: the NodeClaim CRD (and NodeOverlay's) from its module's pkg/apis/crds and the
KWOKNodeClass CRD from kwok/apis/crds; the NodePool CRD the plane already serves from ../shared/crds
is kept (the same API, a newer schema), its own is installed only on a cluster without one. No
webhooks (Karpenter v1 has none), no leader election, its own client certificate (system:masters),
metrics and health ports beside the plane's, and an instance-types file: the built-in KWOK types
have no GPUs, so INSTANCE_TYPES (below) lists the GPU instances our stacks ask for by name, with
`nvidia.com/gpu` and EFA capacity. Labels the pods select (`nvidia.com/gpu.product`, `moe-ep.io/pool`)
come from the NodePool's template labels, as on EKS.

Everything lives under the plane's folder: logs/karpenter.log, pids/karpenter.pid, karpenter/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

from plane import (  # e2e/plane.py, beside this file
    BIN, KUBECONFIG, LOGS, PKI, STATE, PlaneError, _http_ok, _leaf, _pid, _port_free, fail, kubectl, run_command, start,
    stop, write_kubeconfig,
)

ROOT = Path(__file__).resolve().parent.parent
COMPONENT = "karpenter"
MODULE = "sigs.k8s.io/karpenter"
"""At the version e2e/tools/karpenter/go.mod pins."""
NODE_CLASS = {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "moe-ep-kwok"}
"""The node class `up` creates; a stack's node_pool.karpenter.node_class points at it."""

_OFFSET = int(os.environ.get("MOE_EP_PLANE_PORT_OFFSET") or 0)
KARPENTER_PORTS = {"karpenter-metrics": 38090 + _OFFSET, "karpenter-health": 38091 + _OFFSET}
"""Karpenter binds these on every interface (":port"), beside the plane's PORTS."""
ZONES = ("kwok-zone-a", "kwok-zone-b")


def _instance_type(name: str, cpu: str, memory: str, gpus: int, efa: int, price: float) -> dict:
    """One entry of the provider's instance-types file (the format of its embedded instance_types.json)."""
    resources = {"cpu": cpu, "memory": memory, "ephemeral-storage": "30Ti", "pods": "110", "nvidia.com/gpu": str(gpus)}
    if efa:
        resources["vpc.amazonaws.com/efa"] = str(efa)
    return {
        "name": name, "architecture": "amd64", "operatingSystems": ["linux"], "resources": resources,
        "offerings": [{"Price": cost, "Available": True, "Requirements": [
            {"key": "karpenter.sh/capacity-type", "operator": "In", "values": [capacity]},
            {"key": "topology.kubernetes.io/zone", "operator": "In", "values": [zone]}]}
            for zone in ZONES for capacity, cost in (("on-demand", price), ("spot", round(price * 0.4, 3)))],
    }


INSTANCE_TYPES = [
    _instance_type("p5en.48xlarge", "192", "2048Gi", 8, 16, 63.3),  # 8 H200, 16 EFA: staging
    _instance_type("p5.48xlarge", "192", "2048Gi", 8, 32, 55.0),    # 8 H100
    _instance_type("g6e.12xlarge", "48", "384Gi", 4, 0, 10.5),      # 4 L40S
]


def module_dir() -> Path:
    found = subprocess.run(["go", "mod", "download", "-json", MODULE], capture_output=True, text=True,
                           cwd=ROOT / "e2e" / "tools" / "karpenter", env={**os.environ, "GOTOOLCHAIN": "local"})
    if found.returncode != 0:
        raise PlaneError(f"cannot find its module {MODULE}: {found.stdout or found.stderr}")
    return Path(json.loads(found.stdout)["Dir"])


def crds(module: Path) -> list[Path]:
    """The CRDs to install: NodeClaim, NodeOverlay and KWOKNodeClass, and NodePool if not served yet."""
    files = [module / "pkg" / "apis" / "crds" / "karpenter.sh_nodeclaims.yaml",
             module / "pkg" / "apis" / "crds" / "karpenter.sh_nodeoverlays.yaml",
             module / "kwok" / "apis" / "crds" / "karpenter.kwok.sh_kwoknodeclasses.yaml"]
    if kubectl("get", "crd", "nodepools.karpenter.sh", check=False).returncode != 0:
        files.append(module / "pkg" / "apis" / "crds" / "karpenter.sh_nodepools.yaml")
    return files


def unmanageable_nodes() -> list[str]:
    """Nodes that carry karpenter.sh/nodepool but no providerID: Karpenter's cluster state skips a
    node it "owns" until its providerID appears, and reports itself unsynced (so provisions
    nothing) while any such node exists."""
    listed = json.loads(kubectl("get", "nodes", "-l", "karpenter.sh/nodepool", "-o", "json").stdout)["items"]
    return sorted(n["metadata"]["name"] for n in listed if not n.get("spec", {}).get("providerID"))


def node_class() -> dict:
    return {"apiVersion": f"{NODE_CLASS['group']}/v1alpha1", "kind": NODE_CLASS["kind"],
            "metadata": {"name": NODE_CLASS["name"]}, "spec": {}}


def _argv(instance_types: Path) -> list[str]:
    # The file's path (under the plane's folder) is also what tells plane._pid the process is ours.
    return [str(BIN / "karpenter-kwok"), f"--instance-types-file-path={instance_types}"]


def _env() -> dict[str, str]:
    if not (PKI / "karpenter.crt").exists():
        _leaf("karpenter", "/CN=karpenter/O=system:masters", "clientAuth")
    return {
        "KUBECONFIG": str(write_kubeconfig("karpenter", STATE / "karpenter.kubeconfig")),
        "DISABLE_LEADER_ELECTION": "true",
        "METRICS_PORT": str(KARPENTER_PORTS["karpenter-metrics"]),
        "HEALTH_PROBE_PORT": str(KARPENTER_PORTS["karpenter-health"]),
        # Shorter batching windows than a cluster's (10 s max, 1 s idle): tests wait less.
        "BATCH_MAX_DURATION": "3s", "BATCH_IDLE_DURATION": "1s",
        "LOG_LEVEL": "debug" if os.environ.get("MOE_EP_KARPENTER_DEBUG") else "info",
    }


def running() -> bool:
    return _pid(COMPONENT) is not None


def _ready() -> bool:
    try:
        return _http_ok(f"http://127.0.0.1:{KARPENTER_PORTS['karpenter-health']}/readyz")
    except (OSError, urllib.error.URLError, ValueError):
        return False


def up() -> None:
    if not KUBECONFIG.exists() or kubectl("get", "--raw", "/readyz", check=False).returncode != 0:
        raise PlaneError("the local control plane is not up (make cluster-up)")
    if running() and _ready():
        print(f"karpenter already running (log {LOGS / (COMPONENT + '.log')})")
        return
    if running():
        down(quiet=True)
    started = time.monotonic()
    subprocess.run([str(ROOT / "e2e" / "tools" / "build"), "karpenter"], check=True, stdout=sys.stderr)
    busy = [f"{name} ({port})" for name, port in KARPENTER_PORTS.items() if not _port_free(port)]
    if busy:
        raise PlaneError(f"ports taken: {', '.join(busy)}")
    blocking = unmanageable_nodes()
    if blocking:
        raise PlaneError(f"nodes labelled karpenter.sh/nodepool without a providerID: {', '.join(blocking)}. "
                         "Karpenter takes them for its own, waits for their providerID and until then provisions "
                         "nothing (its cluster state never syncs); remove the label (`kubectl label node NAME "
                         "karpenter.sh/nodepool-`) or restart the plane (e2e/fleet.yaml no longer sets it)")
    files = crds(module_dir())
    paths = [arg for f in files for arg in ("-f", str(f))]
    result = kubectl("apply", "--server-side", *paths, check=False)
    if result.returncode != 0:
        raise PlaneError(f"CRDs: kubectl apply failed: {result.stderr.strip()}")
    result = kubectl("wait", "--for=condition=Established", "--timeout=60s", *paths, check=False)
    if result.returncode != 0:
        raise PlaneError(f"CRDs not Established: {result.stderr.strip()}")
    result = kubectl("apply", "--server-side", "-f", "-", input_text=json.dumps(node_class()), check=False)
    if result.returncode != 0:
        raise PlaneError(f"{NODE_CLASS['kind']} {NODE_CLASS['name']}: {result.stderr.strip()}")

    folder = STATE / "karpenter"
    folder.mkdir(parents=True, exist_ok=True)
    instance_types = folder / "instance-types.json"
    instance_types.write_text(json.dumps(INSTANCE_TYPES, indent=1))
    start(COMPONENT, _argv(instance_types), env=_env())
    deadline = time.monotonic() + 60
    while not _ready():
        if not running():
            raise fail(COMPONENT, "exited")
        if time.monotonic() > deadline:
            raise fail(COMPONENT, "did not become ready within 60 s (GET /readyz)")
        time.sleep(0.5)
    print(f"karpenter up in {time.monotonic() - started:.0f} s: node class "
          f"{NODE_CLASS['group']}/{NODE_CLASS['kind']}/{NODE_CLASS['name']}; instance types "
          f"{', '.join(t['name'] for t in INSTANCE_TYPES)}; log {LOGS / (COMPONENT + '.log')}")


def down(quiet: bool = False) -> None:
    stopped = stop(COMPONENT)
    if not quiet:
        print("karpenter down" if stopped else "karpenter was not running")


def main(argv: list[str]) -> int:
    return run_command("karpenter.py", {"up": up, "down": down}, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
