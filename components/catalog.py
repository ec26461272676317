"""Facts about MoE architectures and GPU products.

Every number here is public and cited next to it; nothing is estimated in this module
(estimates live in ``sizing``). Architecture facts come from each model's ``config.json`` on
Hugging Face and the model card; GPU facts from the vendor's datasheet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AttentionKind = Literal["mla", "gqa"]


@dataclass(frozen=True)
class Architecture:
    """One MoE model family, as ``config.json`` describes it."""

    key: str
    name: str
    total_params_b: float
    """Total parameters, billions (model card)."""
    active_params_b: float
    """Parameters active per token, billions (model card)."""
    layers: int
    dense_layers: int
    """Leading layers with a dense MLP instead of experts (``first_k_dense_replace``)."""
    routed_experts: int
    shared_experts: int
    experts_per_token: int
    hidden_size: int
    expert_intermediate_size: int
    """Intermediate size of one routed expert (``moe_intermediate_size``)."""
    dense_intermediate_size: int
    """Intermediate size of a dense-layer MLP (``intermediate_size``); 0 when there are none."""
    attention_heads: int
    kv_heads: int
    head_dim: int
    attention: AttentionKind
    vocab_size: int
    remote_code: bool = False
    """The model's repository carries code vLLM 0.33.0 needs to start (a tokenizer it has no built-in
    for), so it loads only with ``--trust-remote-code``."""
    kv_lora_rank: int = 0
    """MLA only: compressed KV width cached per layer."""
    qk_rope_head_dim: int = 0
    """MLA only: decoupled RoPE key width cached per layer."""
    q_lora_rank: int = 0
    """MLA only: compressed query width (``q_lora_rank``)."""
    v_head_dim: int = 0
    """MLA only: value width per head (``v_head_dim``); ``head_dim`` is the query/key width."""
    native_dtype: str = "bf16"
    """The dtype the weights are published in."""
    mtp_layers: int = 0
    """Multi-token-prediction layers after the main ones (served with vLLM's `mtp` speculative method)."""
    tied_embeddings: bool = False

    @property
    def moe_layers(self) -> int:
        return self.layers - self.dense_layers

    def kv_elements_per_token(self) -> int:
        """Cache elements one token occupies across all layers (before dtype)."""
        if self.attention == "mla":
            # MLA caches the compressed latent plus the shared RoPE key, once per layer.
            return self.layers * (self.kv_lora_rank + self.qk_rope_head_dim)
        return self.layers * 2 * self.kv_heads * self.head_dim

    def kv_bytes_per_token(self, kv_dtype: str = "bf16") -> int:
        return self.kv_elements_per_token() * DTYPE_BYTES[kv_dtype]


@dataclass(frozen=True)
class GpuProduct:
    key: str
    name: str
    memory_gb: float
    """HBM capacity as the datasheet names it ("96 GB"); sizing uses ``memory_mib``."""
    bandwidth_tbs: float
    """HBM bandwidth, TB/s."""
    bf16_tflops: float
    """Dense BF16 tensor TFLOP/s (no sparsity)."""
    fp8_tflops: float
    """Dense FP8 tensor TFLOP/s (no sparsity); 0 where the product has no FP8 tensor cores."""
    price_per_hour: float
    """Default on-demand USD per GPU-hour, a ballpark from public cloud list prices (2025);
    a stack overrides it with ``gpu.price_per_hour``."""
    node_label: str
    """Value of ``nvidia.com/gpu.product`` that GPU Feature Discovery sets on such nodes."""
    memory_mib: int = 0
    """Total device memory as CUDA reports it (nvidia-smi ``Memory-Usage`` total, MiB): what
    vLLM multiplies by ``gpu_memory_utilization``. The datasheet's "GB" is nearer GiB."""
    gpus_per_node: int = 8
    """GPUs in the vendor's standard server (HGX/DGX); a stack may say otherwise."""

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * 2**20


DTYPE_BYTES: dict[str, float] = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "int4": 0.5, "mxfp4": 0.53125}
# mxfp4: 4-bit values plus one 8-bit shared scale per 32 values = 4.25 bits.

ARCHITECTURES: dict[str, Architecture] = {
    a.key: a
    for a in (
        # huggingface.co/deepseek-ai/DeepSeek-V3/blob/main/config.json; R1 and R1-0528 share it.
        # 671B total / 37B active: DeepSeek-V3 technical report (arXiv:2412.19437), section 1.
        Architecture(
            key="deepseek-v3", name="DeepSeek-V3 / R1", total_params_b=671, active_params_b=37,
            layers=61, dense_layers=3, routed_experts=256, shared_experts=1, experts_per_token=8,
            hidden_size=7168, expert_intermediate_size=2048, dense_intermediate_size=18432,
            attention_heads=128, kv_heads=128, head_dim=192, attention="mla", vocab_size=129280,
            kv_lora_rank=512, qk_rope_head_dim=64, q_lora_rank=1536, v_head_dim=128, native_dtype="fp8",
            mtp_layers=1,
        ),
        # huggingface.co/moonshotai/Kimi-K2-Instruct/blob/main/config.json (DeepSeek-V3 layout,
        # 384 experts, 64 heads); 1.04T total / 32B active: Kimi K2 technical report
        # (arXiv:2507.20534), abstract.
        Architecture(
            key="kimi-k2", name="Kimi K2", total_params_b=1040, active_params_b=32,
            layers=61, dense_layers=1, routed_experts=384, shared_experts=1, experts_per_token=8,
            hidden_size=7168, expert_intermediate_size=2048, dense_intermediate_size=18432,
            attention_heads=64, kv_heads=64, head_dim=192, attention="mla", vocab_size=163840,
            kv_lora_rank=512, qk_rope_head_dim=64, q_lora_rank=1536, v_head_dim=128, native_dtype="fp8",
            # tokenizer_config.json: auto_map AutoTokenizer -> tokenization_kimi.TikTokenTokenizer.
            remote_code=True,
        ),
        # huggingface.co/Qwen/Qwen3-235B-A22B/blob/main/config.json; 235B / 22B from the card.
        Architecture(
            key="qwen3-235b-a22b", name="Qwen3-235B-A22B", total_params_b=235, active_params_b=22,
            layers=94, dense_layers=0, routed_experts=128, shared_experts=0, experts_per_token=8,
            hidden_size=4096, expert_intermediate_size=1536, dense_intermediate_size=0,
            attention_heads=64, kv_heads=4, head_dim=128, attention="gqa", vocab_size=151936,
        ),
        # huggingface.co/Qwen/Qwen3-30B-A3B/blob/main/config.json; 30.5B / 3.3B from the card.
        Architecture(
            key="qwen3-30b-a3b", name="Qwen3-30B-A3B", total_params_b=30.5, active_params_b=3.3,
            layers=48, dense_layers=0, routed_experts=128, shared_experts=0, experts_per_token=8,
            hidden_size=2048, expert_intermediate_size=768, dense_intermediate_size=0,
            attention_heads=32, kv_heads=4, head_dim=128, attention="gqa", vocab_size=151936,
        ),
        # huggingface.co/mistralai/Mixtral-8x7B-v0.1/blob/main/config.json; 46.7B / 12.9B from
        # Mistral's announcement "Mixtral of experts" (Dec 2023).
        Architecture(
            key="mixtral-8x7b", name="Mixtral 8x7B", total_params_b=46.7, active_params_b=12.9,
            layers=32, dense_layers=0, routed_experts=8, shared_experts=0, experts_per_token=2,
            hidden_size=4096, expert_intermediate_size=14336, dense_intermediate_size=0,
            attention_heads=32, kv_heads=8, head_dim=128, attention="gqa", vocab_size=32000,
        ),
        # huggingface.co/mistralai/Mixtral-8x22B-v0.1/blob/main/config.json; 141B / 39B from
        # Mistral's announcement "Cheaper, Better, Faster, Stronger" (Apr 2024).
        Architecture(
            key="mixtral-8x22b", name="Mixtral 8x22B", total_params_b=141, active_params_b=39,
            layers=56, dense_layers=0, routed_experts=8, shared_experts=0, experts_per_token=2,
            hidden_size=6144, expert_intermediate_size=16384, dense_intermediate_size=0,
            attention_heads=48, kv_heads=8, head_dim=128, attention="gqa", vocab_size=32768,
        ),
        # huggingface.co/openai/gpt-oss-120b/blob/main/config.json; 117B / 5.1B and MXFP4 expert
        # weights from OpenAI's gpt-oss model card (Aug 2025).
        Architecture(
            key="gpt-oss-120b", name="gpt-oss-120b", total_params_b=117, active_params_b=5.1,
            layers=36, dense_layers=0, routed_experts=128, shared_experts=0, experts_per_token=4,
            hidden_size=2880, expert_intermediate_size=2880, dense_intermediate_size=0,
            attention_heads=64, kv_heads=8, head_dim=64, attention="gqa", vocab_size=201088,
            native_dtype="mxfp4",
        ),
        # huggingface.co/zai-org/GLM-4.5/blob/main/config.json; 355B / 32B from the model card.
        Architecture(
            key="glm-4.5", name="GLM-4.5", total_params_b=355, active_params_b=32,
            layers=92, dense_layers=3, routed_experts=160, shared_experts=1, experts_per_token=8,
            hidden_size=5120, expert_intermediate_size=1536, dense_intermediate_size=12288,
            attention_heads=96, kv_heads=8, head_dim=128, attention="gqa", vocab_size=151552,
            mtp_layers=1,
        ),
    )
}

GPUS: dict[str, GpuProduct] = {
    g.key: g
    for g in (
        # NVIDIA H20 (China SKU): 96 GB HBM3, 4.0 TB/s, 148 TFLOP/s BF16 / 296 FP8 dense
        # (NVIDIA H20 product brief, 2024). nvidia-smi reports 97871 MiB ("NVIDIA H20").
        GpuProduct("h20", "NVIDIA H20 96GB", 96, 4.0, 148, 296, 1.9, "NVIDIA-H20", memory_mib=97871),
        # H20 refresh with 141 GB HBM3e, 4.8 TB/s, same compute (vendor listings, 2024-2025).
        # Same HBM3e stacks as H200, so the same 143771 MiB is assumed.
        GpuProduct("h20-141gb", "NVIDIA H20 141GB", 141, 4.8, 148, 296, 2.2, "NVIDIA-H20-141GB", memory_mib=143771),
        # NVIDIA H100 SXM5 datasheet: 80 GB HBM3, 3.35 TB/s, 989 BF16 / 1979 FP8 dense.
        # nvidia-smi reports 81559 MiB ("NVIDIA H100 80GB HBM3").
        GpuProduct("h100-80gb", "NVIDIA H100 SXM 80GB", 80, 3.35, 989, 1979, 3.0, "NVIDIA-H100-80GB-HBM3", memory_mib=81559),
        # NVIDIA H200 SXM datasheet: 141 GB HBM3e, 4.8 TB/s, same compute as H100 SXM.
        # nvidia-smi reports 143771 MiB ("NVIDIA H200").
        GpuProduct("h200", "NVIDIA H200 SXM 141GB", 141, 4.8, 989, 1979, 3.8, "NVIDIA-H200", memory_mib=143771),
        # NVIDIA H800 SXM: H100 silicon with reduced NVLink; 80 GB HBM3, 3.35 TB/s; 81559 MiB.
        GpuProduct("h800", "NVIDIA H800 SXM 80GB", 80, 3.35, 989, 1979, 2.8, "NVIDIA-H800", memory_mib=81559),
        # NVIDIA A100 80GB SXM datasheet: 2.039 TB/s, 312 BF16 dense, no FP8 tensor cores.
        # nvidia-smi reports 81920 MiB ("NVIDIA A100-SXM4-80GB").
        GpuProduct("a100-80gb", "NVIDIA A100 SXM 80GB", 80, 2.039, 312, 0, 1.8, "NVIDIA-A100-SXM4-80GB", memory_mib=81920),
        # NVIDIA DGX B200 datasheet: 1,440 GB over 8 GPUs = 180 GB each, 8 TB/s; HGX B200 dense
        # 2.25 PFLOP/s BF16 and 4.5 FP8 per GPU (sparsity halved). nvidia-smi: 183359 MiB.
        GpuProduct("b200", "NVIDIA B200 180GB", 180, 8.0, 2250, 4500, 6.0, "NVIDIA-B200", memory_mib=183359),
        # NVIDIA L40S datasheet: 48 GB GDDR6, 864 GB/s, 362 BF16 / 733 FP8 dense.
        # nvidia-smi reports 46068 MiB ("NVIDIA L40S"); PCIe cards, 4 or 8 per server.
        GpuProduct("l40s", "NVIDIA L40S 48GB", 48, 0.864, 362, 733, 1.0, "NVIDIA-L40S", memory_mib=46068),
    )
}


def architecture(key: str) -> Architecture:
    return ARCHITECTURES[key]


def gpu(key: str) -> GpuProduct:
    return GPUS[key]
