"""The policy pack: every rule through the pulumi-policy analyzer, a violating and a compliant
input each; the real pack started as the Pulumi CLI starts it; per-stack enforcement levels."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from dataclasses import replace

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from moe_ep import analyze
from moe_ep.engine import Registration
from policies.rules import RDMA_RESOURCE, RULES, RULES_BY_NAME

from .conftest import ROOT, planned

LWS = "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"


def resources(stack: str = "prod") -> list[Registration]:
    return [replace(r, inputs=copy.deepcopy(r.inputs)) for r in planned(stack).run.resources]


def find(rs: list[Registration], type_suffix: str, name: str) -> Registration:
    return next(r for r in rs if r.type.endswith(type_suffix) and r.name == name)


def vllm_container(lws: Registration, template: str = "workerTemplate") -> dict:
    return lws.inputs["spec"]["leaderWorkerTemplate"][template]["spec"]["containers"][0]


def set_flag(argv: list[str], name: str, value: str | None) -> None:
    if name in argv:
        i = argv.index(name)
        if value is None:
            del argv[i:i + 2]
        else:
            argv[i + 1] = value
    elif value is not None:
        argv += [name, value]


def flagged(rule: str, rs: list[Registration], levels: dict | None = None) -> list[dict]:
    return [v for v in analyze.analyze(rs, levels) if v["policy"] == rule]


# Each mutation turns the compliant prod (or staging) plan into one that violates exactly the rule.
def _eplb_indivisible(rs):
    set_flag(vllm_container(find(rs, "LeaderWorkerSet", "deepseek-r1-decode"))["command"], "--eplb-config", '{"num_redundant_experts":3}')


def _uneven(rs):
    argv = vllm_container(find(rs, "LeaderWorkerSet", "deepseek-r1-decode"))["command"]
    argv.remove("--enable-eplb")
    set_flag(argv, "--eplb-config", None)
    set_flag(argv, "--data-parallel-size", "6")


def _parallelism(rs):
    set_flag(vllm_container(find(rs, "LeaderWorkerSet", "deepseek-r1-decode"))["command"], "--data-parallel-size", "4")


def _tp_over_node(rs):
    set_flag(vllm_container(find(rs, "LeaderWorkerSet", "deepseek-r1-prefill"))["command"], "--tensor-parallel-size", "16")


def _memory(rs):
    find(rs, "LeaderWorkerSet", "deepseek-r1-decode").inputs["metadata"]["annotations"]["moe-ep.io/gpu-product"] = "h100-80gb"


def _gpu_limits(rs):
    vllm_container(find(rs, "LeaderWorkerSet", "deepseek-r1-decode"))["resources"]["requests"]["nvidia.com/gpu"] = 4


def _group_restart(rs):
    find(rs, "LeaderWorkerSet", "deepseek-r1-decode").inputs["spec"]["leaderWorkerTemplate"]["restartPolicy"] = "None"


def _rdma(rs):
    for template in ("leaderTemplate", "workerTemplate"):
        c = vllm_container(find(rs, "LeaderWorkerSet", "deepseek-r1-decode"), template)
        for part in ("requests", "limits"):
            for key in [k for k in c["resources"][part] if RDMA_RESOURCE.match(k)]:
                del c["resources"][part][key]


def _shm(rs):
    find(rs, "LeaderWorkerSet", "deepseek-r1-prefill").inputs["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["volumes"] = []


def _latest(rs):
    vllm_container(find(rs, "LeaderWorkerSet", "deepseek-r1-prefill"))["image"] = "vllm/vllm-openai:latest"


def _old_vllm(rs):
    vllm_container(find(rs, "LeaderWorkerSet", "deepseek-r1-prefill"))["image"] = "vllm/vllm-openai:v0.8.5"


def _bounds(rs):
    hpa = find(rs, "HorizontalPodAutoscaler", "deepseek-r1-decode")
    hpa.inputs["spec"].update(minReplicas=4, maxReplicas=2)


def _secret_literal(rs):
    vllm_container(find(rs, "LeaderWorkerSet", "deepseek-r1-prefill"))["env"].append({"name": "HF_TOKEN", "value": "hf_abc"})


def _tier(rs):
    router = find(rs, "Deployment", "deepseek-r1-router")
    router.inputs["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] = ["NET_ADMIN"]


def _no_pdb(rs):
    rs[:] = [r for r in rs if not r.type.endswith("PodDisruptionBudget")]


def _no_netpol(rs):
    rs[:] = [r for r in rs if not r.type.endswith("NetworkPolicy")]


def _no_key(rs):
    c = vllm_container(find(rs, "LeaderWorkerSet", "deepseek-r1-decode"))
    c["env"] = [e for e in c["env"] if e["name"] != "VLLM_API_KEY"]


def _kv(rs):
    set_flag(vllm_container(find(rs, "LeaderWorkerSet", "deepseek-r1-decode"))["command"], "--kv-transfer-config",
             '{"kv_connector":"LMCacheConnectorV1","kv_role":"kv_both"}')


def _capacity(rs):
    pool = next(r for r in rs if r.type.endswith("karpenter.sh/v1:NodePool"))
    pool.inputs["spec"]["limits"] = {"nvidia.com/gpu": 8}


def _startup(rs):
    probe = vllm_container(find(rs, "LeaderWorkerSet", "deepseek-r1-prefill"))["startupProbe"]
    probe["failureThreshold"] = 6


def _remote_code(rs):
    # The same argv serving Kimi K2, whose tokenizer is code in its repository.
    find(rs, "LeaderWorkerSet", "deepseek-r1-decode").inputs["metadata"]["annotations"]["moe-ep.io/architecture"] = "kimi-k2"


MUTATIONS = {
    "experts-divisible-by-ep": ("prod", _eplb_indivisible),
    "uneven-expert-split": ("prod", _uneven),
    "parallelism-covers-unit": ("prod", _parallelism),
    "tp-within-node": ("prod", _tp_over_node),
    "memory-fit": ("prod", _memory),
    "gpu-requests-equal-limits": ("prod", _gpu_limits),
    "multi-node-group-restart": ("staging", _group_restart),
    "multi-node-rdma": ("staging", _rdma),
    "dev-shm-memory": ("prod", _shm),
    "image-pinned": ("prod", _latest),
    "vllm-version-known": ("prod", _old_vllm),
    "autoscaler-bounds": ("prod", _bounds),
    "no-secret-literals": ("prod", _secret_literal),
    "security-context-tier": ("prod", _tier),
    "pool-has-pdb": ("prod", _no_pdb),
    "network-policy-present": ("prod", _no_netpol),
    "endpoint-requires-api-key": ("prod", _no_key),
    "kv-connectors-consistent": ("prod", _kv),
    "autoscaler-within-capacity": ("staging", _capacity),
    "startup-budget": ("prod", _startup),
    "remote-code-models": ("prod", _remote_code),
}


def test_every_rule_has_a_mutation_test_and_there_are_at_least_fifteen():
    assert len(RULES) >= 15
    assert set(MUTATIONS) == set(RULES_BY_NAME)


@pytest.mark.parametrize("rule", sorted(MUTATIONS))
def test_rule_flags_the_violation_and_passes_the_compliant_input(rule):
    stack, mutate = MUTATIONS[rule]
    compliant = resources(stack)
    assert flagged(rule, compliant) == [], f"{stack} must be compliant with {rule}"
    broken = resources(stack)
    mutate(broken)
    found = flagged(rule, broken)
    assert found, f"{rule} did not flag the mutation"
    assert all(v["enforcement"] == RULES_BY_NAME[rule].enforcement for v in found)
    assert all(v["message"] and v["resource"] for v in found)


def test_latest_image_is_a_mandatory_violation():
    broken = resources()
    _latest(broken)
    assert {v["enforcement"] for v in flagged("image-pinned", broken)} == {"mandatory"}


def test_enforcement_levels_are_configurable():
    broken = resources()
    _latest(broken)
    assert {v["enforcement"] for v in flagged("image-pinned", broken, {"image-pinned": "advisory"})} == {"advisory"}
    assert flagged("image-pinned", broken, {"image-pinned": "disabled"}) == []


def test_every_stack_has_no_mandatory_violation(stack):
    assert [v for v in planned(stack).violations if v["enforcement"] == "mandatory"] == []


def test_the_pack_runs_as_the_pulumi_cli_starts_it():
    """`python -m pulumi.policy 127.0.0.1:0 policies/` prints its port; drive it over gRPC."""
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:0", str(ROOT / "policies")],
        cwd=ROOT / "policies", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        port = int(re.match(r"\d+", proc.stdout.readline().strip()).group(0))
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = analyzer_pb2_grpc.AnalyzerStub(channel)
            info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=60)
            assert info.name == "moe-ep" and {p.name for p in info.policies} == set(RULES_BY_NAME)
            broken = resources()
            _latest(broken)
            lws = find(broken, "LeaderWorkerSet", "deepseek-r1-prefill")
            props = struct_pb2.Struct()
            props.update(json.loads(json.dumps(lws.inputs)))
            response = stub.Analyze(analyzer_pb2.AnalyzeRequest(type=lws.type, properties=props, urn=lws.urn, name=lws.name), timeout=60)
            # `latest` pins no vLLM version either, so both image rules speak.
            assert sorted(d.policyName for d in response.diagnostics) == ["image-pinned", "vllm-version-known"]
            assert {d.enforcementLevel for d in response.diagnostics} == {analyzer_pb2.MANDATORY}
    finally:
        proc.kill()
        proc.wait()


def test_unknown_rule_in_stack_policy_config_is_bad_input(tmp_path, capsys):
    from moe_ep import cli

    text = (ROOT / "stacks/Pulumi.dev.yaml").read_text() + "  moe-ep:policy:\n    enforcement: {image-pined: advisory}\n"
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text(text)
    assert cli.main(["preview", "--config", str(path)]) == 2
    assert "moe-ep:policy.enforcement.image-pined" in capsys.readouterr().err


POLICY_FIXTURES = ROOT / "tests" / "fixtures" / "policy"
POLICY_EXPECTED: dict[str, str] = __import__("yaml").safe_load((POLICY_FIXTURES / "expected.yaml").read_text())


def test_the_broken_stack_corpus_has_at_least_ten_stacks():
    assert len(POLICY_EXPECTED) >= 10
    assert set(POLICY_EXPECTED) == {p.name for p in POLICY_FIXTURES.glob("Pulumi.*.yaml")}


@pytest.mark.parametrize("name", sorted(POLICY_EXPECTED))
def test_broken_stack_is_flagged_by_the_expected_rule(name, capsys):
    from moe_ep import cli

    code = cli.main(["preview", "--config", str(POLICY_FIXTURES / name), "--json"])
    data = json.loads(capsys.readouterr().out)
    rule = POLICY_EXPECTED[name]
    hits = [v for v in data["policy"]["violations"] if v["policy"] == rule]
    assert hits, f"{name}: {rule} did not fire; got {data['policy']['violations']}"
    mandatory = any(v["enforcement"] == "mandatory" for v in data["policy"]["violations"])
    assert code == (1 if mandatory else 0)
