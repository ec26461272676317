"""Pure: a pool's spec and role -> the argv and environment of every rank's `vllm serve`.

Multi-node units use vLLM's native multi-node data parallelism (no Ray): rank 0 (the LWS
leader) serves the API and coordinates DP over ``--data-parallel-address``; every other node runs
``--headless`` and owns the DP ranks ``[worker_index × local, (worker_index + 1) × local)``.

Kubernetes expands ``$(VAR)`` in args but cannot do arithmetic, so a worker's start rank is
computed by a one-line ``sh -c`` wrapper around the real argv (see :func:`worker_container`):
the argv itself stays a plain list that tests feed to vLLM's parser.

Flags are looked up per vLLM version in :data:`FLAGS`; supporting a new vLLM release is a new
entry there, not new code.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from types import MappingProxyType

from .api_key import api_key_env
from .spec import DEEPEP_BACKENDS, PoolSpec, ServiceSpec

SERVE_PORT = 8000
"""The port a unit's rank 0 serves on (vLLM itself, or the routing sidecar in front of it)."""
BEHIND_SIDECAR_PORT = 8200
"""vLLM's port when the llm-d routing sidecar takes SERVE_PORT (decode pods behind the llm-d router)."""


def behind_sidecar(spec: ServiceSpec, role: str) -> bool:
    """Decode units behind the llm-d router get its routing sidecar, which runs the prefill step."""
    return role == "decode" and spec.router_mode == "llm-d"


def vllm_port(spec: ServiceSpec, role: str) -> int:
    return BEHIND_SIDECAR_PORT if behind_sidecar(spec, role) else SERVE_PORT

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
        "data_parallel_start_rank": "--data-parallel-start-rank",
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
        "no_prefix_caching": "--no-enable-prefix-caching",
        "trust_remote_code": "--trust-remote-code",
    }),
})
SUPPORTED_VERSIONS = tuple(FLAGS)
LATEST_VERSION = SUPPORTED_VERSIONS[-1]

_TAG = re.compile(r":v?(\d+\.\d+\.\d+)(?:[-+][\w.]*)?(?:@sha256:[0-9a-f]{64})?$")


def image_version(image: str) -> str | None:
    """The vLLM version an image tag pins (``vllm/vllm-openai:v0.33.0`` -> ``0.33.0``), if any."""
    match = _TAG.search(image)
    return match.group(1) if match else None


def flags_for(image: str) -> MappingProxyType[str, str]:
    """Flag spellings for the image's vLLM version; the newest known set for unknown versions
    (the policy pack flags images whose version we do not emit flags for)."""
    return FLAGS.get(image_version(image) or "", FLAGS[LATEST_VERSION])


@dataclass(frozen=True)
class Launch:
    """How one unit of a pool starts: rank 0's argv, the other ranks' argv, and the shared env."""

    role: str
    leader: tuple[str, ...]
    worker: tuple[str, ...] | None
    env: tuple[dict, ...]
    data_parallel_size_local: int
    nodes: int

    def start_ranks(self) -> tuple[int, ...]:
        """DP start rank of every node of the unit, rank 0 first."""
        return tuple(i * self.data_parallel_size_local for i in range(self.nodes))


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
            "method": model.arch.mtp_method,
            "num_speculative_tokens": pool.mtp.num_speculative_tokens,
        })]
    args += [
        flag["max_model_len"], str(model.max_model_len),
        flag["gpu_memory_utilization"], f"{pool.gpu_memory_utilization:g}",
    ]
    if model.kv_cache_dtype != "auto":
        args += [flag["kv_cache_dtype"], model.kv_cache_dtype]
    if model.trust_remote_code:
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


def _env(spec: ServiceSpec, pool: PoolSpec) -> tuple[dict, ...]:
    """Environment for every rank: the API key (by reference), interfaces for NCCL/Gloo/UCX,
    the NIXL side channel, DeepEP."""
    ifname = spec.unit.comm_interface
    env = [
        api_key_env(spec.name),
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "VLLM_HOST_IP", "value": "$(POD_IP)"},
        {"name": "NCCL_SOCKET_IFNAME", "value": ifname},
        {"name": "GLOO_SOCKET_IFNAME", "value": ifname},
    ]
    if spec.disaggregated:
        env += [
            {"name": "UCX_NET_DEVICES", "value": ifname},
            {"name": "VLLM_NIXL_SIDE_CHANNEL_HOST", "value": "$(POD_IP)"},
            {"name": "VLLM_NIXL_SIDE_CHANNEL_PORT", "value": str(spec.kv_transfer.side_channel_port)},
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
    leader = ["vllm", "serve", spec.model.id, flag["served_model_name"], served, flag["port"], str(vllm_port(spec, role))]
    worker: list[str] | None = None
    if pool.nodes_per_replica > 1:
        multi = [
            flag["data_parallel_size_local"], str(local),
            flag["data_parallel_address"], "$(LWS_LEADER_ADDRESS)",
            flag["data_parallel_rpc_port"], str(spec.unit.dp_rpc_port),
        ]
        worker = ["vllm", "serve", spec.model.id, flag["headless"], *common, *multi]
        leader += [*common, *multi]
    else:
        leader += common
    return Launch(
        role=role,
        leader=tuple(leader),
        worker=tuple(worker) if worker else None,
        env=_env(spec, pool),
        data_parallel_size_local=local,
        nodes=pool.nodes_per_replica,
    )


def worker_container(launch_: Launch, start_rank_flag: str = "--data-parallel-start-rank") -> tuple[list[str], list[str]]:
    """(command, args) for a worker container: ``sh -c`` appends the start rank computed from
    ``LWS_WORKER_INDEX`` (Kubernetes cannot multiply) and ``exec``s the real argv unchanged."""
    if launch_.worker is None:
        raise ValueError(f"{launch_.role}: a single-node unit has no workers")
    script = (
        f'exec "$@" {start_rank_flag} '
        f'"$((LWS_WORKER_INDEX * {launch_.data_parallel_size_local}))"'
    )
    return ["/bin/sh", "-c", script, "vllm-worker"], list(launch_.worker)


def worker_argv(launch_: Launch, worker_index: int, start_rank_flag: str = "--data-parallel-start-rank") -> tuple[str, ...]:
    """The argv the wrapper ``exec``s on worker ``worker_index`` (what vLLM's parser sees)."""
    if launch_.worker is None:
        raise ValueError(f"{launch_.role}: a single-node unit has no workers")
    return (*launch_.worker, start_rank_flag, str(worker_index * launch_.data_parallel_size_local))
