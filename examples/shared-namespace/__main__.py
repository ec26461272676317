"""Another team's program: a chat model (PD-disaggregated DeepSeek-R1) and a small coder model
(decode-only Qwen3-30B-A3B) side by side in one namespace, built from the moe-ep library.

The specs are written in code here; they could as well come from this program's own config.
One namespace, so one creator: `chat` creates it (its Pod Security labels admit both services'
pods: neither needs RDMA, so `enforce: baseline`); `coder` sets `create_namespace: False` and waits for it.
"""

import pulumi

from components import MoEEPService, ServiceSpec

NAMESPACE = "team-llm"
IMAGE = "vllm/vllm-openai:v0.33.0"

chat = ServiceSpec.model_validate({
    "name": "chat", "namespace": NAMESPACE, "image": IMAGE,
    "model": {"id": "deepseek-ai/DeepSeek-R1-0528", "architecture": "deepseek-v3", "max_model_len": 65536},
    "gpu": {"product": "h200", "per_node": 8},
    "prefill": {"tensor_parallel_size": 8},
    "decode": {"data_parallel_size": 8, "expert_parallel": True, "eplb": {"num_redundant_experts": 32}},
})
coder = ServiceSpec.model_validate({
    "name": "coder", "namespace": NAMESPACE, "create_namespace": False, "image": IMAGE,
    "model": {"id": "Qwen/Qwen3-30B-A3B", "architecture": "qwen3-30b-a3b", "dtype": "bf16"},
    "gpu": {"product": "h100-80gb", "per_node": 2},
    "decode": {"replicas": 2, "data_parallel_size": 2, "expert_parallel": True},
})

chat_service = MoEEPService(chat.name, chat)
services = [chat_service, MoEEPService(coder.name, coder, pulumi.ResourceOptions(depends_on=[chat_service.namespace]))]
pulumi.export("services", [s.outputs for s in services])
