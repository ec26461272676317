"""The local control plane itself: a node anyone posts joins the fleet, and a plane that cannot
start says which component and why."""

from __future__ import annotations

import json
import socket

import pytest

from .live import control_plane, eventually, get, kubectl


@pytest.mark.e2e
def test_a_node_posted_with_the_kwok_annotation_becomes_ready_and_runs_pods(plane):
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "posted-gpu-01", "annotations": {"kwok.x-k8s.io/node": "fake"},
                         "labels": {"nvidia.com/gpu.product": "NVIDIA-B200", "e2e.moe-ep.io/posted": "true"}},
            "status": {"capacity": {"cpu": "8", "memory": "64Gi", "pods": "10", "nvidia.com/gpu": "8"},
                       "allocatable": {"cpu": "8", "memory": "64Gi", "pods": "10", "nvidia.com/gpu": "8"}}}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "posted-probe", "namespace": "default"},
           "spec": {"nodeSelector": {"e2e.moe-ep.io/posted": "true"},
                    "containers": [{"name": "c", "image": "probe",
                                    "resources": {"limits": {"nvidia.com/gpu": "8"}}}]}}
    try:
        for manifest in (node, pod):
            result = kubectl("create", "-f", "-", check=False, input_text=json.dumps(manifest))
            assert result.returncode == 0, result.stderr
        eventually(lambda: get("pod", "-n", "default", "posted-probe")[0]["status"].get("phase") == "Running",
                   timeout=60, what="the pod bound to the posted node Running")
        assert get("pod", "-n", "default", "posted-probe")[0]["spec"]["nodeName"] == "posted-gpu-01"
        conditions = {c["type"]: c["status"] for c in get("node", "posted-gpu-01")[0]["status"]["conditions"]}
        assert conditions["Ready"] == "True"
    finally:
        kubectl("delete", "pod", "-n", "default", "posted-probe", "--grace-period=0", "--force", check=False)
        kubectl("delete", "node", "posted-gpu-01", check=False)


def test_a_port_in_use_is_named_with_its_component(monkeypatch):
    monkeypatch.setattr(control_plane, "healthy", lambda: False)
    monkeypatch.setattr(control_plane, "running", lambda: [])
    monkeypatch.setattr(control_plane.subprocess, "run", lambda *args, **kwargs: None)  # the build
    port = control_plane.PORTS["lws-webhook"]
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            holder.bind(("127.0.0.1", port))
            holder.listen()
        except OSError:
            pass  # a running plane holds it already: the message must name it all the same
        with pytest.raises(control_plane.PlaneError, match=rf"ports taken on 127\.0\.0\.1: .*lws-webhook \({port}\)"):
            control_plane.up()


def test_a_component_that_exits_is_named_with_the_end_of_its_log(tmp_path, monkeypatch):
    monkeypatch.setattr(control_plane, "STATE", tmp_path)
    monkeypatch.setattr(control_plane, "LOGS", tmp_path / "logs")
    monkeypatch.setattr(control_plane, "PIDS", tmp_path / "pids")
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / "etcd"
    fake.write_text("#!/bin/sh\necho 'listen tcp 127.0.0.1:32379: bind: address already in use' >&2\nexit 1\n")
    fake.chmod(0o755)
    control_plane.start("etcd", [str(fake)])
    with pytest.raises(control_plane.PlaneError) as error:
        control_plane.wait_until("etcd", lambda: False, 10, "GET /health")
    message = str(error.value)
    assert message.startswith("etcd exited; its log is ") and str(tmp_path / "logs" / "etcd.log") in message
    assert "address already in use" in message
