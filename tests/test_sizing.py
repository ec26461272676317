"""Sizing against public facts (each with its source), plus properties of the arithmetic."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings, strategies as st

from components import catalog, sizing
from components.spec import ServiceSpec
from moe_ep import cli

DS, KIMI = catalog.ARCHITECTURES["deepseek-v3"], catalog.ARCHITECTURES["kimi-k2"]
H100, H200, H20 = catalog.GPUS["h100-80gb"], catalog.GPUS["h200"], catalog.GPUS["h20"]


def one_node_layouts(arch, per_node=8):
    return sizing.layouts(arch, per_node, 1)


# --- parameter counts from the shapes match the model cards -------------------------------------


@pytest.mark.parametrize("key", sorted(catalog.ARCHITECTURES))
def test_parameter_count_from_config_shapes_matches_the_model_card(key):
    # Totals: each model card, cited in catalog.py. Shapes: each config.json. Norms, biases and
    # MTP layers are not counted, hence 2 %.
    arch = catalog.ARCHITECTURES[key]
    assert sizing.parameters(arch).total / 1e9 == pytest.approx(arch.total_params_b, rel=0.02)


def test_every_gpu_has_its_cuda_memory():
    for gpu in catalog.GPUS.values():
        # The datasheet's "GB" is within 10 % of GiB of what CUDA reports.
        assert gpu.memory_bytes / 2**30 == pytest.approx(gpu.memory_gb, rel=0.1), gpu.key


# --- public facts -------------------------------------------------------------------------------


def test_deepseek_r1_fp8_does_not_fit_one_8x_h100_node_and_fits_8x_h200():
    # vLLM recipes, DeepSeek-V3/R1 (docs.vllm.ai/projects/recipes, "DeepSeek-V3"): FP8 on one
    # 8×H200 (or B200) node; 8×H100/H800 need two nodes. The FP8 checkpoint is ~690 GB against
    # 8 × 80 GB.
    for layout in one_node_layouts(DS):
        assert not sizing.fit_layout(DS, H100, "fp8", layout).fits, layout
    assert sizing.fit_layout(DS, H200, "fp8", sizing.Layout(8, 1)).fits
    assert sizing.smallest_unit(DS, H200, "fp8", 8, "prefill").layout.gpus == 8
    assert sizing.smallest_unit(DS, H100, "fp8", 8, "prefill").layout.gpus == 16


@pytest.mark.parametrize("gpu", [H200, H20], ids=["h200", "h20"])
def test_kimi_k2_fp8_with_128k_context_needs_16_gpus(gpu):
    # Moonshot, Kimi-K2-Instruct docs/deploy_guidance.md: "The smallest deployment unit for Kimi-K2
    # FP8 weights with 128k seqlen on mainstream H200 or H20 platform is a cluster with 16 GPUs
    # with either Tensor Parallel (TP) or "data parallel + expert parallel" (DP+EP)". Their TP
    # command is --tensor-parallel-size 16.
    long = sizing.Workload(max_model_len=131072)
    for layout in one_node_layouts(KIMI):
        assert not sizing.fit_layout(KIMI, gpu, "fp8", layout, long).fits, layout
    assert sizing.fit_layout(KIMI, gpu, "fp8", sizing.Layout(16, 1), long).fits
    assert sizing.smallest_unit(KIMI, gpu, "fp8", 8, "prefill", long).layout.gpus == 16
    assert sizing.smallest_unit(KIMI, gpu, "fp8", 8, "decode", long).layout.gpus == 16


def test_kimi_k2_dp16_ep16_fits_h200_as_in_moonshots_example():
    # Same guide, DP+EP "example on H200": --data-parallel-size 16 --enable-expert-parallel
    # --gpu-memory-utilization 0.85, 128k context.
    example = sizing.Workload(max_model_len=131072, gpu_memory_utilization=0.85,
                              max_num_batched_tokens=8192, max_num_seqs=256)
    assert sizing.fit_layout(KIMI, H200, "fp8", sizing.Layout(1, 16, expert_parallel=True), example).fits


def test_llm_d_wide_ep_dp16_with_32_redundant_experts_fits_h200():
    # llm-d guides/wide-ep-lws (README): DeepSeek-R1-0528 FP8 on H200, one DP=16 prefill unit and
    # one DP=16 decode unit (2 nodes × 8 each), EP, EPLB with num_redundant_experts 32.
    layout = sizing.Layout(1, 16, expert_parallel=True, redundant_experts=32)
    verdict = sizing.fit_layout(DS, H200, "fp8", layout)
    assert verdict.fits
    assert verdict.weights.experts_per_gpu == (256 + 32) // 16 == 18


def test_one_redundant_expert_per_rank_costs_about_2_4_gb_on_deepseek_v3():
    # vLLM docs, serving/expert_parallel_deployment.md (EPLB): redundant experts take
    # NUM_MOE_LAYERS * BYTES_PER_EXPERT * (experts + redundant) / EP ranks; "about 2.4 GB for one
    # redundant expert per EP rank on DeepSeekV3".
    base = sizing.weights_per_gpu(DS, "fp8", sizing.Layout(1, 16, True, 0)).routed_experts
    more = sizing.weights_per_gpu(DS, "fp8", sizing.Layout(1, 16, True, 16)).routed_experts
    assert (more - base) / 2**30 == pytest.approx(2.4, abs=0.05)


def test_mla_cache_is_not_sharded_by_tp_and_gqa_is_until_kv_heads():
    # DeepSeek-V3 config.json: 61 layers × (kv_lora_rank 512 + qk_rope_head_dim 64) × 2 bytes.
    assert sizing.kv_bytes_per_token(DS, 1) == sizing.kv_bytes_per_token(DS, 8) == 61 * 576 * 2
    qwen = catalog.ARCHITECTURES["qwen3-235b-a22b"]  # 94 layers, 4 KV heads of 128
    full = 94 * 2 * 4 * 128 * 2
    assert sizing.kv_bytes_per_token(qwen, 1) == full
    assert sizing.kv_bytes_per_token(qwen, 4) == full / 4
    assert sizing.kv_bytes_per_token(qwen, 8) == full / 4  # TP > kv_heads: one head, replicated
    assert sizing.kv_bytes_per_token(qwen, 4, "fp8") == full / 8


def test_attention_is_replicated_on_every_dp_rank_and_sharded_by_tp():
    one = sizing.weights_per_gpu(DS, "fp8", sizing.Layout(1, 8, True))
    wide = sizing.weights_per_gpu(DS, "fp8", sizing.Layout(1, 32, True))
    tp8 = sizing.weights_per_gpu(DS, "fp8", sizing.Layout(8, 1, True))
    assert one.attention == wide.attention == tp8.attention * 8
    assert one.embeddings == tp8.embeddings * 8
    assert one.routed_experts == tp8.routed_experts  # EP 8 either way


# --- properties ---------------------------------------------------------------------------------

archs = st.sampled_from(sorted(catalog.ARCHITECTURES))
gpus_ = st.sampled_from(sorted(catalog.GPUS))
dtypes = st.sampled_from(["fp8", "bf16", "int4"])


@settings(max_examples=200, deadline=None)
@given(archs, dtypes, st.integers(1, 512), st.integers(1, 512), st.integers(0, 64))
def test_more_ep_never_increases_routed_expert_bytes_per_gpu(key, dtype, ep_a, ep_b, redundant):
    arch = catalog.ARCHITECTURES[key]
    small, large = sorted((ep_a, ep_b))
    at = lambda ep: sizing.weights_per_gpu(arch, dtype, sizing.Layout(1, ep, True, redundant))  # noqa: E731
    assert at(large).routed_experts <= at(small).routed_experts
    # Whole experts per rank, and together the ranks hold every physical expert.
    assert at(small).experts_per_gpu * small >= arch.routed_experts + redundant


@settings(max_examples=200, deadline=None)
@given(archs, gpus_, dtypes, st.sampled_from([1, 2, 4, 8]), st.integers(1, 4), st.integers(1024, 262144))
def test_fit_arithmetic_is_consistent(key, gpu_key, dtype, per_node, nodes, max_len):
    arch, gpu = catalog.ARCHITECTURES[key], catalog.GPUS[gpu_key]
    workload = sizing.Workload(max_model_len=max_len)
    for layout in sizing.layouts(arch, per_node, nodes):
        assert layout.gpus == nodes * per_node
        f = sizing.fit_layout(arch, gpu, dtype, layout, workload)
        assert f.budget_gb == pytest.approx(f.weights_gb + f.reserve_gb + f.kv_cache_gb)
        assert f.kv_tokens_per_unit == f.kv_tokens * layout.data_parallel
        assert f.fits == (f.kv_tokens >= max_len) == (f.margin_gb >= 0) or abs(f.margin_gb) < 1e-6
        # A longer context never turns "does not fit" into "fits".
        longer = sizing.fit_layout(arch, gpu, dtype, layout, sizing.Workload(max_model_len=max_len * 2))
        assert not longer.fits or f.fits


@settings(max_examples=100, deadline=None)
@given(st.floats(0.01, 1e4), st.floats(1, 1e5), st.integers(1, 64), st.floats(0.01, 1e4))
def test_units_cover_the_demand(tokens_per_second, per_gpu, gpus_per_unit, price):
    units = sizing.units_for(tokens_per_second, per_gpu, gpus_per_unit)
    assert units * per_gpu * gpus_per_unit >= tokens_per_second * (1 - 1e-9)
    assert units == 1 or (units - 1) * per_gpu * gpus_per_unit < tokens_per_second
    hourly = sizing.cost_per_hour(units * gpus_per_unit, price)
    assert sizing.cost_per_million_tokens(hourly, tokens_per_second) == pytest.approx(hourly / (tokens_per_second * 3.6e-3))


def test_capacity_from_a_profile_gives_units_ratio_and_cost():
    demand = sizing.Demand(rate=10, input_len=2000, output_len=500)
    profile = sizing.Profile(prefill_tokens_per_second=5000, decode_tokens_per_second=1000)
    plan = sizing.capacity(demand, sizing.Throughput(profile.prefill_tokens_per_second, 0, "profile"), 8,
                           sizing.Throughput(profile.decode_tokens_per_second, 0, "profile"), 16, price_per_gpu_hour=2.0)
    # 20,000 prefill tokens/s over 40,000 per unit; 5,000 decode tokens/s over 16,000 per unit.
    assert (plan.prefill_units, plan.decode_units, plan.pd_ratio, plan.gpus) == (1, 1, "1:1", 24)
    assert plan.cost_per_hour == 48.0
    assert plan.cost_per_million_tokens == pytest.approx(48.0 / (25_000 * 3600 / 1e6))
    with pytest.raises(ValueError):
        sizing.units_for(1, 0, 8)


def test_roofline_decode_slows_with_context_and_prefill_with_prompt():
    layout = sizing.fit_layout(DS, H200, "fp8", sizing.Layout(1, 16, True))
    short = sizing.decode_throughput(DS, H200, "fp8", layout, 1000, 500)
    long = sizing.decode_throughput(DS, H200, "fp8", layout, 16000, 500)
    assert 0 < long.tokens_per_second_per_gpu < short.tokens_per_second_per_gpu
    assert long.batch < short.batch <= 1024
    assert (sizing.prefill_throughput(DS, H200, "fp8", 32000).tokens_per_second_per_gpu
            < sizing.prefill_throughput(DS, H200, "fp8", 1000).tokens_per_second_per_gpu)
    # FP8 prefill on H200: DeepSeek reports ~9k prefill tokens/s per H800 (same compute); the
    # roofline with PREFILL_MFU lands in that range.
    assert 5000 < sizing.prefill_throughput(DS, H200, "fp8", 2000).tokens_per_second_per_gpu < 15000


def test_minimal_ep():
    assert sizing.minimal_ep(DS, H200, "fp8", 8) == 8
    assert sizing.minimal_ep(DS, H100, "fp8", 8) == 16
    assert sizing.minimal_ep(DS, H100, "fp8", 8, max_nodes=1) is None


# --- the stack-facing function ------------------------------------------------------------------


def stack(decode: dict, gpu: str = "h20", **model) -> ServiceSpec:
    return ServiceSpec.model_validate({
        "name": "t", "namespace": "n", "image": "vllm/vllm-openai:v0.33.0",
        "model": {"id": "m", "architecture": "deepseek-v3", **model},
        "gpu": {"product": gpu}, "decode": decode,
    })


def test_fit_reads_the_pool_of_a_stack():
    wide = {"nodes_per_replica": 2, "data_parallel_size": 16, "expert_parallel": True}
    assert sizing.fit(stack(wide), "decode").fits
    narrow = sizing.fit(stack({"data_parallel_size": 8, "expert_parallel": True}), "decode")
    assert not narrow.fits and narrow.margin_gb < 0 and narrow.message.startswith("does not fit")
    # vLLM DP attention replicates MLA weights on each of the 8 H20 ranks: ~103 GB per GPU.
    assert narrow.weights_gb > narrow.budget_gb
    lower = sizing.fit(stack({"tensor_parallel_size": 8, "gpu_memory_utilization": 0.8}), "decode")
    assert lower.budget_gb == pytest.approx(0.8 * H20.memory_bytes / 1e9)


# --- the commands -------------------------------------------------------------------------------


def test_size_command_json(capsys):
    code = cli.main(["size", "--model", "deepseek-v3", "--gpu", "h200", "--rate", "5", "--input-len", "2000",
                     "--output-len", "500", "--json"])
    answer = json.loads(capsys.readouterr().out)
    assert code == 0 and answer["fits"] and answer["minimal_ep"] == 8
    assert answer["roles"]["prefill"]["tensor_parallel_size"] == 8
    assert answer["roles"]["decode"]["expert_parallel_size"] == 8
    demand = answer["demand"]
    assert demand["pd_ratio"] == f"{demand['prefill_units']}:{demand['decode_units']}"
    assert demand["gpus"] == 8 * (demand["prefill_units"] + demand["decode_units"])
    assert demand["cost_per_hour"] == pytest.approx(demand["gpus"] * H200.price_per_hour)


def test_size_command_nothing_fits_exits_1(capsys):
    assert cli.main(["size", "--model", "kimi-k2", "--gpu", "l40s", "--max-nodes", "2"]) == 1
    assert "no layout fits" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--model", "nope", "--gpu", "h200"], "invalid choice"),
    (["--model", "kimi-k2", "--gpu", "h200", "--rate", "3"], "go together"),
    (["--model", "kimi-k2", "--gpu", "h200", "--max-model-len", "0"], "expected a whole number from 256 to 4,194,304"),
    # The stack file's bounds: a huge node would make the layout search run for ever.
    (["--model", "kimi-k2", "--gpu", "h200", "--gpus-per-node", "1" + "0" * 40], "expected a whole number from 1 to 16"),
    (["--model", "kimi-k2", "--gpu", "h200", "--max-nodes", "65"], "expected a whole number from 1 to 64"),
    (["--model", "kimi-k2", "--gpu", "h200", "--gpu-memory-utilization", "1.5"], "(0, 0.98]"),
    (["--model", "kimi-k2", "--gpu", "h200", "--prefill-tps-per-gpu", "100"], "go together"),
    (["--model", "kimi-k2", "--gpu", "h200", "--rate", "3", "--input-len", "30000", "--output-len", "4000"],
     "--input-len 30000 + --output-len 4000 exceeds --max-model-len 32768"),
    (["--model", "kimi-k2", "--gpu", "h200", "--price-per-hour", "1e308", "--json"], "the estimate's roles.prefill.cost_per_hour is not a finite number"),
    (["--model", "kimi-k2", "--gpu", "h200", "--rate", "1e308", "--input-len", "1000", "--output-len", "1000"],
     "the estimate overflows (cannot convert float infinity to integer)"),
])
def test_size_command_bad_arguments_exit_2(argv, message, capsys):
    try:
        code = cli.main(["size", *argv])
    except SystemExit as stop:  # argparse's own errors exit 2 after printing usage
        code = stop.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_preview_json_has_the_sizing_per_pool(capsys):
    assert cli.main(["preview", "--stack", "staging", "--json"]) == 0
    sizing_block = json.loads(capsys.readouterr().out)["sizing"]
    for role in ("prefill", "decode"):
        block = sizing_block[role]
        assert {"gpus_per_replica", "startup_minutes", "fits", "margin_gb", "memory_per_gpu_gb",
                "kv_tokens_per_dp_rank", "cost"} <= set(block)
        assert block["fits"] is True and block["kv_tokens_per_dp_rank"] >= 32768
        assert math.isclose(block["cost"]["per_hour"], block["gpus_per_replica"] * H200.price_per_hour)
    assert sizing_block["decode"]["routed_experts_per_gpu"] == (256 + 16) // 16
