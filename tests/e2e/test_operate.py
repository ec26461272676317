"""After `pulumi up` on the local control plane: `moe-ep status` sees every unit and pod where the
API says they are, goes to 1 while a unit cannot come back and to 0 when it is back, and exits 2
when no API server answers; `moe-ep smoke` exits 1 naming why nothing answers behind KWOK's pods,
and 0 through the API server's port-forward to a server that answers as vLLM does, with the key
from the stack's Secret."""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import sys

import pytest
import yaml

from components.api_key import SECRET_KEY

from .live import GPU_PRODUCT_LABEL, GROUP_INDEX, KUBECONFIG, LWS_NAME, ROOT, WORKER_INDEX, eventually, get, kubectl

pytestmark = pytest.mark.e2e

PROGRAMS = ("dev", "staging", "prod")
LIVE = ("--kubeconfig", str(KUBECONFIG), "--context", "moe-ep-local")
SERVICES = {"dev": ("qwen3-30b", "llm-dev"), "staging": ("deepseek-r1", "llm-staging"), "prod": ("deepseek-r1", "llm-serving")}


def moe_ep(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "moe_ep.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def status(stack: str, *extra: str) -> subprocess.CompletedProcess:
    return moe_ep("status", "--stack", stack, *LIVE, *extra)


@pytest.mark.parametrize("stack", PROGRAMS)
def test_status_lists_every_unit_and_pod_on_the_node_the_api_gives(deployed, stack):
    service, namespace = SERVICES[stack]
    result = eventually(lambda: (r := status(stack, "--json")).returncode == 0 and r, timeout=90,
                        what=f"moe-ep status --stack {stack} exits 0")
    view = json.loads(result.stdout)
    live = get("pods", "-n", namespace, "-l", f"app.kubernetes.io/name={service}")
    listed = {p["name"]: p for pool in view["pools"].values() for u in pool["units"] for p in u["pods"]}
    assert sorted(listed) == sorted(p["metadata"]["name"] for p in live)
    nodes = {n["metadata"]["name"]: n for n in get("nodes")}
    for p in live:
        shown = listed[p["metadata"]["name"]]
        assert shown["node"] == p["spec"]["nodeName"]
        assert shown["gpu"] == nodes[p["spec"]["nodeName"]]["metadata"]["labels"].get(GPU_PRODUCT_LABEL)
        assert shown["ready"] and shown["phase"] == "Running"
    for lws in get("leaderworkersets.leaderworkerset.x-k8s.io", "-n", namespace):
        pool = next(p for p in view["pools"].values() if p["name"] == lws["metadata"]["name"])
        assert [u["index"] for u in pool["units"]] == list(range(lws["spec"]["replicas"]))
        assert all(len(u["pods"]) == lws["spec"]["leaderWorkerTemplate"]["size"] for u in pool["units"])
    assert "router" in view["pools"] and view["pools"]["router"]["endpoints"]
    for role in ("router", "scheduler"):  # on the fleet's CPU nodes, not beside the model servers
        assert all(p["gpu"] is None for u in view["pools"].get(role, {"units": []})["units"] for p in u["pods"]), role


def test_status_is_1_while_a_deleted_rank_cannot_come_back_and_0_once_its_group_is_back(deployed):
    stack = "staging"  # its decode units span two nodes
    _, namespace = SERVICES[stack]
    lws = next(s for s in get("leaderworkersets.leaderworkerset.x-k8s.io", "-n", namespace)
               if s["spec"]["leaderWorkerTemplate"]["size"] > 1)
    pods = get("pods", "-n", namespace, "-l", f"{LWS_NAME}={lws['metadata']['name']},{GROUP_INDEX}=0")
    worker = next(p for p in pods if p["metadata"]["labels"][WORKER_INDEX] == "1")
    product = next(n for n in get("nodes") if n["metadata"]["name"] == worker["spec"]["nodeName"])["metadata"]["labels"][GPU_PRODUCT_LABEL]
    same_gpu = [n["metadata"]["name"] for n in get("nodes", "-l", f"{GPU_PRODUCT_LABEL}={product}")]
    try:
        for name in same_gpu:  # nowhere to go: the group stays down until the nodes come back
            kubectl("cordon", name)
        kubectl("delete", "pod", "-n", namespace, worker["metadata"]["name"], "--wait=false")
        down = eventually(lambda: (r := status(stack)).returncode == 1 and "not scheduled" in r.stdout and r, timeout=60,
                          what=f"moe-ep status --stack {stack} exits 1 naming the unschedulable rank")
        assert "NOT READY" in down.stdout and "decode unit 0: pod deepseek-r1-decode-0" in down.stdout, down.stdout
        assert "Unschedulable: 0/" in down.stdout and "unschedulable" in down.stdout, down.stdout
    finally:
        for name in same_gpu:
            kubectl("uncordon", name)
    back = eventually(lambda: (r := status(stack, "--json")).returncode == 0 and r, timeout=90,
                      what=f"moe-ep status --stack {stack} exits 0 once the group is back")
    view = json.loads(back.stdout)
    group = next(p for p in view["pools"].values() if p["name"] == lws["metadata"]["name"])["units"][0]
    assert worker["metadata"]["name"] in {p["name"] for p in group["pods"]} and group["ready"]


def test_status_exits_2_when_no_api_server_answers(deployed, tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as probe:
        closed = probe.getsockname()[1]
    config = yaml.safe_load(KUBECONFIG.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{closed}"
    down = tmp_path / "kubeconfig"
    down.write_text(yaml.safe_dump(config))
    result = moe_ep("status", "--stack", "dev", "--kubeconfig", str(down), "--context", "moe-ep-local")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"cannot reach the cluster at https://127.0.0.1:{closed} (context moe-ep-local in {down})" in result.stderr
    assert "Traceback" not in result.stderr
    missing = moe_ep("status", "--stack", "dev", "--kubeconfig", str(KUBECONFIG), "--context", "no-such-context")
    assert missing.returncode == 2 and "'no-such-context' is not one of its contexts: moe-ep-local" in missing.stderr


def lead_router_port_to(port: int | None) -> None:
    """KWOK plays the router pods' kubelet: a PortForward per pod leads its port 8081 to 127.0.0.1:port
    (None: no PortForward, nothing answers)."""
    service, namespace = SERVICES["dev"]
    for pod in get("pods", "-n", namespace, "-l", f"app.kubernetes.io/name={service},app.kubernetes.io/component=router"):
        name = pod["metadata"]["name"]
        if port is None:
            kubectl("delete", "portforwards.kwok.x-k8s.io", "-n", namespace, name, "--ignore-not-found")
            continue
        forward = {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "PortForward", "metadata": {"name": name, "namespace": namespace},
                   "spec": {"forwards": [{"ports": [8081], "target": {"port": port, "address": "127.0.0.1"}}]}}
        kubectl("apply", "-f", "-", input_text=json.dumps(forward))


def test_smoke_through_the_api_server_exits_1_naming_why_nothing_answers(deployed):
    lead_router_port_to(None)
    result = moe_ep("smoke", "--stack", "dev", *LIVE)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED: cannot talk to pod llm-dev/qwen3-30b-router-" in result.stdout
    assert "(port-forward: error forwarding port 8081 to pod qwen3-30b-router-" in result.stdout
    assert "is simulated by KWOK: no model server runs behind its pods" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.conformance
def test_smoke_through_the_api_servers_port_forward_with_the_secrets_key_gets_an_answer(deployed):
    """The whole path a client takes: the router Service's ready endpoint, the API server's
    port-forward, the node's kubelet (KWOK's server), the pod's port (here a server that answers
    as vLLM does), with the key read from the stack's Secret; a rotated key on the server is 401."""
    from ..openai_server import Server

    service, namespace = SERVICES["dev"]
    key = base64.b64decode(get("secret", "-n", namespace, f"{service}-api-key")[0]["data"][SECRET_KEY]).decode()
    try:
        with Server("Qwen/Qwen3-30B-A3B", key) as url:
            lead_router_port_to(int(url.rsplit(":", 1)[1]))
            result = eventually(lambda: (r := moe_ep("smoke", "--stack", "dev", *LIVE)).returncode == 0 and r, timeout=30,
                                what="moe-ep smoke through the port-forward exits 0")
        assert "(port-forward)" in result.stdout and "answer: Hello from a vLLM-shaped server." in result.stdout
        assert re.search(r"time to first token \d+\.\d+ s; 11 tokens in \d+\.\d+ s = \d+\.\d tokens/s", result.stdout), result.stdout
        with Server("Qwen/Qwen3-30B-A3B", key + "-rotated") as url:
            lead_router_port_to(int(url.rsplit(":", 1)[1]))
            stale = eventually(lambda: (r := moe_ep("smoke", "--stack", "dev", *LIVE)).returncode == 1 and "HTTP 401" in r.stdout and r,
                               timeout=30, what="moe-ep smoke exits 1 with HTTP 401 against a server with another key")
        assert "rejected the stack's API key" in stale.stdout
    finally:
        lead_router_port_to(None)
