"""Every command we generate, through vLLM 0.33.0's own parser (the `vllm serve` subcommand's
parser, its validation and pre-launch checks, then the engine-args dataclass).

Needs vLLM's Python code (`make install-vllm`); CI installs it, so these never skip there.
"""

from __future__ import annotations

import copy
import itertools
import json

import pytest
import yaml

from components import vllm
from components.pools import unit_args
from components.spec import StackError, service_from_config

from ..conftest import ROOT, STACKS
from . import vllm_cli

pytestmark = pytest.mark.conformance

SAMPLE_ENV = {"$(POD_IP)": "10.1.2.3"}


def concrete(argv: tuple[str, ...]) -> list[str]:
    """An argv as the pod runs it: Kubernetes' `$(VAR)` expanded with sample values."""
    out = []
    for arg in argv:
        for ref, value in SAMPLE_ENV.items():
            arg = arg.replace(ref, value)
        out.append(arg)
    assert not any("$(" in a for a in out), out
    return out


def every_rank(spec) -> list[tuple[str, int, list[str]]]:
    found = []
    for role in spec.pools():
        run = vllm.launch(spec, role)
        for node in range(run.nodes):
            found.append((role, node, concrete(run.argv_of(node, f"{spec.name}-{role}-0.{spec.name}-{role}.{spec.namespace}"))))
    return found


def base(stack: str = "prod") -> dict:
    return copy.deepcopy(yaml.safe_load((ROOT / f"stacks/Pulumi.{stack}.yaml").read_text())["config"]["moe-ep:service"])


def shape(arch: str, model: str, gpu: str, per_node: int, pd: bool, nodes: int, tp: int, ep: bool, eplb: int | None,
          **pool) -> dict:
    svc = base()
    svc.pop("node_pool", None)
    svc["model"].update(architecture=arch, id=model)
    svc["gpu"].update(product=gpu, per_node=per_node)
    decode = {"nodes_per_replica": nodes, "tensor_parallel_size": tp, "data_parallel_size": nodes * per_node // tp,
              "expert_parallel": ep, **pool}
    if eplb is not None:
        decode["eplb"] = {"num_redundant_experts": eplb}
    svc["decode"] = decode
    if pd:
        svc["prefill"] = {"nodes_per_replica": 1, "tensor_parallel_size": per_node, "data_parallel_size": 1}
    else:
        svc.pop("prefill")
        svc.pop("kv_transfer", None)
        svc["router"] = {"mode": "round-robin"}
    return svc


GRID = [
    shape(arch, model, "h200", 8, pd, nodes, tp, ep, eplb, **extra)
    for (arch, model), pd, nodes, (tp, ep, eplb), extra in itertools.product(
        [("deepseek-v3", "deepseek-ai/DeepSeek-R1-0528"), ("qwen3-235b-a22b", "Qwen/Qwen3-235B-A22B")],
        [True, False],
        [1, 2, 3, 4],
        [(1, True, None), (1, True, 32), (2, True, None), (8, False, None)],
        [{}],
    )
] + [
    shape("deepseek-v3", "deepseek-ai/DeepSeek-R1-0528", "h200", 8, True, 2, 1, True, 32,
          all2all_backend="deepep_low_latency", enable_dbo=True, mtp={"num_speculative_tokens": 2}),
    shape("deepseek-v3", "deepseek-ai/DeepSeek-R1-0528", "h200", 8, True, 4, 1, True, 0,
          all2all_backend="deepep_high_throughput", max_num_seqs=512, max_num_batched_tokens=16384),
    shape("kimi-k2", "moonshotai/Kimi-K2-Instruct", "h200", 8, True, 2, 1, True, 0, enable_prefix_caching=False),
    shape("gpt-oss-120b", "openai/gpt-oss-120b", "h100-80gb", 8, False, 1, 1, True, None, extra_args=["--enforce-eager"]),
    shape("mixtral-8x7b", "mistralai/Mixtral-8x7B-Instruct-v0.1", "l40s", 4, False, 1, 4, False, None),
]


def _valid(svc: dict):
    try:
        return service_from_config(svc, "grid")
    except StackError as error:
        # Our own rules stop it before vLLM (EPLB with an EP that does not divide the experts).
        assert {p.rule for p in error.problems} == {"experts-divisible-by-ep"}, error
        return None


SHAPES = [spec for spec in map(_valid, GRID) if spec is not None]


def test_the_grid_has_at_least_thirty_valid_shapes_across_nodes_and_features():
    shapes = SHAPES
    assert len(shapes) >= 30
    assert {s.decode.nodes_per_replica for s in shapes} >= {1, 2, 3, 4}
    assert {s.disaggregated for s in shapes} == {True, False}
    assert {s.decode.eplb_enabled for s in shapes} == {True, False}


@pytest.mark.parametrize("index", range(len(SHAPES)))
def test_grid_commands_are_accepted_by_vllm(index):
    spec = SHAPES[index]
    for role, node, argv in every_rank(spec):
        args = vllm_cli.engine_args(argv)
        pool = spec.pools()[role]
        assert args.tensor_parallel_size == pool.tensor_parallel_size
        assert args.data_parallel_size == pool.data_parallel_size
        assert args.enable_expert_parallel == pool.expert_parallel
        assert args.enable_eplb == pool.eplb_enabled
        if pool.eplb_enabled:
            assert args.eplb_config.num_redundant_experts == pool.eplb.num_redundant_experts
        if pool.nodes_per_replica > 1:
            assert args.nnodes == pool.nodes_per_replica and args.node_rank == node
            assert args.data_parallel_size_local * pool.nodes_per_replica == pool.data_parallel_size
            assert args.data_parallel_address == f"{spec.name}-{role}-0.{spec.name}-{role}.{spec.namespace}"
        if spec.disaggregated:
            assert args.kv_transfer_config.kv_connector == "NixlConnector"
            assert args.kv_transfer_config.kv_role == "kv_both"


def test_every_stack_command_is_accepted_by_vllm():
    for name in STACKS:
        spec = service_from_config(base(name), name)
        for role, node, argv in every_rank(spec):
            ns = vllm_cli.parse_serve(argv)
            assert ns.headless == (node > 0), (name, role, node)
            vllm_cli.engine_args(argv)


def test_prefill_and_decode_kv_configs_match():
    spec = service_from_config(base("prod"), "prod")
    configs = [vllm_cli.engine_args(concrete(vllm.launch(spec, role).leader)).kv_transfer_config for role in ("prefill", "decode")]
    assert configs[0].kv_connector == configs[1].kv_connector and configs[0].kv_role == configs[1].kv_role


def test_vllm_rejects_a_misspelled_flag():
    argv = concrete(vllm.launch(service_from_config(base("prod"), "prod"), "decode").leader)
    vllm_cli.parse_serve(argv)
    bad = [a.replace("--enable-expert-parallel", "--enable-expert-paralel") for a in argv]
    with pytest.raises(vllm_cli.VllmCliError, match="expert-paralel"):
        vllm_cli.parse_serve(bad)


def test_vllm_rejects_a_bad_kv_role():
    argv = concrete(vllm.launch(service_from_config(base("prod"), "prod"), "prefill").leader)
    i = argv.index("--kv-transfer-config")
    argv[i + 1] = json.dumps({"kv_connector": "NixlConnector", "kv_role": "kv_sender"})
    with pytest.raises(vllm_cli.VllmCliError, match="kv_role"):
        vllm_cli.parse_serve(argv)


def test_vllm_rejects_headless_with_api_servers():
    argv = concrete(vllm.launch(service_from_config(shape(
        "deepseek-v3", "deepseek-ai/DeepSeek-R1-0528", "h200", 8, True, 2, 1, True, 0), "g"), "decode").argv_of(1, "leader"))
    with pytest.raises(ValueError, match="api-server-count"):
        vllm_cli.parse_serve(argv + ["--api-server-count", "2"])


def test_mtp_method_is_one_vllm_knows():
    spec = service_from_config(shape("deepseek-v3", "deepseek-ai/DeepSeek-R1-0528", "h200", 8, False, 1, 1, True, 0,
                                     mtp={"num_speculative_tokens": 1}), "g")
    args = vllm_cli.engine_args(concrete(vllm.launch(spec, "decode").leader))
    assert args.speculative_config == {"method": "mtp", "num_speculative_tokens": 1}
    with pytest.raises(ValueError, match="speculative method"):
        vllm_cli.check_speculative_config({"method": "deepseek-mtp", "num_speculative_tokens": 1})


def test_all2all_choices_are_vllms():
    choices = set(vllm_cli.serve_flags()["--all2all-backend"].choices)
    assert set(vllm.ALL2ALL_BACKENDS) <= choices


def test_every_flag_we_can_emit_exists():
    flags = vllm_cli.serve_flags()
    for version, table in vllm.FLAGS.items():
        if version == "0.33.0":
            assert set(table.values()) <= set(flags), set(table.values()) - set(flags)


def test_our_vllm_environment_variables_are_ones_vllm_reads():
    for name in STACKS:
        spec = service_from_config(base(name), name)
        for role in spec.pools():
            env = {e["name"]: "x" for e in unit_args(spec, role).env}  # every variable the pod gets
            assert vllm_cli.unknown_vllm_env_vars(env) == []
            assert "VLLM_ALL2ALL_BACKEND" not in env
