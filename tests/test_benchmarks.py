"""The benchmarks' code paths at tiny sizes, and the blast-radius property they report: day-2
changes that are not about a pool's own serving change no vLLM pod template."""

from __future__ import annotations

import json

import pytest
import yaml

from benchmarks import __main__ as bench
from benchmarks import blast_radius, fleet, preview

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


def test_fleet_and_its_bare_replay_register_the_same_resources():
    one = len(planned("prod").run.resources)
    run = fleet.run_fleet(prod_service(), 3)
    assert len(run.resources) == 3 * one
    namespaces = {r.inputs["metadata"]["namespace"] for r in run.custom() if "namespace" in (r.inputs.get("metadata") or {})}
    assert namespaces == {"llm-serving-000", "llm-serving-001", "llm-serving-002"}
    bare = fleet.run_bare(run.resources)
    assert sorted(fleet.replay.identity(bare.resources), key=repr) == sorted(fleet.replay.identity(run.resources), key=repr)
    assert not any(r.type.startswith("moe-ep:") and r.custom for r in bare.resources)


def test_fleet_size_in_a_fresh_interpreter():
    row = fleet.measure_in_child(ROOT / "stacks/Pulumi.prod.yaml", 2, 1)
    assert row["services"] == 2 and row["resources"] == 2 * len(planned("prod").run.resources)
    assert row["moe_ep_seconds"] > 0 and row["bare_seconds"] > 0 and row["peak_rss_mb"] > 0
    assert row["ratio"] == pytest.approx(row["moe_ep_seconds"] / row["bare_seconds"], rel=1e-2)


def test_preview_timing_and_the_report(tmp_path, capsys):
    row = preview.measure(ROOT, "dev", runs=2, command_runs=1)
    assert row["resources"] == len(planned("dev").run.resources)
    assert row["median_seconds"] > 0 and row["command_median_seconds"] > 0
    out = tmp_path / "bench.json"
    assert bench.main(["--only", "blast-radius", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["blast-radius"]["target_met"] is True
    assert "vLLM pod templates" in capsys.readouterr().out
