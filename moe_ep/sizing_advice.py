"""What ``moe-ep size`` answers without a stack file: the smallest unit per role, the minimal EP,
and, for a given traffic, units per role, the PD ratio and the cost (all from components.sizing).
"""

from __future__ import annotations

from typing import Any

from components import catalog, sizing


def _layout_view(per_node: int, verdict: sizing.Fit) -> dict[str, Any]:
    layout = verdict.layout
    return {
        "nodes": layout.gpus // per_node,
        "gpus": layout.gpus,
        "tensor_parallel_size": layout.tensor_parallel,
        "data_parallel_size": layout.data_parallel,
        "expert_parallel_size": layout.ep,
        "weights_per_gpu_gb": round(verdict.weights_gb, 2),
        "reserve_per_gpu_gb": round(verdict.reserve_gb, 2),
        "kv_cache_per_gpu_gb": round(verdict.kv_cache_gb, 2),
        "kv_tokens_per_dp_rank": verdict.kv_tokens,
        "margin_gb": round(verdict.margin_gb, 2),
        "message": verdict.message,
    }


def advise(arch: catalog.Architecture, gpu: catalog.GpuProduct, per_node: int, dtype: str,
           workload: sizing.Workload, max_nodes: int = 8, demand: sizing.Demand | None = None,
           profile: sizing.Profile | None = None, price: float | None = None) -> dict[str, Any]:
    """One JSON-ready answer. ``fits`` is false when no layout fits within ``max_nodes``."""
    price = price or gpu.price_per_hour
    units = {role: sizing.smallest_unit(arch, gpu, dtype, per_node, role, workload, max_nodes) for role in ("prefill", "decode")}
    answer: dict[str, Any] = {
        "model": arch.key, "gpu": gpu.key, "gpus_per_node": per_node, "dtype": dtype,
        "max_model_len": workload.max_model_len, "gpu_memory_utilization": workload.gpu_memory_utilization,
        "checkpoint_gb": round(sizing.weight_bytes(arch, dtype) / sizing.GB, 1),
        "fits": all(units.values()),
        "minimal_ep": sizing.minimal_ep(arch, gpu, dtype, per_node, workload, max_nodes),
        "price_per_gpu_hour": price,
        "roles": {role: (_layout_view(per_node, unit) if unit else None) for role, unit in units.items()},
        "demand": None,
    }
    prefill, decode = units["prefill"], units["decode"]
    if prefill is None or decode is None:
        return answer
    input_len = demand.input_len if demand else sizing.TYPICAL_INPUT_LEN
    output_len = demand.output_len if demand else sizing.TYPICAL_OUTPUT_LEN
    if profile:
        speeds = {"prefill": sizing.Throughput(profile.prefill_tokens_per_second, 0, "profile"),
                  "decode": sizing.Throughput(profile.decode_tokens_per_second, 0, "profile")}
    else:
        speeds = {"prefill": sizing.prefill_throughput(arch, gpu, dtype, input_len),
                  "decode": sizing.decode_throughput(arch, gpu, dtype, decode, input_len, output_len, workload)}
    for role, unit in units.items():
        speed = speeds[role]
        answer["roles"][role]["throughput"] = {
            "source": speed.source,
            "tokens_per_second_per_gpu": round(speed.tokens_per_second_per_gpu, 1),
            "tokens_per_second_per_unit": round(speed.tokens_per_second_per_gpu * unit.layout.gpus, 1),
            "decode_batch_per_dp_rank": speed.batch if role == "decode" else None,
        }
        answer["roles"][role]["cost_per_hour"] = round(sizing.cost_per_hour(unit.layout.gpus, price), 2)
    if demand and speeds["decode"].tokens_per_second_per_gpu > 0:
        plan = sizing.capacity(demand, speeds["prefill"], prefill.layout.gpus, speeds["decode"], decode.layout.gpus, price)
        answer["demand"] = {
            "rate": demand.rate, "input_len": demand.input_len, "output_len": demand.output_len,
            "prefill_units": plan.prefill_units, "decode_units": plan.decode_units, "pd_ratio": plan.pd_ratio,
            "gpus": plan.gpus, "cost_per_hour": round(plan.cost_per_hour, 2),
            "cost_per_million_tokens": round(plan.cost_per_million_tokens, 3),
        }
    return answer


def render(answer: dict[str, Any]) -> str:
    """The human form of :func:`advise`'s answer."""
    lines = [
        f"{answer['model']} ({answer['dtype']}, checkpoint {answer['checkpoint_gb']} GB) on {answer['gpu']} x "
        f"{answer['gpus_per_node']} per node, max_model_len {answer['max_model_len']:,}, "
        f"gpu_memory_utilization {answer['gpu_memory_utilization']:g}:",
    ]
    for role, unit in answer["roles"].items():
        if unit is None:
            lines.append(f"  {role:8} no layout fits within the node limit")
            continue
        ep = unit["expert_parallel_size"]
        line = (f"  {role:8} {unit['gpus']} GPUs ({unit['nodes']} node(s)): TP {unit['tensor_parallel_size']} "
                f"DP {unit['data_parallel_size']} EP {ep or '-'}; {unit['message']}")
        if "throughput" in unit:
            t = unit["throughput"]
            line += (f"\n           {t['tokens_per_second_per_unit']:,.0f} tokens/s per unit ({t['source']}), "
                     f"${unit['cost_per_hour']:.2f}/h per unit")
        lines.append(line)
    lines.append(f"  minimal EP (TP 1, DP = EP): {answer['minimal_ep'] or 'none within the node limit'}")
    demand = answer["demand"]
    if demand:
        lines.append(
            f"  for {demand['rate']:g} req/s of {demand['input_len']:,} in / {demand['output_len']:,} out: "
            f"{demand['prefill_units']} prefill + {demand['decode_units']} decode unit(s) (P:D {demand['pd_ratio']}), "
            f"{demand['gpus']} GPUs, ${demand['cost_per_hour']:.2f}/h, ${demand['cost_per_million_tokens']:.3f} per million tokens"
        )
    return "\n".join(lines)
