"""components.vllm, pure: argv per rank, DP start ranks, the commands' own rules."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import yaml
from hypothesis import given, strategies as st

from components import vllm
from components.spec import ServiceSpec, StackError, service_from_config

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
        assert env["NCCL_SOCKET_IFNAME"]["value"] == env["GLOO_SOCKET_IFNAME"]["value"] == env["UCX_NET_DEVICES"]["value"]
        assert "NVSHMEM_IB_ENABLE_IBGDA" not in env
    assert len(configs) == 1


def test_deepep_backend_brings_nvshmem_env_and_dbo():
    svc = stack("staging")
    svc["decode"].update(all2all_backend="deepep_low_latency", enable_dbo=True)
    run = vllm.launch(service_from_config(svc, "s"), "decode")
    assert "--enable-dbo" in run.leader and run.leader[run.leader.index("--all2all-backend") + 1] == "deepep_low_latency"
    assert "NVSHMEM_BOOTSTRAP_UID_SOCK_IFNAME" in {e["name"] for e in run.env}
