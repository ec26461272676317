"""Pure: memory fit per GPU, KV-cache capacity, EP size, throughput, GPUs and cost.

Estimates, not facts: every formula says what it counts and what it leaves out. The facts it
starts from (parameter shapes, GPU memory, prices) live in ``catalog``.

What one GPU holds, as vLLM 0.33 lays a model out over TP × DP ranks:

- routed experts: over all TP × DP ranks. With expert parallelism each rank holds whole experts,
  ``ceil((experts + redundant) / EP)`` of them per MoE layer; without it every expert is split
  over the same TP × DP ranks (vLLM's fused-MoE "flattens" TP over DP).
- attention, shared experts, dense-layer MLPs, embeddings and the LM head: split over TP and
  **replicated on every DP rank** (TP = 1: each GPU holds them whole). The router is replicated.
- MLA also keeps ``kv_b_proj`` dequantized a second time as the absorbed W_UK/W_UV (BF16).
- not counted: norms and biases (< 0.01 %), quantization scales (FP8 128×128 blocks: 0.02 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import catalog
from .spec import PoolSpec, ServiceSpec

GB = 1e9

LOAD_GB_PER_SECOND_PER_NODE = 1.0
"""Sustained weight read rate of one node from a model cache or PVC (conservative)."""
WARMUP_MINUTES = 10
"""CUDA graph capture, DeepGEMM/FlashInfer warm-up and DP/EP handshakes after the weights load."""
MIN_STARTUP_MINUTES = 20

# --- runtime reserve: what vLLM's memory profile takes out of the budget besides weights ------
CUDA_GRAPH_GB = 1.0
"""CUDA graphs at vLLM's default capture sizes: vLLM logs 0.5-1.5 GiB for MoE models."""
NON_TORCH_GB = 0.5
"""CUDA context, cuBLAS/cuDNN workspaces: memory outside PyTorch's allocator on one rank."""
NCCL_GB = 0.5
"""NCCL communicator buffers once a unit has more than one GPU."""
DEEPEP_GB = 2.0
"""DeepEP's NVSHMEM dispatch/combine buffers (deepep_* all2all backends), per rank."""
ACTIVATION_BYTES = 2
"""Activations are BF16."""
LOGIT_BYTES = 8
"""The sampler's FP32 logits plus probabilities, per vocabulary entry and sequence."""

# vLLM 0.33 arg_utils defaults for `vllm serve`: on GPUs with >= 70 GiB (not A100) 8192 batched
# tokens and 1024 sequences, else 2048 and 256.
_LARGE_GPU_MIB = 70 * 1024

# --- roofline efficiencies (fractions of the datasheet peak a well-tuned vLLM reaches) ---------
PREFILL_MFU = 0.4
"""Prefill: DeepSeek reports ~9.2k tokens/s per H800 (its 2025 inference-system overview);
37B active × 2 FLOP × 9.2k ≈ 0.35-0.4 of FP8 peak."""
DECODE_MFU = 0.3
"""Decode attention and small-batch GEMMs reach less of the peak."""
DECODE_MBU = 0.6
"""Decode reads weights and KV cache at ~60 % of datasheet bandwidth."""


def weight_bytes(arch: catalog.Architecture, dtype: str) -> float:
    """Bytes of the whole checkpoint at ``dtype`` (see :func:`weights_per_gpu` for what counts;
    the absorbed MLA copy is made at load time, so it is left out here)."""
    whole = weights_per_gpu(arch, dtype, Layout(tensor_parallel=1, data_parallel=1)).total
    return whole - parameters(arch).mla_absorbed * catalog.DTYPE_BYTES["bf16"]


def gpus(pool: PoolSpec, per_node: int) -> int:
    """GPUs one replica of ``pool`` occupies."""
    return pool.nodes_per_replica * per_node


def startup_minutes(spec: ServiceSpec, pool: PoolSpec) -> int:
    """Startup-probe budget for one unit: each node reads the whole checkpoint (vLLM reads every
    shard on every rank, then keeps its part), then warms up. A stack may set it explicitly."""
    return spec.unit.startup_minutes or load_minutes(spec.model.arch, spec.model.dtype)


def load_minutes(arch: catalog.Architecture, dtype: str) -> int:
    """Estimated minutes from container start to ready: read the checkpoint, then warm up."""
    load_seconds = weight_bytes(arch, dtype) / GB / LOAD_GB_PER_SECOND_PER_NODE
    return max(MIN_STARTUP_MINUTES, math.ceil(load_seconds / 60) + WARMUP_MINUTES)


# --- parameters -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parameters:
    """Parameter counts of a model by how vLLM places them (from ``config.json`` shapes)."""

    routed_expert: int
    """One routed expert in one MoE layer (gate, up and down projections)."""
    routed_experts: int
    """All routed experts of all MoE layers."""
    shared_experts: int
    dense_mlp: int
    attention: int
    mla_absorbed: int
    """MLA: ``kv_b_proj`` again, as vLLM's absorbed W_UK/W_UV (kept in BF16); else 0."""
    router: int
    embeddings: int
    """Input embeddings plus the LM head (once when tied)."""

    @property
    def total(self) -> int:
        return (self.routed_experts + self.shared_experts + self.dense_mlp + self.attention
                + self.router + self.embeddings)


def parameters(arch: catalog.Architecture, mtp: bool = False) -> Parameters:
    """Counts from the architecture's shapes. ``mtp``: the multi-token-prediction layers are
    loaded too (vLLM loads them only for MTP speculative decoding); each counts as one MoE layer."""
    h = arch.hidden_size
    moe_layers = arch.moe_layers + (arch.mtp_layers if mtp else 0)
    layers = arch.layers + (arch.mtp_layers if mtp else 0)
    expert = 3 * h * arch.expert_intermediate_size
    if arch.attention == "mla":
        qk_nope = arch.head_dim - arch.qk_rope_head_dim
        kv_b = arch.kv_lora_rank * arch.attention_heads * (qk_nope + arch.v_head_dim)
        per_layer = (
            h * arch.q_lora_rank + arch.q_lora_rank * arch.attention_heads * arch.head_dim  # q_a, q_b
            + h * (arch.kv_lora_rank + arch.qk_rope_head_dim) + kv_b  # kv_a (latent + RoPE key), kv_b
            + arch.attention_heads * arch.v_head_dim * h  # o_proj
        )
        absorbed = kv_b * layers
    else:
        per_layer = 2 * h * arch.attention_heads * arch.head_dim + 2 * h * arch.kv_heads * arch.head_dim
        absorbed = 0
    return Parameters(
        routed_expert=expert,
        routed_experts=expert * arch.routed_experts * moe_layers,
        shared_experts=expert * arch.shared_experts * moe_layers,
        dense_mlp=3 * h * arch.dense_intermediate_size * arch.dense_layers,
        attention=per_layer * layers,
        mla_absorbed=absorbed,
        router=h * arch.routed_experts * moe_layers,
        embeddings=arch.vocab_size * h * (1 if arch.tied_embeddings else 2),
    )


def _expert_bytes(arch: catalog.Architecture, dtype: str) -> float:
    """Bytes per routed-expert parameter: 4-bit checkpoints quantize the experts (gpt-oss ships
    them as MXFP4; INT4 uses group-32 BF16 scales = 4.5 bits, as in Kimi K2 Thinking)."""
    if arch.native_dtype == "mxfp4" and dtype != "bf16":
        return catalog.DTYPE_BYTES["mxfp4"]
    if dtype == "int4":
        return 4.5 / 8
    return catalog.DTYPE_BYTES[dtype]


def _linear_bytes(arch: catalog.Architecture, dtype: str) -> float:
    """Bytes per attention/shared/dense parameter: FP8 checkpoints quantize every linear layer;
    4-bit ones keep everything but the experts in BF16."""
    if dtype == "fp8" and arch.native_dtype != "mxfp4":
        return catalog.DTYPE_BYTES["fp8"]
    return catalog.DTYPE_BYTES["bf16"]


# --- layout and memory ------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """How one unit (one vLLM instance) spreads a model over its GPUs."""

    tensor_parallel: int
    data_parallel: int
    expert_parallel: bool = False
    redundant_experts: int = 0
    mtp: bool = False

    @property
    def gpus(self) -> int:
        return self.tensor_parallel * self.data_parallel

    @property
    def ep(self) -> int | None:
        return self.gpus if self.expert_parallel else None

    @classmethod
    def of(cls, pool: PoolSpec) -> "Layout":
        return cls(pool.tensor_parallel_size, pool.data_parallel_size, pool.expert_parallel,
                   pool.redundant_experts, pool.mtp is not None)


@dataclass(frozen=True)
class Weights:
    """Weight bytes on the fullest GPU of a layout, by kind."""

    routed_experts: float
    experts_per_gpu: float
    """Routed experts per MoE layer on that GPU (fractional when experts are split by TP)."""
    shared_experts: float
    dense_mlp: float
    attention: float
    embeddings: float
    router: float

    @property
    def total(self) -> float:
        return (self.routed_experts + self.shared_experts + self.dense_mlp + self.attention
                + self.embeddings + self.router)


def weights_per_gpu(arch: catalog.Architecture, dtype: str, layout: Layout) -> Weights:
    """Bytes of weights the fullest GPU of ``layout`` holds (see the module docstring)."""
    p = parameters(arch, layout.mtp)
    tp = layout.tensor_parallel
    expert_bytes, linear_bytes, bf16 = _expert_bytes(arch, dtype), _linear_bytes(arch, dtype), catalog.DTYPE_BYTES["bf16"]
    moe_layers = arch.moe_layers + (arch.mtp_layers if layout.mtp else 0)
    if layout.expert_parallel:
        # Whole experts per rank; vLLM gives the remainder to the first ranks.
        per_gpu = math.ceil((arch.routed_experts + layout.redundant_experts) / layout.gpus)
    else:
        per_gpu = arch.routed_experts / layout.gpus
    return Weights(
        routed_experts=per_gpu * moe_layers * p.routed_expert * expert_bytes,
        experts_per_gpu=per_gpu,
        shared_experts=p.shared_experts * linear_bytes / tp,
        dense_mlp=p.dense_mlp * linear_bytes / tp,
        attention=(p.attention * linear_bytes + p.mla_absorbed * bf16) / tp,
        embeddings=p.embeddings * bf16 / tp,
        router=p.router * bf16,
    )


def kv_dtype(arch: catalog.Architecture, kv_cache_dtype: str) -> str:
    """``auto`` follows the model's activation dtype, BF16 for every catalog model."""
    return "bf16" if kv_cache_dtype == "auto" else kv_cache_dtype


def kv_bytes_per_token(arch: catalog.Architecture, tensor_parallel: int, kv_cache_dtype: str = "auto") -> float:
    """KV-cache bytes one token occupies on each GPU of a TP group.

    MLA caches one latent (plus RoPE key) per layer, and every TP rank holds all of it: vLLM does
    not shard the MLA cache over TP. GQA splits the KV heads over TP; past TP = kv_heads each rank
    holds one head (replicated). Sliding-window layers (gpt-oss) are counted as full: conservative.
    """
    element = catalog.DTYPE_BYTES[kv_dtype(arch, kv_cache_dtype)]
    if arch.attention == "mla":
        return arch.layers * (arch.kv_lora_rank + arch.qk_rope_head_dim) * element
    heads = math.ceil(arch.kv_heads / tensor_parallel)
    return arch.layers * 2 * heads * arch.head_dim * element


@dataclass(frozen=True)
class Workload:
    """What one unit is asked to hold: context length and vLLM's batch settings."""

    max_model_len: int = 32768
    gpu_memory_utilization: float = 0.9
    kv_cache_dtype: str = "auto"
    max_num_batched_tokens: int | None = None
    max_num_seqs: int | None = None
    all2all_backend: str | None = None

    def batched_tokens(self, gpu: catalog.GpuProduct) -> int:
        return self.max_num_batched_tokens or (8192 if _large(gpu) else 2048)

    def seqs(self, gpu: catalog.GpuProduct) -> int:
        return self.max_num_seqs or (1024 if _large(gpu) else 256)


def _large(gpu: catalog.GpuProduct) -> bool:
    return gpu.memory_mib >= _LARGE_GPU_MIB and not gpu.key.startswith("a100")


@dataclass(frozen=True)
class Reserve:
    """Memory vLLM's profile run takes besides weights, per GPU."""

    activations: float
    cuda_graphs: float
    communication: float
    non_torch: float

    @property
    def total(self) -> float:
        return self.activations + self.cuda_graphs + self.communication + self.non_torch


def runtime_reserve(arch: catalog.Architecture, gpu: catalog.GpuProduct, layout: Layout, workload: Workload) -> Reserve:
    """Peak activations of one ``max_num_batched_tokens`` forward (hidden states, attention and
    the routed experts' intermediate for ``experts_per_token`` experts), the sampler's logits for
    ``max_num_seqs`` sequences, CUDA graphs and communication buffers (documented constants)."""
    tokens = workload.batched_tokens(gpu)
    per_token = 8 * arch.hidden_size + 3 * arch.experts_per_token * arch.expert_intermediate_size
    activations = tokens * per_token * ACTIVATION_BYTES + workload.seqs(gpu) * arch.vocab_size * LOGIT_BYTES
    communication = NCCL_GB * GB if layout.gpus > 1 else 0.0
    if layout.expert_parallel and (workload.all2all_backend or "").startswith("deepep"):
        communication += DEEPEP_GB * GB
    return Reserve(activations, CUDA_GRAPH_GB * GB, communication, NON_TORCH_GB * GB)


@dataclass(frozen=True)
class Fit:
    """Whether a layout holds its weights, runtime reserve and one ``max_model_len`` sequence."""

    fits: bool
    gpu_memory_gb: float
    """Device memory as CUDA reports it."""
    budget_gb: float
    """``gpu_memory_utilization`` × device memory: all vLLM may use."""
    weights_gb: float
    reserve_gb: float
    kv_cache_gb: float
    """Budget left for the KV cache per GPU (negative: the weights do not fit)."""
    sequence_gb: float
    """KV cache of one ``max_model_len`` sequence per GPU."""
    margin_gb: float
    """``kv_cache_gb - sequence_gb``: how far from not fitting (negative: by how much it misses)."""
    kv_tokens: int
    """KV-cache capacity of one DP rank (a sequence lives on one DP rank), tokens."""
    kv_tokens_per_unit: int
    max_model_len: int
    weights: Weights
    reserve: Reserve
    layout: Layout
    message: str


def fit_layout(arch: catalog.Architecture, gpu: catalog.GpuProduct, dtype: str, layout: Layout,
               workload: Workload = Workload()) -> Fit:
    """Memory verdict for one unit of ``layout`` on ``gpu``."""
    weights = weights_per_gpu(arch, dtype, layout)
    reserve = runtime_reserve(arch, gpu, layout, workload)
    budget = workload.gpu_memory_utilization * gpu.memory_bytes
    kv_cache = budget - weights.total - reserve.total
    per_token = kv_bytes_per_token(arch, layout.tensor_parallel, workload.kv_cache_dtype)
    tokens = max(0, int(kv_cache // per_token))
    sequence = workload.max_model_len * per_token
    margin = kv_cache - sequence
    fits = margin >= 0
    where = (f"{weights.total / GB:.1f} GB weights + {reserve.total / GB:.1f} GB runtime reserve per GPU "
             f"of a {budget / GB:.1f} GB budget ({workload.gpu_memory_utilization:g} × {gpu.memory_bytes / GB:.1f} GB {gpu.name})")
    if kv_cache <= 0:
        message = f"does not fit: {where}; over by {-kv_cache / GB:.1f} GB before any KV cache"
    elif not fits:
        message = (f"does not fit: {where} leave {kv_cache / GB:.1f} GB = {tokens:,} tokens of KV cache per DP rank; "
                   f"one {workload.max_model_len:,}-token sequence needs {sequence / GB:.1f} GB")
    else:
        message = (f"fits: {where} leave {kv_cache / GB:.1f} GB = {tokens:,} tokens of KV cache per DP rank; "
                   f"one {workload.max_model_len:,}-token sequence needs {sequence / GB:.1f} GB (margin {margin / GB:.1f} GB)")
    return Fit(
        fits=fits, gpu_memory_gb=gpu.memory_bytes / GB, budget_gb=budget / GB, weights_gb=weights.total / GB,
        reserve_gb=reserve.total / GB, kv_cache_gb=kv_cache / GB, sequence_gb=sequence / GB, margin_gb=margin / GB,
        kv_tokens=tokens, kv_tokens_per_unit=tokens * layout.data_parallel, max_model_len=workload.max_model_len,
        weights=weights, reserve=reserve, layout=layout, message=message,
    )


def workload_of(spec: ServiceSpec, pool: PoolSpec) -> Workload:
    return Workload(spec.model.max_model_len, pool.gpu_memory_utilization, spec.model.kv_cache_dtype,
                    pool.max_num_batched_tokens, pool.max_num_seqs, pool.all2all_backend)


def fit(spec: ServiceSpec, role: str) -> Fit:
    """Memory verdict for the ``role`` pool (``prefill`` or ``decode``) of a stack: the one
    function the memory-fit policy calls."""
    pool = spec.pools()[role]
    return fit_layout(spec.model.arch, spec.gpu.info, spec.model.dtype, Layout.of(pool), workload_of(spec, pool))


# --- choosing a layout ------------------------------------------------------------------------


def layouts(arch: catalog.Architecture, per_node: int, nodes: int) -> list[Layout]:
    """The layouts vLLM accepts on ``nodes`` × ``per_node`` GPUs: TP inside a node dividing the
    attention heads, DP = the rest; experts sharded by EP, or by TP alone when DP = 1."""
    found = []
    for tp in range(1, per_node + 1):
        if per_node % tp or arch.attention_heads % tp:
            continue
        dp = nodes * per_node // tp
        if dp == 1:
            found.append(Layout(tp, dp, expert_parallel=False))
        found.append(Layout(tp, dp, expert_parallel=True))
    return found


def minimal_ep(arch: catalog.Architecture, gpu: catalog.GpuProduct, dtype: str, per_node: int,
               workload: Workload = Workload(), max_nodes: int = 16) -> int | None:
    """The smallest EP (TP 1, DP = EP = whole nodes) whose units fit, or None within ``max_nodes``."""
    for nodes in range(1, max_nodes + 1):
        layout = Layout(1, nodes * per_node, expert_parallel=True)
        if fit_layout(arch, gpu, dtype, layout, workload).fits:
            return layout.gpus
    return None


def smallest_unit(arch: catalog.Architecture, gpu: catalog.GpuProduct, dtype: str, per_node: int, role: str,
                  workload: Workload = Workload(), max_nodes: int = 8) -> Fit | None:
    """The fitting layout on the fewest nodes, or None within ``max_nodes``. Among layouts on that
    many nodes, prefill takes the widest TP (compute-bound; TP shards attention, fewer DP ranks
    to feed) and decode the narrowest (DP × EP: each rank batches on its own, wide EP)."""
    for nodes in range(1, max_nodes + 1):
        fitting = [f for f in (fit_layout(arch, gpu, dtype, layout, workload) for layout in layouts(arch, per_node, nodes)) if f.fits]
        if fitting:
            if role == "prefill":
                return min(fitting, key=lambda f: (-f.layout.tensor_parallel, f.layout.expert_parallel))
            return min(fitting, key=lambda f: (f.layout.tensor_parallel, not f.layout.expert_parallel))
    return None


# --- throughput -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """Measured tokens/s per GPU (e.g. from vLLM's benchmark_serving); overrides the roofline."""

    prefill_tokens_per_second: float
    decode_tokens_per_second: float


@dataclass(frozen=True)
class Throughput:
    """Tokens/s per GPU of a layout in one role."""

    tokens_per_second_per_gpu: float
    batch: int
    """Decode: sequences per DP rank per step (KV capacity and max_num_seqs bound it); prefill 0."""
    source: str
    """``roofline`` or ``profile``."""


def _compute_tflops(gpu: catalog.GpuProduct, dtype: str) -> float:
    return gpu.fp8_tflops if dtype in ("fp8", "int4") and gpu.fp8_tflops else gpu.bf16_tflops


def _attention_flops(arch: catalog.Architecture, context: float, decode: bool) -> float:
    """FLOPs of attention scores and values for one token over ``context`` earlier tokens. MLA
    decode runs absorbed (over the latent); MLA prefill over full heads."""
    if arch.attention == "mla":
        width = (2 * arch.kv_lora_rank + arch.qk_rope_head_dim) if decode else (arch.head_dim + arch.v_head_dim)
    else:
        width = 2 * arch.head_dim
    return 2 * arch.layers * arch.attention_heads * width * context


def prefill_throughput(arch: catalog.Architecture, gpu: catalog.GpuProduct, dtype: str, input_len: int) -> Throughput:
    """Compute-bound: 2 FLOPs per active parameter plus causal attention over input_len / 2."""
    flops = 2 * arch.active_params_b * 1e9 + _attention_flops(arch, input_len / 2, decode=False)
    rate = _compute_tflops(gpu, dtype) * 1e12 * PREFILL_MFU
    return Throughput(rate / flops, 0, "roofline")


def decode_throughput(arch: catalog.Architecture, gpu: catalog.GpuProduct, dtype: str, fitted: Fit,
                      input_len: int, output_len: int, workload: Workload = Workload()) -> Throughput:
    """One decode step per DP rank of ``batch`` sequences: the slower of reading every weight on
    the GPU plus the batch's KV cache (bandwidth) and the step's FLOPs (compute). All-to-all and
    scheduling overheads are not modelled."""
    layout = fitted.layout
    context = input_len + output_len / 2
    per_token_kv = kv_bytes_per_token(arch, layout.tensor_parallel, workload.kv_cache_dtype)
    batch = min(workload.seqs(gpu), int(fitted.kv_tokens // max(context, 1)))
    if batch < 1:
        return Throughput(0.0, 0, "roofline")
    read = fitted.weights.total + batch * context * per_token_kv
    memory_seconds = read / (gpu.bandwidth_tbs * 1e12 * DECODE_MBU)
    flops = batch * (2 * arch.active_params_b * 1e9 + _attention_flops(arch, context, decode=True)) / layout.tensor_parallel
    compute_seconds = flops / (_compute_tflops(gpu, dtype) * 1e12 * DECODE_MFU)
    step = max(memory_seconds, compute_seconds)
    return Throughput(batch / step / layout.tensor_parallel, batch, "roofline")


# --- capacity and cost ------------------------------------------------------------------------


TYPICAL_INPUT_LEN = 2048
TYPICAL_OUTPUT_LEN = 512
"""Request shape assumed for throughput figures when no traffic is given (a chat-like request)."""


@dataclass(frozen=True)
class Demand:
    """Traffic to serve: requests per second with mean input and output lengths (tokens)."""

    rate: float
    input_len: int
    output_len: int


@dataclass(frozen=True)
class Capacity:
    """Units per role for a demand, the PD ratio they imply, and what they cost."""

    prefill_units: int
    decode_units: int
    gpus: int
    cost_per_hour: float
    cost_per_million_tokens: float
    """Input plus output tokens, at the demanded rate."""

    @property
    def pd_ratio(self) -> str:
        return f"{self.prefill_units}:{self.decode_units}"


def units_for(tokens_per_second: float, per_gpu: float, gpus_per_unit: int) -> int:
    """Units needed to produce ``tokens_per_second`` (at least one)."""
    if per_gpu <= 0:
        raise ValueError("throughput per GPU must be positive")
    ratio = tokens_per_second / (per_gpu * gpus_per_unit)
    if math.isnan(ratio):  # inf / inf: both figures overflowed (an infinite ratio overflows in ceil)
        raise OverflowError(f"{tokens_per_second} tokens/s over {per_gpu} tokens/s per GPU x {gpus_per_unit} GPUs")
    return max(1, math.ceil(ratio))


def cost_per_hour(gpu_count: int, price_per_gpu_hour: float) -> float:
    return gpu_count * price_per_gpu_hour


def cost_per_million_tokens(hourly: float, tokens_per_second: float) -> float:
    millions_per_hour = tokens_per_second * 3600 / 1e6  # 0 also when a tiny rate underflows
    return hourly / millions_per_hour if millions_per_hour > 0 else math.inf


def capacity(demand: Demand, prefill: Throughput, prefill_gpus: int, decode: Throughput, decode_gpus: int,
             price_per_gpu_hour: float) -> Capacity:
    """Prefill units produce ``rate × input_len`` tokens/s, decode units ``rate × output_len``."""
    p = units_for(demand.rate * demand.input_len, prefill.tokens_per_second_per_gpu, prefill_gpus)
    d = units_for(demand.rate * demand.output_len, decode.tokens_per_second_per_gpu, decode_gpus)
    total = p * prefill_gpus + d * decode_gpus
    hourly = cost_per_hour(total, price_per_gpu_hour)
    tokens = demand.rate * (demand.input_len + demand.output_len)
    return Capacity(p, d, total, hourly, cost_per_million_tokens(hourly, tokens))


def price(spec: ServiceSpec) -> float:
    """USD per GPU-hour: the stack's ``gpu.price_per_hour`` or the catalog's ballpark."""
    return spec.gpu.price_per_hour or spec.gpu.info.price_per_hour
