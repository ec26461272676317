"""Reading the local control plane and driving e2e/deploy.py, for the end-to-end tests."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if "e2e_plane" not in sys.modules:  # benchmarks.blast_radius_live loads it under the same name
    _spec = importlib.util.spec_from_file_location("e2e_plane", ROOT / "e2e" / "plane.py")
    sys.modules["e2e_plane"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["e2e_plane"])
control_plane = sys.modules["e2e_plane"]
"""e2e/plane.py, the script behind make cluster-up (not a package: loaded from its file)."""
STATE = control_plane.STATE
"""The plane's folder: .e2e, or the one MOE_EP_PLANE_DIR names (its ports: MOE_EP_PLANE_PORT_OFFSET)."""
KUBECTL = control_plane.BIN / "kubectl"
KUBECONFIG = control_plane.KUBECONFIG

PROGRAMS = ("dev", "staging", "prod", "shared-namespace")
"""Every stack of stacks/ and the program in examples/, deployed side by side."""

LWS_NAME = "leaderworkerset.sigs.k8s.io/name"
GROUP_INDEX = "leaderworkerset.sigs.k8s.io/group-index"
WORKER_INDEX = "leaderworkerset.sigs.k8s.io/worker-index"
EXCLUSIVE_TOPOLOGY = "leaderworkerset.sigs.k8s.io/exclusive-topology"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
VARIABLE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def kubectl(*args: str, check: bool = True, input_text: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(KUBECTL), "--kubeconfig", str(KUBECONFIG), *args],
                          input=input_text, capture_output=True, text=True, check=check)


def get(*args: str) -> list[dict]:
    """``kubectl get ... -o json`` items (one object comes back as a list of one)."""
    document = json.loads(kubectl("get", *args, "-o", "json").stdout)
    return document.get("items", [document]) if document.get("kind", "").endswith("List") else [document]


def deploy(action: str, name: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(ROOT / "e2e" / "deploy.py"), action, name],
                            capture_output=True, text=True, cwd=ROOT)
    if check and result.returncode != 0:
        raise AssertionError(f"deploy.py {action} {name} exited {result.returncode}:\n"
                             f"{result.stdout[-6000:]}\n{result.stderr[-4000:]}")
    return result


def policy_preview(stack_file: str, config: str | None = None) -> dict:
    """``pulumi preview --policy-pack policies [--policy-pack-config CONFIG]`` of a stack file
    through e2e/deploy.py: its JSON (violations, succeeded, the CLI's output) and ``returncode``.
    A stack with no state yet gets its first preview and is removed afterwards."""
    extra = ["--policy-pack-config", config] if config else []
    result = subprocess.run([sys.executable, str(ROOT / "e2e" / "deploy.py"), "preview", stack_file, "--policy-pack",
                             *extra, "--json"], capture_output=True, text=True, cwd=ROOT)
    try:
        found = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"deploy.py preview {stack_file} --policy-pack exited {result.returncode} without its "
                             f"JSON:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}") from None
    return {**found, "returncode": result.returncode}


def eventually(condition, timeout: float = 60, interval: float = 1.0, what: str = ""):
    """Poll until ``condition()`` returns a truthy value; return it, or fail saying what was awaited
    and the last value seen."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"not within {timeout:.0f} s: {what} (last: {last!r})")


def tolerated(taint: dict, tolerations: list[dict]) -> bool:
    """Whether a pod with ``tolerations`` may run on a node with ``taint`` (the scheduler's rule)."""
    if taint.get("effect") not in ("NoSchedule", "NoExecute"):
        return True
    for toleration in tolerations:
        if toleration.get("effect") and toleration["effect"] != taint["effect"]:
            continue
        if toleration.get("operator") == "Exists" and (not toleration.get("key") or toleration["key"] == taint["key"]):
            return True
        if toleration.get("key") == taint["key"] and toleration.get("value", "") == taint.get("value", ""):
            return True
    return False


_SUFFIXES = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(value: str | int) -> int:
    """A whole Kubernetes quantity as the API server writes it back ("1k" for 1000 devices)."""
    text = str(value)
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix):
            return int(text[: -len(suffix)]) * _SUFFIXES[suffix]
    return int(text)


def variables(container: dict) -> set[str]:
    """Every ``$(VAR)`` in a container's command and args."""
    return {name for part in container.get("command", []) + container.get("args", []) for name in VARIABLE.findall(part)}
