"""components.vllm, pure: argv per rank, DP start ranks, the commands' own rules."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import yaml
from hypothesis import given, strategies as st

from components import sizing, vllm
from components.pools import unit_args
from components.spec import ServiceSpec, StackError, service_from_config
from components.unit import PROBE_PERIOD_SECONDS, pod_template

from .conftest import ROOT


def stack(name: str) -> dict:
    return copy.deepcopy(yaml.safe_load((ROOT / f"stacks/Pulumi.{name}.yaml").read_text())["config"]["moe-ep:service"])


def staging() -> ServiceSpec:
    return service_from_config(stack("staging"), "staging")


def test_single_node_unit_has_no_workers_and_no_topology_flags():
    run = vllm.launch(service_from_config(stack("prod"), "prod"), "prefill")
    assert run.worker is None
    assert "--nnodes" not in run.leader and "--headless" not in run.leader
    assert run.leader[:3] == ("vllm", "serve", "deepseek-ai/DeepSeek-R1-0528")


def test_multi_node_ranks_take_their_node_rank_from_lws():
    run = vllm.launch(staging(), "decode")
    leader, worker = list(run.leader), list(run.worker)
    assert leader[leader.index("--node-rank") + 1] == "0" and "--headless" not in leader
    assert worker[worker.index("--node-rank") + 1] == "$(LWS_WORKER_INDEX)" and "--headless" in worker
    for argv in (leader, worker):
        assert argv[argv.index("--nnodes") + 1] == "2"
        assert argv[argv.index("--data-parallel-size") + 1] == "16"
        assert argv[argv.index("--data-parallel-size-local") + 1] == "8"
        assert argv[argv.index("--data-parallel-address") + 1] == "$(LWS_LEADER_ADDRESS)"
    assert run.start_ranks() == (0, 8)
    assert vllm.check_launch(run) == []


def test_argv_of_expands_the_per_rank_values():
    run = vllm.launch(staging(), "decode")
    argv = run.argv_of(1, "lead.svc")
    assert argv[argv.index("--node-rank") + 1] == "1" and argv[argv.index("--data-parallel-address") + 1] == "lead.svc"
    with pytest.raises(ValueError):
        vllm.launch(service_from_config(stack("prod"), "prod"), "prefill").argv_of(1, "x")


@given(nodes=st.integers(1, 8), per_node=st.sampled_from([1, 2, 4, 8]), tp_exp=st.integers(0, 3))
def test_start_ranks_cover_every_dp_rank_once(nodes, per_node, tp_exp):
    tp = min(2 ** tp_exp, per_node)
    dp = nodes * per_node // tp
    starts = [vllm.dp_start_rank(dp, tp, nodes, n) for n in range(nodes)]
    local = per_node // tp
    assert sorted(r for s in starts for r in range(s, s + local)) == list(range(dp))


def test_check_launch_catches_bad_rank_arithmetic_and_headless_leaders():
    good = vllm.launch(staging(), "decode")
    assert {rule for rule, _ in vllm.check_launch(replace(good, data_parallel_size=12))} >= {"dp-is-nodes-times-local"}
    assert "start-ranks-cover-dp" in {rule for rule, _ in vllm.check_launch(replace(good, data_parallel_size_local=4))}
    assert {rule for rule, _ in vllm.check_launch(replace(good, leader=good.leader + ("--headless",)))} == {"headless-only-on-workers"}
    no_headless = tuple(a for a in good.worker if a != "--headless")
    assert {rule for rule, _ in vllm.check_launch(replace(good, worker=no_headless))} == {"headless-only-on-workers"}


@pytest.mark.parametrize("extra", [["--headless"], ["--data-parallel-size-local", "4"], ["--port=9000"], ["--nnodes", "3"]])
def test_extra_args_may_not_set_derived_flags(extra):
    svc = stack("staging")
    svc["decode"]["extra_args"] = extra
    with pytest.raises(StackError) as error:
        service_from_config(svc, "staging")
    assert [p.rule for p in error.value.problems] == ["extra-args-unmanaged"]
    assert error.value.problems[0].path == "moe-ep:service.decode.extra_args"


def test_image_version_and_flag_table():
    assert vllm.image_version("vllm/vllm-openai:v0.33.0") == "0.33.0"
    assert vllm.image_version("registry.local/vllm:0.33.0-cu128") == "0.33.0"
    assert vllm.image_version("vllm/vllm-openai:latest") is None
    assert vllm.flags_for("vllm/vllm-openai:latest") is vllm.FLAGS[vllm.LATEST_VERSION]


def test_disaggregated_roles_carry_identical_kv_config_and_nixl_env():
    spec = service_from_config(stack("prod"), "prod")
    configs = set()
    for role in ("prefill", "decode"):
        run = vllm.launch(spec, role)
        configs.add(run.leader[run.leader.index("--kv-transfer-config") + 1])
        env = {e["name"]: e for e in run.env}
        assert env["VLLM_NIXL_SIDE_CHANNEL_HOST"]["value"] == "$(POD_IP)"
        assert env["VLLM_NIXL_SIDE_CHANNEL_PORT"]["value"] == "5600"
        assert env["NCCL_SOCKET_IFNAME"]["value"] == env["GLOO_SOCKET_IFNAME"]["value"] == "eth0"
        # UCX pinned to the socket interface put NIXL's KV transfer on TCP (issue 23, item 5).
        assert "UCX_NET_DEVICES" not in env
        assert "NVSHMEM_IB_ENABLE_IBGDA" not in env
    assert len(configs) == 1


def test_deepep_backend_brings_nvshmem_env_and_dbo():
    svc = stack("staging")
    svc["decode"].update(all2all_backend="deepep_low_latency", enable_dbo=True)
    run = vllm.launch(service_from_config(svc, "s"), "decode")
    assert "--enable-dbo" in run.leader and run.leader[run.leader.index("--all2all-backend") + 1] == "deepep_low_latency"
    assert "NVSHMEM_BOOTSTRAP_UID_SOCK_IFNAME" in {e["name"] for e in run.env}


def test_api_servers_wait_for_their_engines_as_long_as_the_startup_probe():
    # vLLM's default VLLM_ENGINE_READY_TIMEOUT_S (600 s) is shorter than a DeepSeek-R1 load, so with
    # internal DP load balancing every API server gave up while its engines were still loading.
    for name in ("dev", "staging", "prod"):
        spec = service_from_config(stack(name), name)
        for role, pool in spec.pools().items():
            args = unit_args(spec, role)
            env = {e["name"]: e.get("value") for e in args.env}
            probe = pod_template(args, leader=True)["spec"]["containers"][0]["startupProbe"]
            assert int(env["VLLM_ENGINE_READY_TIMEOUT_S"]) == sizing.startup_minutes(spec, pool) * 60
            assert int(env["VLLM_ENGINE_READY_TIMEOUT_S"]) >= probe["failureThreshold"] * PROBE_PERIOD_SECONDS > 600


def test_pd_servers_keep_idle_connections_longer_than_the_routing_sidecar():
    # vLLM closes idle connections after 5 s; llm-d's sidecar reuses them for up to 90 s.
    spec = service_from_config(stack("prod"), "prod")
    for role in spec.pools():
        env = {e["name"]: e.get("value") for e in vllm.launch(spec, role).env}
        assert int(env["VLLM_HTTP_TIMEOUT_KEEP_ALIVE"]) > 90
    decode_only = service_from_config(stack("dev"), "dev")
    assert "VLLM_HTTP_TIMEOUT_KEEP_ALIVE" not in {e["name"] for e in vllm.launch(decode_only, "decode").env}


def test_kimi_k2_gets_trust_remote_code_unless_the_stack_says_otherwise():
    # Kimi K2's tokenizer (tokenization_kimi.TikTokenTokenizer) is code in its repository: vLLM
    # 0.33.0 has no built-in one, so the server failed at start without --trust-remote-code.
    kimi = stack("prod")
    kimi["model"] = {"id": "moonshotai/Kimi-K2-Instruct", "architecture": "kimi-k2"}
    kimi["gpu"] = {"product": "h200", "per_node": 8}
    kimi["prefill"].update(nodes_per_replica=2, tensor_parallel_size=8, data_parallel_size=2, expert_parallel=True)
    kimi["decode"].update(nodes_per_replica=2, data_parallel_size=16)
    spec = service_from_config(kimi, "kimi")
    assert spec.model.runs_remote_code
    assert all("--trust-remote-code" in vllm.launch(spec, role).leader for role in spec.pools())
    kimi["model"]["trust_remote_code"] = False
    assert "--trust-remote-code" not in vllm.launch(service_from_config(kimi, "kimi"), "decode").leader
    deepseek = service_from_config(stack("prod"), "prod")
    assert not deepseek.model.runs_remote_code
    assert "--trust-remote-code" not in vllm.launch(deepseek, "decode").leader
