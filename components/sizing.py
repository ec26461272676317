"""Pure: how much memory a layout needs per GPU, how long it takes to load, how many GPUs.

Estimates, not facts: every formula says what it counts and what it leaves out.
"""

from __future__ import annotations

import math

from . import catalog
from .spec import PoolSpec, ServiceSpec

GB = 1e9

LOAD_GB_PER_SECOND_PER_NODE = 1.0
"""Sustained weight read rate of one node from a model cache or PVC (conservative)."""
WARMUP_MINUTES = 10
"""CUDA graph capture, DeepGEMM/FlashInfer warm-up and DP/EP handshakes after the weights load."""
MIN_STARTUP_MINUTES = 20


def weight_bytes(arch: catalog.Architecture, dtype: str) -> float:
    """Bytes of all weights at ``dtype`` (every parameter counted at the weight dtype)."""
    return arch.total_params_b * 1e9 * catalog.DTYPE_BYTES[dtype]


def gpus(pool: PoolSpec, per_node: int) -> int:
    """GPUs one replica of ``pool`` occupies."""
    return pool.nodes_per_replica * per_node


def startup_minutes(spec: ServiceSpec, pool: PoolSpec) -> int:
    """Startup-probe budget for one unit: each node reads the whole checkpoint (vLLM reads every
    shard on every rank, then keeps its part), then warms up. A stack may set it explicitly."""
    if spec.unit.startup_minutes:
        return spec.unit.startup_minutes
    load_seconds = weight_bytes(spec.model.arch, spec.model.dtype) / GB / LOAD_GB_PER_SECOND_PER_NODE
    return max(MIN_STARTUP_MINUTES, math.ceil(load_seconds / 60) + WARMUP_MINUTES)
