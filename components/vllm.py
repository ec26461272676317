"""Pure: a pool's spec and role -> the argv and environment of every rank's `vllm serve`.

Multi-node units use vLLM's native multi-node data parallelism (no Ray). Rank 0 (the LWS leader)
serves the API and coordinates DP over ``--data-parallel-address``; every other node runs
``--headless``. Each node passes ``--nnodes`` and its own ``--node-rank`` (the LWS worker index,
``$(LWS_WORKER_INDEX)``, a per-rank value Kubernetes expands), and vLLM derives the node's DP start
rank itself: ``node_rank × (world size / nnodes) / (TP × PP)`` (vllm/engine/arg_utils.py,
``create_engine_config``). No shell arithmetic, no wrapper: the container runs the argv as is.

Flags are looked up per vLLM version in :data:`FLAGS`; supporting a new vLLM release is a new
entry there, not new code.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from .api_key import api_key_env

if TYPE_CHECKING:
    from .spec import PoolSpec, Problem, ServiceSpec

SERVE_PORT = 8000
"""The port a unit's rank 0 serves on (vLLM itself, or the routing sidecar in front of it)."""
BEHIND_SIDECAR_PORT = 8200
"""vLLM's port when the llm-d routing sidecar takes SERVE_PORT (decode pods behind the llm-d router)."""

# vLLM 0.33.0 `--all2all-backend` choices (engine/arg_utils.py), less `naive` and `pplx`, which it
# still parses but replaces with allgather_reducescatter ("has been removed", config/parallel.py).
ALL2ALL_BACKENDS = (
    "allgather_reducescatter", "deepep_high_throughput", "deepep_low_latency", "deepep_v2",
    "flashinfer_nvlink_one_sided", "flashinfer_nvlink_two_sided", "moonep", "mori_high_throughput",
    "mori_low_latency", "nixl_ep",
)
DEEPEP_BACKENDS = ("deepep_high_throughput", "deepep_low_latency", "deepep_v2")
MTP_METHOD = "mtp"
"""vLLM's speculative method for a model's own MTP layers (`deepseek_mtp` and friends are deprecated aliases)."""

# Flag spellings per vLLM release. Keys are concepts; values are the flag as that release spells it.
FLAGS: MappingProxyType[str, MappingProxyType[str, str]] = MappingProxyType({
    "0.33.0": MappingProxyType({
        "served_model_name": "--served-model-name",
        "port": "--port",
        "tensor_parallel_size": "--tensor-parallel-size",
        "data_parallel_size": "--data-parallel-size",
        "data_parallel_size_local": "--data-parallel-size-local",
        "data_parallel_address": "--data-parallel-address",
        "data_parallel_rpc_port": "--data-parallel-rpc-port",
        "nnodes": "--nnodes",
        "node_rank": "--node-rank",
        "headless": "--headless",
        "enable_expert_parallel": "--enable-expert-parallel",
        "all2all_backend": "--all2all-backend",
        "enable_eplb": "--enable-eplb",
        "eplb_config": "--eplb-config",
        "enable_dbo": "--enable-dbo",
        "speculative_config": "--speculative-config",
        "max_model_len": "--max-model-len",
        "gpu_memory_utilization": "--gpu-memory-utilization",
        "kv_cache_dtype": "--kv-cache-dtype",
        "kv_transfer_config": "--kv-transfer-config",
        "max_num_seqs": "--max-num-seqs",
        "max_num_batched_tokens": "--max-num-batched-tokens",
        "no_prefix_caching": "--disable-prefix-caching",
        "trust_remote_code": "--trust-remote-code",
    }),
})
SUPPORTED_VERSIONS = tuple(FLAGS)
LATEST_VERSION = SUPPORTED_VERSIONS[-1]
MANAGED = (
    "served_model_name", "port", "tensor_parallel_size", "data_parallel_size", "data_parallel_size_local",
    "data_parallel_address", "data_parallel_rpc_port", "nnodes", "node_rank", "headless", "kv_transfer_config",
)
"""Flags moe-ep derives from the unit's shape; `extra_args` may not set them."""
WORKER_INDEX = "$(LWS_WORKER_INDEX)"
LEADER_ADDRESS = "$(LWS_LEADER_ADDRESS)"

_TAG = re.compile(r":v?(\d+\.\d+\.\d+)(?:[-+][\w.]*)?(?:@sha256:[0-9a-f]{64})?$")


def image_version(image: str) -> str | None:
    """The vLLM version an image tag pins (``vllm/vllm-openai:v0.33.0`` -> ``0.33.0``), if any."""
    match = _TAG.search(image)
    return match.group(1) if match else None


def flags_for(image: str) -> MappingProxyType[str, str]:
    """Flag spellings for the image's vLLM version; the newest known set for unknown versions
    (the policy pack flags images whose version we do not emit flags for)."""
    return FLAGS.get(image_version(image) or "", FLAGS[LATEST_VERSION])


def behind_sidecar(spec: ServiceSpec, role: str) -> bool:
    """Decode units behind the llm-d router get its routing sidecar, which runs the prefill step."""
    return role == "decode" and spec.router_mode == "llm-d"


def vllm_port(spec: ServiceSpec, role: str) -> int:
    return BEHIND_SIDECAR_PORT if behind_sidecar(spec, role) else SERVE_PORT


def dp_start_rank(data_parallel: int, tensor_parallel: int, nnodes: int, node_rank: int, pipeline_parallel: int = 1) -> int:
    """The first DP rank vLLM gives node ``node_rank`` of ``nnodes`` (its own formula)."""
    within_dp = tensor_parallel * pipeline_parallel
    local_world = data_parallel * within_dp // nnodes
    return node_rank * local_world // within_dp


@dataclass(frozen=True)
class Launch:
    """How one unit of a pool starts: rank 0's argv, the other ranks' argv, and the shared env."""

    role: str
    leader: tuple[str, ...]
    worker: tuple[str, ...] | None
    env: tuple[dict, ...]
    data_parallel_size: int
    data_parallel_size_local: int
    tensor_parallel_size: int
    nodes: int

    def start_ranks(self) -> tuple[int, ...]:
        """DP start rank of every node of the unit, rank 0 first, as vLLM derives them."""
        return tuple(
            dp_start_rank(self.data_parallel_size, self.tensor_parallel_size, self.nodes, node)
            for node in range(self.nodes)
        )

    def argv_of(self, node_rank: int, leader_address: str) -> tuple[str, ...]:
        """The argv node ``node_rank`` runs once Kubernetes has expanded its variables."""
        argv = self.leader if node_rank == 0 else self.worker
        if argv is None:
            raise ValueError(f"{self.role}: a single-node unit has no rank {node_rank}")
        return tuple(
            a.replace(WORKER_INDEX, str(node_rank)).replace(LEADER_ADDRESS, leader_address) for a in argv
        )


def _json(value: dict) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def kv_transfer_config(spec: ServiceSpec) -> dict:
    """The KV connector config both roles carry; identical so producer and consumer agree."""
    return {"kv_connector": spec.kv_transfer.connector, "kv_role": "kv_both"}


def _common_args(spec: ServiceSpec, pool: PoolSpec, flag) -> list[str]:
    """Flags every rank of a unit carries (the engine config must match across ranks)."""
    model = spec.model
    args = [
        flag["tensor_parallel_size"], str(pool.tensor_parallel_size),
        flag["data_parallel_size"], str(pool.data_parallel_size),
    ]
    if pool.expert_parallel:
        args.append(flag["enable_expert_parallel"])
        if pool.all2all_backend:
            args += [flag["all2all_backend"], pool.all2all_backend]
    if pool.eplb_enabled:
        eplb = pool.eplb
        args += [flag["enable_eplb"], flag["eplb_config"], _json({
            "num_redundant_experts": eplb.num_redundant_experts,
            "step_interval": eplb.step_interval,
            "window_size": eplb.window_size,
        })]
    if pool.enable_dbo:
        args.append(flag["enable_dbo"])
    if pool.mtp is not None:
        args += [flag["speculative_config"], _json({
            "method": MTP_METHOD,
            "num_speculative_tokens": pool.mtp.num_speculative_tokens,
        })]
    args += [
        flag["max_model_len"], str(model.max_model_len),
        flag["gpu_memory_utilization"], f"{pool.gpu_memory_utilization:g}",
    ]
    if model.kv_cache_dtype != "auto":
        args += [flag["kv_cache_dtype"], model.kv_cache_dtype]
    if model.runs_remote_code:
        args.append(flag["trust_remote_code"])
    if pool.max_num_seqs:
        args += [flag["max_num_seqs"], str(pool.max_num_seqs)]
    if pool.max_num_batched_tokens:
        args += [flag["max_num_batched_tokens"], str(pool.max_num_batched_tokens)]
    if not pool.enable_prefix_caching:
        args.append(flag["no_prefix_caching"])
    if spec.disaggregated:
        args += [flag["kv_transfer_config"], _json(kv_transfer_config(spec))]
    args += list(pool.extra_args)
    return args


HTTP_KEEP_ALIVE_SECONDS = 120
"""vLLM closes an idle HTTP connection after 5 s by default; llm-d's routing sidecar keeps one for
90 s, so a P/D request sent on a connection vLLM has just closed is reset. llm-d sets 120."""


def engine_ready_env(startup_minutes: int) -> dict:
    """``VLLM_ENGINE_READY_TIMEOUT_S`` set to the unit's startup budget. Each API server waits this
    long for its engines; vLLM's default (600 s) is shorter than a large MoE's load, so the API
    servers gave up while the engines still loaded. Equal to the startup probe's budget, so neither
    gives up before the other. Pure."""
    return {"name": "VLLM_ENGINE_READY_TIMEOUT_S", "value": str(startup_minutes * 60)}


def _env(spec: ServiceSpec, pool: PoolSpec) -> tuple[dict, ...]:
    """Environment for every rank: the API key (by reference), interfaces for NCCL's and Gloo's
    sockets, the NIXL side channel, NVSHMEM (read by DeepEP's library, not by vLLM)."""
    ifname = spec.unit.comm_interface
    env = [
        api_key_env(spec.name),
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "VLLM_HOST_IP", "value": "$(POD_IP)"},
        {"name": "NCCL_SOCKET_IFNAME", "value": ifname},
        {"name": "GLOO_SOCKET_IFNAME", "value": ifname},
    ]
    if spec.disaggregated:
        # No UCX_NET_DEVICES: naming the socket interface (eth0, net1) would restrict UCX, and so
        # NIXL's KV transfer, to TCP on it; left alone UCX picks the RDMA devices it finds.
        env += [
            {"name": "VLLM_NIXL_SIDE_CHANNEL_HOST", "value": "$(POD_IP)"},
            # Each DP rank of a pod listens on this port + its DP index.
            {"name": "VLLM_NIXL_SIDE_CHANNEL_PORT", "value": str(spec.kv_transfer.side_channel_port)},
            {"name": "VLLM_HTTP_TIMEOUT_KEEP_ALIVE", "value": str(HTTP_KEEP_ALIVE_SECONDS)},
        ]
    if pool.expert_parallel and pool.all2all_backend in DEEPEP_BACKENDS:
        env += [
            {"name": "NVSHMEM_BOOTSTRAP_UID_SOCK_IFNAME", "value": ifname},
            {"name": "NVSHMEM_IB_ENABLE_IBGDA", "value": "1"},
        ]
    return tuple(env)


def launch(spec: ServiceSpec, role: str) -> Launch:
    """The argv of rank 0 and of the other ranks of one unit of ``role``, and their env."""
    pool = spec.pools()[role]
    flag = flags_for(spec.image)
    served = spec.model.served_model_name or spec.model.id
    local = max(1, spec.gpu.per_node // pool.tensor_parallel_size)
    common = _common_args(spec, pool, flag)
    leader = ["vllm", "serve", spec.model.id, flag["served_model_name"], served, flag["port"], str(vllm_port(spec, role)), *common]
    worker: list[str] | None = None
    if pool.nodes_per_replica > 1:
        def topology(node_rank: str) -> list[str]:
            return [
                flag["data_parallel_size_local"], str(local),
                flag["nnodes"], str(pool.nodes_per_replica),
                flag["node_rank"], node_rank,
                flag["data_parallel_address"], LEADER_ADDRESS,
                flag["data_parallel_rpc_port"], str(spec.unit.dp_rpc_port),
            ]

        leader += topology("0")
        worker = ["vllm", "serve", spec.model.id, flag["headless"], *common, *topology(WORKER_INDEX)]
    return Launch(
        role=role,
        leader=tuple(leader),
        worker=tuple(worker) if worker else None,
        env=_env(spec, pool),
        data_parallel_size=pool.data_parallel_size,
        data_parallel_size_local=local,
        tensor_parallel_size=pool.tensor_parallel_size,
        nodes=pool.nodes_per_replica,
    )


def check_launch(run: Launch, headless: str = "--headless") -> list[tuple[str, str]]:
    """(rule, message) for what is wrong with one unit's commands; vLLM's parser sees one argv at
    a time and cannot tell: the DP ranks of the unit add up, every DP rank is started exactly
    once, and only workers are headless."""
    found = []
    if run.data_parallel_size != run.nodes * run.data_parallel_size_local:
        found.append(("dp-is-nodes-times-local",
                      f"DP {run.data_parallel_size} = nodes × DP per node = {run.nodes} × {run.data_parallel_size_local}"))
    covered = sorted(r for s in run.start_ranks() for r in range(s, s + run.data_parallel_size_local))
    if covered != list(range(run.data_parallel_size)):
        found.append(("start-ranks-cover-dp",
                      f"start ranks {list(run.start_ranks())} × {run.data_parallel_size_local} local ranks covering "
                      f"DP ranks 0..{run.data_parallel_size - 1} once each"))
    if headless in run.leader:
        found.append(("headless-only-on-workers", "rank 0 serves the API: no --headless"))
    if run.worker is not None and headless not in run.worker:
        found.append(("headless-only-on-workers", "ranks 1.. run --headless"))
    return found


def launch_problems(spec: ServiceSpec) -> list[Problem]:
    """The commands' rules for every pool of a service, and `extra_args` leaving the flags
    moe-ep derives alone."""
    from .spec import SERVICE_KEY, Problem  # spec imports this module for its backend choices

    found: list[Problem] = []
    flag = flags_for(spec.image)
    managed = {flag[k] for k in MANAGED}
    for role, pool in spec.pools().items():
        at = f"{SERVICE_KEY}.{role}"
        clashing = sorted({a.split("=", 1)[0] for a in pool.extra_args} & managed)
        if clashing:
            found.append(Problem(
                f"{at}.extra_args", list(pool.extra_args),
                f"no flags moe-ep derives from the unit's shape ({', '.join(clashing)}): set the pool's keys instead",
                "extra-args-unmanaged",
            ))
            continue
        if pool.tensor_parallel_size > spec.gpu.per_node or spec.gpu.per_node % pool.tensor_parallel_size:
            continue  # reported by tp-within-node; the rank arithmetic assumes it holds
        for rule, message in check_launch(launch(spec, role), flag["headless"]):
            found.append(Problem(at, f"{pool.nodes_per_replica} node(s), TP {pool.tensor_parallel_size}, DP {pool.data_parallel_size}", message, rule))
    return found
