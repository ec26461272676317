"""The live benchmark's inputs (``benchmarks.live``), offline: each generated wide-EP stack plans
with no mandatory violation and fills its generated fleet exactly; and the plane's fleet
readiness check, which the benchmark's 66-node fleet broke."""

from __future__ import annotations

import json
import subprocess

import pytest

from benchmarks import live
from moe_ep import plan as planning

from .conftest import ROOT
from .e2e.live import control_plane

SIZES = (8, 32, 64)


@pytest.mark.parametrize("nodes", SIZES)
def test_each_generated_stack_plans_clean_and_fills_its_fleet_exactly(tmp_path, nodes, crd_dir):
    paths = live.write_inputs(tmp_path, nodes)
    plan = planning.build(paths["stack"], ROOT, crd_dir=crd_dir)
    assert plan.mandatory_violations == []
    assert plan.schema_problems == []

    fleet = control_plane.fleet_nodes(paths["fleet"])  # as the plane posts them
    gpu_nodes = sorted(n["metadata"]["name"] for n in fleet if "nvidia.com/gpu" in n["status"]["capacity"])
    assert len(gpu_nodes) == nodes
    assert all(n["status"]["capacity"]["nvidia.com/gpu"] == str(plan.spec.gpu.per_node) for n in fleet
               if n["metadata"]["name"] in gpu_nodes)
    # Every GPU node is patched into the pool, and the units at their replicas use every GPU of them.
    assert sorted(plan.spec.node_pool.existing.nodes) == gpu_nodes
    pods = {role: pool.replicas * pool.nodes_per_replica for role, pool in plan.spec.pools().items()}
    assert sum(pods.values()) == nodes
    assert pods["decode"] == pods["prefill"]
    assert plan.spec.decode.data_parallel_size == 32 and plan.spec.decode.nodes_per_replica == 4

    # The pods the benchmark waits for: every vLLM rank, the router's and the scheduler's replicas.
    deployments = [o for o in plan.objects if o["kind"] == "Deployment"]
    assert live.expected_pods(plan.objects) == nodes + sum(d["spec"]["replicas"] for d in deployments)

    # The day-2 variant differs in one line: the router autoscaler's ceiling.
    day2 = planning.build(paths["day2"], ROOT)
    changed = [(a["kind"], a["metadata"]["name"]) for a, b in zip(plan.objects, day2.objects) if a != b]
    assert changed == [("HorizontalPodAutoscaler", "kimi-k2-router")]


def test_a_fleet_is_whole_steps_of_one_decode_and_two_prefill_units():
    for nodes in (0, 4, 12):
        with pytest.raises(ValueError, match="a multiple of 8"):
            live.fleet(nodes)


def _node(name: str, ready: str) -> dict:
    return {"metadata": {"name": name}, "status": {"conditions": [{"type": "Ready", "status": ready}]}}


def test_the_plane_waits_for_a_large_fleet_with_one_list_of_nodes(monkeypatch):
    # `kubectl wait node/...` read 66 nodes one by one at 5 requests per second, past its 5 s
    # timeout for all of them: a 64-GPU-node fleet never came up although every node was Ready.
    names = [f"gpu-h20-{i:02d}" for i in range(1, 65)] + ["cpu-01", "cpu-02"]
    calls = []
    listed = {"items": [_node(n, "True") for n in names]}

    def kubectl(*args, **kwargs):
        calls.append(args)
        return subprocess.CompletedProcess(args, 0, json.dumps(listed), "")

    monkeypatch.setattr(control_plane, "kubectl", kubectl)
    assert control_plane._nodes_ready(names)
    assert calls == [("get", "nodes", "-o", "json")]
    listed["items"][10] = _node(names[10], "Unknown")
    assert not control_plane._nodes_ready(names)
    listed["items"].pop(10)
    assert not control_plane._nodes_ready(names)
