"""The typed shape of a stack: one service under the config key ``moe-ep:service``.

Field constraints live on the models; rules that relate several fields (TP × DP against the GPUs
of a unit, expert counts against EP, ...) are small pure functions collected by :func:`problems`,
so tests call them directly and errors name the exact key path.
"""

from __future__ import annotations

import re
import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from . import catalog, vllm

CONFIG_NAMESPACE = "moe-ep"
SERVICE_KEY = f"{CONFIG_NAMESPACE}:service"
POLICY_KEY = f"{CONFIG_NAMESPACE}:policy"
KNOWN_KEYS = (SERVICE_KEY, POLICY_KEY)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")

All2AllBackend = Literal[vllm.ALL2ALL_BACKENDS]  # type: ignore[valid-type]
DEEPEP_BACKENDS = vllm.DEEPEP_BACKENDS


class _Model(BaseModel):
    # No inf/NaN: no setting means "unbounded", and JSON (preview --json, manifests) cannot hold them.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


def _dns_label(value: str, max_length: int = 63) -> str:
    if len(value) > max_length or not _DNS_LABEL.match(value):
        raise ValueError(
            f"a DNS-1123 label of at most {max_length} characters (lower-case letters, digits, '-', "
            "starting and ending with a letter or digit)"
        )
    return value


def _dns_1035_label(value: str, max_length: int = 63) -> str:
    """LeaderWorkerSet names (and Service names before Kubernetes 1.34's relaxed validation): LWS's
    webhook wants a letter first."""
    if len(value) > max_length or not _DNS_1035_LABEL.match(value):
        raise ValueError(
            f"a DNS-1035 label of at most {max_length} characters (lower-case letters, digits, '-', "
            "starting with a letter and ending with a letter or digit): it names LeaderWorkerSets"
        )
    return value


def _quantity(value: str) -> str:
    if not _QUANTITY.match(value):
        raise ValueError("a Kubernetes quantity such as '64Gi', '500m' or '32'")
    return value


class ModelSpec(_Model):
    id: str = Field(
        min_length=1, max_length=512, pattern=r"^[^\s]+$",
        description="What vLLM serves: a Hugging Face id or a path in the image (no whitespace).",
    )
    architecture: str = Field(description="Catalog key of the MoE architecture (components.catalog).")
    dtype: Literal["fp8", "bf16", "int4"] = Field("fp8", description="Weight dtype. Default fp8.")
    max_model_len: int = Field(32768, ge=256, le=4_194_304, description="Context length. Default 32768.")
    served_model_name: str | None = Field(
        None, min_length=1, max_length=512, pattern=r"^[^\s]+$",
        description="Name clients send in `model` (no whitespace); default: the model id.",
    )
    kv_cache_dtype: Literal["auto", "bf16", "fp8"] = Field(
        "auto", description="KV-cache dtype; `auto` follows the model. Default auto."
    )
    trust_remote_code: bool | None = Field(
        None, description="Pass --trust-remote-code. Default: what the architecture needs (the catalog's "
        "remote_code: true for Kimi K2, whose tokenizer is code in its repository; false otherwise).",
    )

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, value: str) -> str:
        if value not in catalog.ARCHITECTURES:
            raise ValueError(f"one of {', '.join(sorted(catalog.ARCHITECTURES))}")
        return value

    @property
    def arch(self) -> catalog.Architecture:
        return catalog.ARCHITECTURES[self.architecture]

    @property
    def runs_remote_code(self) -> bool:
        """Whether vLLM gets ``--trust-remote-code``: the setting, else what the architecture needs."""
        return self.arch.remote_code if self.trust_remote_code is None else self.trust_remote_code


class GpuSpec(_Model):
    product: str = Field(description="Catalog key of the GPU product (components.catalog).")
    per_node: int = Field(8, ge=1, le=16, description="GPUs per node used by one pod. Default 8.")
    resource_name: str = Field("nvidia.com/gpu", description="Extended resource name. Default nvidia.com/gpu.")
    price_per_hour: float | None = Field(
        None, gt=0, description="USD per GPU-hour for cost estimates; default: the catalog's ballpark."
    )

    @field_validator("product")
    @classmethod
    def _known_product(cls, value: str) -> str:
        if value not in catalog.GPUS:
            raise ValueError(f"one of {', '.join(sorted(catalog.GPUS))}")
        return value

    @property
    def info(self) -> catalog.GpuProduct:
        return catalog.GPUS[self.product]


class EplbSpec(_Model):
    """Expert-parallel load balancing. The block's presence turns it on unless ``enabled: false``."""

    enabled: bool = Field(True, description="Run EPLB (--enable-eplb). Default true.")
    num_redundant_experts: int = Field(0, ge=0, le=1024, description="Extra expert replicas. Default 0.")
    window_size: int = Field(1000, ge=1, description="Steps of load statistics kept. Default 1000.")
    step_interval: int = Field(3000, ge=1, description="Steps between rebalances. Default 3000.")


class MtpSpec(_Model):
    """Multi-token prediction with the model's own MTP head (speculative decoding)."""

    num_speculative_tokens: int = Field(1, ge=1, le=8, description="Draft tokens per step. Default 1.")


class ResourcesSpec(_Model):
    cpu: str = Field("32", description="CPU request (and limit) of a vLLM pod. Default 32.")
    memory: str = Field("512Gi", description="Memory request (and limit) of a vLLM pod. Default 512Gi.")
    shm_size: str = Field("32Gi", description="Size limit of the /dev/shm memory volume. Default 32Gi.")

    @field_validator("cpu", "memory", "shm_size")
    @classmethod
    def _quantities(cls, value: str) -> str:
        return _quantity(value)


MAX_UNITS = 1000
"""The most units a pool may declare or scale to."""


class AutoscalingSpec(_Model):
    """Scale a pool's units on queue depth. Safe for GPU units that take minutes to load: at most
    one unit added per ``scale_up_period_seconds``, removals only after a long stabilization."""

    engine: Literal["hpa", "keda"] = Field(
        "hpa", description="`hpa`: autoscaling/v2 on a custom metric (prometheus-adapter); `keda`: a ScaledObject with a Prometheus query. Default hpa."
    )
    min_replicas: int = Field(1, ge=0, le=MAX_UNITS, description="Fewest units. Default 1 (0 only with keda).")
    max_replicas: int = Field(ge=1, le=MAX_UNITS, description="Most units (required).")
    target_waiting_per_unit: float = Field(
        4, gt=0, description="Waiting requests per unit (vllm:num_requests_waiting) that triggers scaling. Default 4."
    )
    hpa_metric: str = Field(
        "vllm_num_requests_waiting",
        description="Pods metric the HPA reads, as the metrics adapter names vllm:num_requests_waiting. Default vllm_num_requests_waiting.",
    )
    prometheus_address: str = Field(
        "http://prometheus-operated.monitoring.svc:9090", description="Prometheus KEDA queries. Default the operator's service."
    )
    scale_up_period_seconds: int = Field(120, ge=60, le=600, description="One unit added per this period at most. Default 120.")
    scale_down_stabilization_seconds: int = Field(900, ge=600, le=7200, description="Scale-down window. Default 900.")

    @model_validator(mode="after")
    def _bounds(self) -> "AutoscalingSpec":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) at most max_replicas ({self.max_replicas})")
        if self.min_replicas == 0 and self.engine == "hpa":
            raise ValueError("min_replicas >= 1 with engine hpa (scale to zero needs engine keda)")
        return self


def _key_problem(key: str, expected: str) -> PydanticCustomError:
    """A rule of a whole mapping that one of its keys breaks, to raise: the message names that key's path."""
    return PydanticCustomError("key", "{expected}", {"key": key, "expected": expected})


_POOL_ALIASES = {
    "tensor_parallel_size": "TP_SIZE",
    "data_parallel_size": "DP_SIZE",
    "expert_parallel_size": "EP_SIZE",
}


class PoolSpec(_Model):
    """One role's units: ``replicas`` units of ``nodes_per_replica`` nodes each."""

    replicas: int = Field(1, ge=0, le=MAX_UNITS, description="Units (vLLM instances). Default 1.")
    nodes_per_replica: int = Field(1, ge=1, le=64, description="Nodes (pods) per unit. Default 1.")
    tensor_parallel_size: int = Field(
        1, ge=1, le=16, validation_alias=AliasChoices("tensor_parallel_size", "TP_SIZE"),
        description="TP within a node. Alias TP_SIZE. Default 1.",
    )
    data_parallel_size: int = Field(
        1, ge=1, le=1024, validation_alias=AliasChoices("data_parallel_size", "DP_SIZE"),
        description="DP ranks across the whole unit (nodes × GPUs per node / TP). Alias DP_SIZE. Default 1.",
    )
    expert_parallel: bool = Field(False, description="Shard experts over TP × DP ranks. Default false.")
    expert_parallel_size: int | None = Field(
        None, ge=1, validation_alias=AliasChoices("expert_parallel_size", "EP_SIZE"),
        description="Optional check value: vLLM derives EP = TP × DP. Alias EP_SIZE; setting it implies expert_parallel.",
    )
    all2all_backend: All2AllBackend | None = Field(
        None, description="MoE all-to-all kernel (--all2all-backend); default: vLLM's choice."
    )
    eplb: EplbSpec | None = Field(None, description="Expert load balancing; absent = off.")
    enable_dbo: bool = Field(False, description="Dual-batch overlap (--enable-dbo). Default false.")
    mtp: MtpSpec | None = Field(None, description="Multi-token prediction; absent = off.")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=0.98, description="vLLM's memory fraction. Default 0.9.")
    max_num_seqs: int | None = Field(None, ge=1, description="--max-num-seqs; default: vLLM's.")
    max_num_batched_tokens: int | None = Field(None, ge=1, description="--max-num-batched-tokens; default: vLLM's.")
    enable_prefix_caching: bool = Field(True, description="Automatic prefix caching. Default true.")
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec, description="Pod CPU, memory, shm.")
    autoscaling: AutoscalingSpec | None = Field(None, description="Scale units on load; absent = fixed `replicas`.")
    max_unavailable_units: int = Field(
        1, ge=1, le=1000, description="Units a voluntary disruption (node drain) may take down at once. Default 1."
    )
    extra_args: tuple[str, ...] = Field(
        (), description="Appended to the vllm argv verbatim (checked by the vLLM conformance tests)."
    )

    @model_validator(mode="before")
    @classmethod
    def _one_spelling(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for name, alias in _POOL_ALIASES.items():
                if name in data and alias in data:
                    raise _key_problem(alias, f"only one of {name} and its alias {alias} (both are given)")
            if data.get("EP_SIZE") is not None or data.get("expert_parallel_size") is not None:
                if data.get("expert_parallel") is False:
                    raise _key_problem("expert_parallel", "true, or no expert_parallel_size (EP_SIZE): it is set")
                data = {**data, "expert_parallel": True}
        return data

    @property
    def ep_size(self) -> int | None:
        """vLLM's EP size: TP × DP when expert parallel, else none."""
        return self.tensor_parallel_size * self.data_parallel_size if self.expert_parallel else None

    @property
    def eplb_enabled(self) -> bool:
        return self.eplb is not None and self.eplb.enabled

    @property
    def redundant_experts(self) -> int:
        return self.eplb.num_redundant_experts if self.eplb_enabled else 0


class KvTransferSpec(_Model):
    connector: Literal["NixlConnector"] = Field("NixlConnector", description="vLLM KV connector. Default NixlConnector.")
    side_channel_port: int = Field(5600, ge=1024, le=65535, description="NIXL side-channel port. Default 5600.")


class UnitSpec(_Model):
    """How a multi-node unit behaves (applies to every pool)."""

    guard: bool = Field(True, description="Restart the whole unit when any rank fails. Default true.")
    comm_interface: str = Field(
        "eth0", description="NIC for NCCL and Gloo sockets and COMM_IFNAME (UCX picks its RDMA devices itself). Default eth0."
    )
    max_surge: int | str = Field(0, description="Extra units during a rolling update (number or %). Default 0.")
    max_unavailable: int | str = Field(1, description="Units down during a rolling update (number or %). Default 1.")
    start_barrier: bool = Field(
        False, description="Init container that waits until every rank resolves (non-vLLM launchers). Default false."
    )
    startup_minutes: int | None = Field(
        None, ge=1, le=240, description="Startup-probe budget; default: estimated from model size, at least 20."
    )
    dp_rpc_port: int = Field(13345, ge=1024, le=65535, description="vLLM DP coordination port. Default 13345.")

    @field_validator("comm_interface")
    @classmethod
    def _ifname(cls, value: str) -> str:
        if not _IFNAME.match(value):
            raise ValueError("a network interface name such as eth0 or ib0 (at most 15 characters)")
        return value

    @field_validator("max_surge", "max_unavailable", mode="before")
    @classmethod
    def _count_or_percent(cls, value: Any) -> int | str:
        # Before the int | str union, so a value of another type is one problem at the key, not
        # one per union member (`max_surge.int`, `max_surge.str`).
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError("a non-negative whole number or a percentage such as '25%'")
        if isinstance(value, int):
            if value < 0:
                raise ValueError("a non-negative whole number or a percentage such as '25%'")
            return value
        if not re.match(r"^[0-9]{1,3}%$", value):
            raise ValueError("a non-negative whole number or a percentage such as '25%'")
        return value


LLM_D_SCHEDULER_IMAGE = "ghcr.io/llm-d/llm-d-inference-scheduler:v0.7.1"
LLM_D_ROUTING_SIDECAR_IMAGE = "ghcr.io/llm-d/llm-d-routing-sidecar:v0.7.1"
ENVOY_IMAGE = "docker.io/envoyproxy/envoy:distroless-v1.33.2"
# The llm-d v0.6.0 release set: scheduler and sidecar v0.7.1 with Envoy 1.33.2.


class RouterSpec(_Model):
    """The one endpoint in front of the pools."""

    mode: Literal["llm-d", "round-robin"] | None = Field(
        None,
        description="`llm-d`: the llm-d inference scheduler (prefill/decode-aware, prefix-cache scoring) behind Envoy; "
        "`round-robin`: Envoy over the decode units. Default: llm-d with a prefill pool, round-robin without.",
    )
    min_replicas: int = Field(2, ge=1, le=100, description="Fewest proxy replicas (CPU autoscaled). Default 2.")
    max_replicas: int = Field(6, ge=1, le=100, description="Most proxy replicas. Default 6.")
    target_cpu_utilization: int = Field(70, ge=10, le=95, description="Proxy CPU target, percent. Default 70.")
    non_cached_tokens: int = Field(
        16, ge=0, description="Disaggregate a request when at least this many prompt tokens are not cached on the chosen decode unit (0: always). Default 16."
    )
    service_type: Literal["ClusterIP", "LoadBalancer"] = Field("ClusterIP", description="How the endpoint is exposed. Default ClusterIP.")
    scheduler_image: str = Field(LLM_D_SCHEDULER_IMAGE, description=f"Default {LLM_D_SCHEDULER_IMAGE}.")
    sidecar_image: str = Field(LLM_D_ROUTING_SIDECAR_IMAGE, description=f"Default {LLM_D_ROUTING_SIDECAR_IMAGE}.")
    envoy_image: str = Field(ENVOY_IMAGE, description=f"Default {ENVOY_IMAGE}.")

    @model_validator(mode="after")
    def _bounds(self) -> "RouterSpec":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) at most max_replicas ({self.max_replicas})")
        return self


class NetworkSpec(_Model):
    """NetworkPolicies around the service."""

    policies: bool = Field(True, description="Create the service's NetworkPolicies (default deny, then its paths). Default true.")
    prometheus_namespace: str = Field("monitoring", description="Namespace whose pods may scrape metrics. Default monitoring.")

    @field_validator("prometheus_namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return _dns_label(value)


class ApiKeySpec(_Model):
    """The generated key every request must carry (``Authorization: Bearer <key>``)."""

    length: int = Field(48, ge=32, le=128, description="Characters (letters and digits). Default 48.")
    keepers: dict[str, str] = Field(
        default_factory=dict, description="Change any value to rotate the key (a new key replaces the old). Default none."
    )


_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_KARPENTER_DURATION = re.compile(r"^(([0-9]+(s|m|h))+|Never)$")
_BUDGET_NODES = re.compile(r"^((100|[0-9]{1,2})%|[0-9]+)$")


def _label_key(value: str) -> str:
    if len(value) > 316 or not _LABEL_KEY.match(value):
        raise ValueError("a Kubernetes label key such as 'topology.kubernetes.io/zone' or 'example.com/rack'")
    return value


class NodeClassRefSpec(_Model):
    """The cloud-specific node class a Karpenter NodePool launches from (platform-owned)."""

    group: str = Field("karpenter.k8s.aws", min_length=1, description="API group. Default karpenter.k8s.aws.")
    kind: str = Field("EC2NodeClass", min_length=1, description="Kind. Default EC2NodeClass.")
    name: str = Field(description="Name of the node class object (required).")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _dns_label(value)


class NodeRequirementSpec(_Model):
    """One Karpenter node requirement (a node-selector requirement over node labels)."""

    key: str = Field(description="Node label key, e.g. karpenter.k8s.aws/instance-gpu-name.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"] = Field(description="Selector operator.")
    values: tuple[str, ...] = Field((), description="Values; none for Exists/DoesNotExist, one integer for Gt/Lt.")

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        value = _label_key(value)
        # Karpenter's CRD rejects these (CEL rules, which offline schema checks do not evaluate).
        domain = value.split("/", 1)[0] if "/" in value else ""
        if value == "kubernetes.io/hostname" or (
            domain.endswith("karpenter.sh") and value not in ("karpenter.sh/capacity-type", "karpenter.sh/nodepool")
        ):
            raise ValueError("a label key Karpenter allows in requirements (not kubernetes.io/hostname nor *karpenter.sh/* "
                             "other than karpenter.sh/capacity-type)")
        return value

    @model_validator(mode="after")
    def _values_fit_operator(self) -> "NodeRequirementSpec":
        if any(len(v) > 63 or not _LABEL_VALUE.match(v) for v in self.values):
            raise ValueError("label values (at most 63 letters, digits, '-', '_', '.')")
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"at least one value with operator {self.operator}")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"no values with operator {self.operator}")
        if self.operator in ("Gt", "Lt") and (len(self.values) != 1 or not self.values[0].isdigit()):
            raise ValueError(f"exactly one non-negative integer value with operator {self.operator}")
        return self


class KarpenterSpec(_Model):
    """A Karpenter ``karpenter.sh/v1`` NodePool that launches the GPU nodes on demand."""

    node_class: NodeClassRefSpec = Field(description="The node class reference (required).")
    instance_types: tuple[str, ...] = Field(
        (), description="Shorthand for a node.kubernetes.io/instance-type In requirement. Default none."
    )
    capacity_types: tuple[Literal["on-demand", "spot", "reserved"], ...] = Field(
        ("on-demand",), min_length=1,
        description="karpenter.sh/capacity-type values. Default on-demand (a reclaimed spot node kills a whole unit).",
    )
    requirements: tuple[NodeRequirementSpec, ...] = Field((), description="Further node requirements. Default none.")
    gpu_limit: int | None = Field(
        None, ge=0, description="limits.<gpu.resource_name> of the NodePool; default: the GPUs of both pools at their maximum replicas."
    )
    consolidate_after: str = Field("10m", description="How long a node stays empty before it is removed. Default 10m.")
    expire_after: str = Field(
        "Never", description="Node lifetime; expiry is forceful (ignores budgets), so serving nodes default to Never."
    )
    max_disrupted_nodes: str = Field("1", description="Disruption budget: nodes (or %) disrupted at once. Default 1.")
    replace_drifted_nodes: bool = Field(
        False, description="Let Karpenter replace drifted nodes on its own (that restarts the unit on them). Default false."
    )

    @field_validator("instance_types")
    @classmethod
    def _instance_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(len(v) > 63 or not v or not _LABEL_VALUE.match(v) for v in value):
            raise ValueError("instance type names such as 'p5.48xlarge' (label values, at most 63 characters)")
        return value

    @field_validator("consolidate_after", "expire_after")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not _KARPENTER_DURATION.match(value):
            raise ValueError("a Karpenter duration such as '10m', '1h30m' or 'Never'")
        return value

    @field_validator("max_disrupted_nodes")
    @classmethod
    def _budget(cls, value: str) -> str:
        if not _BUDGET_NODES.match(value):
            raise ValueError("a node count such as '1' or a percentage such as '10%'")
        return value


class ExistingNodesSpec(_Model):
    """Nodes that already exist: labelled (and tainted) in place by server-side-apply patches."""

    nodes: tuple[str, ...] = Field(min_length=1, description="Node names (required, at least one).")
    taint: bool = Field(
        True,
        description="Add the taint nvidia.com/gpu:NoSchedule. Default true. Set false when the nodes already carry "
        "taints (Node spec.taints is one atomic list under server-side apply: the patch would conflict).",
    )

    @field_validator("nodes")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(len(v) > 253 or not _DNS_SUBDOMAIN.match(v) for v in value):
            raise ValueError("node names (DNS-1123 subdomains such as 'gpu-node-01' or 'ip-10-0-1-5.ec2.internal')")
        if len(set(value)) != len(value):
            raise ValueError("distinct node names (a node is listed twice)")
        return value


class RdmaSpec(_Model):
    """How pods reach the RDMA fabric (InfiniBand / RoCE) that multi-node units and NIXL KV transfer use."""

    resource_name: str = Field(
        "rdma/rdma_shared_device_a",
        description="Device-plugin resource: rdma/rdma_shared_device_a (k8s-rdma-shared-dev-plugin), rdma/ib, "
        "nvidia.com/hostdev (SR-IOV), ... Default rdma/rdma_shared_device_a.",
    )
    per_pod: int = Field(1, ge=1, le=64, description="Devices each pod requests. Default 1.")
    networks: str | None = Field(
        None, min_length=1, description="Multus k8s.v1.cni.cncf.io/networks annotation, e.g. 'llm/rdma-net'. Default none."
    )

    @field_validator("resource_name")
    @classmethod
    def _resource(cls, value: str) -> str:
        if "/" not in value or not _LABEL_KEY.match(value):
            raise ValueError("an extended resource name with a domain, such as rdma/ib or nvidia.com/hostdev")
        return value


class NodePoolSpec(_Model):
    """The GPU nodes the units land on: launched by Karpenter or labelled in place (``existing``)."""

    provisioner: Literal["karpenter", "existing"] = Field(description="karpenter | existing (required).")
    name: str | None = Field(None, description="Value of the moe-ep.io/pool label (and NodePool name); default: the service name.")
    karpenter: KarpenterSpec | None = Field(None, description="Settings of provisioner karpenter (only then).")
    existing: ExistingNodesSpec | None = Field(None, description="Settings of provisioner existing (only then).")
    rdma: RdmaSpec | None = Field(
        None, description="The nodes' RDMA fabric; absent = none (multi-node units and KV transfer then use TCP)."
    )
    select_gpu_product: bool = Field(
        True, description="Pods also select nvidia.com/gpu.product = the catalog's label of gpu.product. Default true."
    )
    exclusive_topology_key: str | None = Field(
        None, description="Node label whose domain a multi-node unit has to itself (LWS exclusive topology), "
        "e.g. a rack or NVLink-block label. Default none.",
    )
    privileged: bool = Field(
        False, description="Run RDMA pods privileged, for clusters whose RDMA setup needs it. Default false (root + IPC_LOCK)."
    )

    @field_validator("name")
    @classmethod
    def _pool_name(cls, value: str | None) -> str | None:
        return None if value is None else _dns_label(value)

    @field_validator("exclusive_topology_key")
    @classmethod
    def _topology_key(cls, value: str | None) -> str | None:
        return None if value is None else _label_key(value)

    @model_validator(mode="after")
    def _one_provisioner(self) -> "NodePoolSpec":
        sections = {"karpenter": self.karpenter, "existing": self.existing}
        other = "existing" if self.provisioner == "karpenter" else "karpenter"
        if sections[self.provisioner] is None:
            raise ValueError(f"a `{self.provisioner}` section for provisioner {self.provisioner}")
        if sections[other] is not None:
            raise ValueError(f"no `{other}` section with provisioner {self.provisioner} (the two are mutually exclusive)")
        return self


_PROMETHEUS_DURATION = re.compile(r"^[0-9]+(ms|s|m|h)$")


def _labels(value: dict[str, str]) -> dict[str, str]:
    for key, label in value.items():
        _label_key(key)
        if len(label) > 63 or not _LABEL_VALUE.match(label):
            raise ValueError(f"label {key!r}: a label value of at most 63 letters, digits, '-', '_' or '.'")
    return value


class SloSpec(_Model):
    """The latency objectives alerts hold the service to (p99 over 5 minutes, for 10 minutes)."""

    ttft_seconds: float = Field(2.0, gt=0, le=600, description="p99 time to first token, per role. Default 2.")
    itl_seconds: float = Field(0.1, gt=0, le=60, description="p99 inter-token latency of the decode role. Default 0.1.")


class AlertThresholdsSpec(_Model):
    """When the alerts fire. The unit readiness and metrics-absent windows default to the pool's
    startup budget (``unit.startup_minutes`` or the estimate), so a unit loading its model is quiet."""

    queue_waiting: int = Field(16, ge=1, description="Requests waiting in one unit for 5 minutes. Default 16.")
    kv_cache_usage: float = Field(0.95, gt=0, le=1, description="KV-cache usage (0-1) of one unit for 10 minutes. Default 0.95.")
    error_ratio: float = Field(
        0.05, gt=0, le=1, description="Share of a role's requests finishing with reason `error` for 5 minutes. Default 0.05."
    )
    preemptions_per_minute: float = Field(5, gt=0, description="A role's preemptions per minute for 10 minutes. Default 5.")
    unit_restarts: int = Field(2, ge=1, description="Restarts or recreations of one pod within 30 minutes. Default 2.")
    unit_not_ready_minutes: int | None = Field(
        None, ge=1, le=1440, description="A unit's leader not ready this long. Default: the pool's startup budget."
    )
    metrics_absent_minutes: int | None = Field(
        None, ge=1, le=1440, description="A pool exports no vLLM metrics this long. Default: the pool's startup budget."
    )


class DashboardSpec(_Model):
    """The Grafana dashboard, delivered as a ConfigMap for the Grafana sidecar."""

    enabled: bool = Field(True, description="Create the dashboard ConfigMap. Default true.")
    folder: str | None = Field(
        "moe-ep", min_length=1, description="Grafana folder (annotation `grafana_folder`); null = the sidecar's default. Default moe-ep."
    )
    labels: dict[str, str] = Field(
        default_factory=lambda: {"grafana_dashboard": "1"},
        description="Labels the Grafana sidecar selects ConfigMaps by. Default {grafana_dashboard: \"1\"}.",
    )

    @field_validator("labels")
    @classmethod
    def _valid_labels(cls, value: dict[str, str]) -> dict[str, str]:
        return _labels(value)


class MonitoringSpec(_Model):
    """Prometheus-operator monitors and rules, and a Grafana dashboard (prometheus-operator CRDs
    must be installed when enabled)."""

    enabled: bool = Field(True, description="Create PodMonitor, ServiceMonitor, PrometheusRule and dashboard. Default true.")
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Added to monitors and rules so Prometheus' selectors pick them up (e.g. release: kube-prometheus-stack). Default none.",
    )
    scrape_interval: str = Field("15s", description="How often Prometheus scrapes vLLM and the router. Default 15s.")
    slo: SloSpec = Field(default_factory=SloSpec, description="Latency objectives.")
    thresholds: AlertThresholdsSpec = Field(default_factory=AlertThresholdsSpec, description="Alert thresholds.")
    dashboard: DashboardSpec = Field(default_factory=DashboardSpec, description="Grafana dashboard.")

    @field_validator("labels")
    @classmethod
    def _valid_labels(cls, value: dict[str, str]) -> dict[str, str]:
        return _labels(value)

    @field_validator("scrape_interval")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not _PROMETHEUS_DURATION.match(value):
            raise ValueError("a Prometheus duration such as '15s', '500ms' or '1m'")
        return value


class ServiceSpec(_Model):
    """One MoE model served by a decode pool and, optionally, a prefill pool."""

    name: str = Field(
        description="DNS-1035 label (a letter first), at most 40 characters: the prefix of every object."
    )
    namespace: str = Field(description="Namespace everything is created in.")
    create_namespace: bool = Field(
        True,
        description="Create the namespace, with Pod Security labels (components/namespace.py). Default true; false "
        "when the platform team (or another service in the same namespace) owns it: then they set those labels.",
    )
    image: str = Field(min_length=1, description="vLLM image; its tag pins the vLLM version whose flags are emitted.")
    model: ModelSpec
    gpu: GpuSpec
    prefill: PoolSpec | None = Field(None, description="Prefill pool; absent = decode-only (no disaggregation).")
    decode: PoolSpec
    kv_transfer: KvTransferSpec = Field(default_factory=KvTransferSpec, description="KV transfer between roles.")
    unit: UnitSpec = Field(default_factory=UnitSpec)
    router: RouterSpec = Field(default_factory=RouterSpec, description="The endpoint in front of the pools.")
    api_key: ApiKeySpec = Field(default_factory=ApiKeySpec, description="The generated API key.")
    network: NetworkSpec = Field(default_factory=NetworkSpec, description="NetworkPolicies.")
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec, description="Monitors, alerts, dashboard.")
    node_pool: NodePoolSpec | None = Field(
        None, description="The GPU nodes; absent = none created, pods select the GPU product label and "
        "tolerate the GPU taint."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _dns_1035_label(value, 40)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return _dns_label(value)

    @property
    def disaggregated(self) -> bool:
        return self.prefill is not None

    @property
    def router_mode(self) -> str:
        """The router's mode, with the default resolved."""
        return self.router.mode or ("llm-d" if self.disaggregated else "round-robin")

    def pools(self) -> dict[str, PoolSpec]:
        """The pools by role, prefill first."""
        roles = {"prefill": self.prefill, "decode": self.decode}
        return {role: pool for role, pool in roles.items() if pool is not None}


# --- cross-field rules -------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a stack: where, what it is, what was expected."""

    path: str
    value: Any
    expected: str
    rule: str = "schema"

    def render(self, source: str) -> str:
        shown = "(missing)" if self.value is _MISSING else _SHOWN.repr(self.value)
        return f"{source}: {self.path} = {shown}: expected {self.expected} [{self.rule}]"


# A wrong value is quoted, not reproduced: a 20,000-character string or a whole subtree would bury the message.
_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 120
_SHOWN.maxlevel = 3
_PLAIN_KEY = re.compile(r"[^\s.\[\]'\"=]+")


def key_step(key: Any) -> str:
    """One mapping step of a key path: `.key`, or `['key']` for a key that is empty or holds dots,
    spaces, brackets, quotes or `=` (`labels['app.kubernetes.io/part-of']`)."""
    return f".{key}" if _PLAIN_KEY.fullmatch(str(key)) else f"[{str(key)!r}]"


_MISSING = object()


def pool_problems(role: str, pool: PoolSpec, spec: ServiceSpec) -> list[Problem]:
    """Rules vLLM enforces at start-up (or that make ranks never meet), for one pool."""
    arch, per_node = spec.model.arch, spec.gpu.per_node
    at = f"{SERVICE_KEY}.{role}"
    tp, dp = pool.tensor_parallel_size, pool.data_parallel_size
    gpus_per_unit = pool.nodes_per_replica * per_node
    found: list[Problem] = []
    if tp > per_node or per_node % tp:
        found.append(Problem(
            f"{at}.tensor_parallel_size", tp,
            f"a divisor of gpu.per_node ({per_node}): tensor parallelism stays inside one node",
            "tp-within-node",
        ))
    if tp * dp != gpus_per_unit:
        found.append(Problem(
            f"{at}.data_parallel_size", dp,
            f"TP × DP = GPUs per unit: {tp} × {dp} = {tp * dp}, but nodes_per_replica × gpu.per_node = "
            f"{pool.nodes_per_replica} × {per_node} = {gpus_per_unit}"
            + (f" (DP should be {gpus_per_unit // tp})" if gpus_per_unit % tp == 0 else ""),
            "parallelism-covers-unit",
        ))
    if arch.attention_heads % tp:
        found.append(Problem(
            f"{at}.tensor_parallel_size", tp,
            f"a divisor of {arch.name}'s {arch.attention_heads} attention heads",
            "heads-divisible-by-tp",
        ))
    if pool.expert_parallel_size is not None and pool.expert_parallel_size != tp * dp:
        found.append(Problem(
            f"{at}.expert_parallel_size", pool.expert_parallel_size,
            f"TP × DP = {tp * dp}: vLLM derives the EP size from TP and DP",
            "ep-is-tp-times-dp",
        ))
    if pool.eplb is not None:
        if not pool.eplb.enabled and pool.eplb.num_redundant_experts:
            found.append(Problem(
                f"{at}.eplb.num_redundant_experts", pool.eplb.num_redundant_experts,
                "0 while eplb.enabled is false: redundant experts are placed by EPLB",
                "redundant-experts-need-eplb",
            ))
        if pool.eplb.enabled and not pool.expert_parallel:
            found.append(Problem(
                f"{at}.expert_parallel", pool.expert_parallel,
                "true when eplb is enabled: EPLB balances experts across EP ranks", "eplb-needs-ep",
            ))
        if pool.eplb.enabled and pool.expert_parallel:
            total = arch.routed_experts + pool.eplb.num_redundant_experts
            ep = tp * dp
            if total % ep:
                found.append(Problem(
                    f"{at}.eplb.num_redundant_experts", pool.eplb.num_redundant_experts,
                    f"(routed experts + redundant) divisible by EP: ({arch.routed_experts} + "
                    f"{pool.eplb.num_redundant_experts}) % {ep} = {total % ep}"
                    f"; the next valid count is {pool.eplb.num_redundant_experts + (-total) % ep}",
                    "experts-divisible-by-ep",
                ))
    if pool.enable_dbo and not (
        pool.all2all_backend in DEEPEP_BACKENDS and dp > 1 and pool.expert_parallel
    ):
        found.append(Problem(
            f"{at}.enable_dbo", True,
            "dual-batch overlap only with a deepep all2all_backend, data_parallel_size > 1 and expert_parallel",
            "dbo-needs-deepep-dp-ep",
        ))
    if pool.mtp is not None and not arch.mtp_layers:
        found.append(Problem(
            f"{at}.mtp", pool.mtp.model_dump(),
            f"absent: {arch.name} has no multi-token-prediction head", "mtp-needs-mtp-head",
        ))
    return found


def router_problems(spec: ServiceSpec) -> list[Problem]:
    if spec.router.mode == "llm-d" and not spec.disaggregated:
        return [Problem(
            f"{SERVICE_KEY}.router.mode", "llm-d",
            "round-robin for a decode-only service: the llm-d scheduler here routes prefill/decode pairs", "router-mode",
        )]
    return []


def max_replicas(pool: PoolSpec) -> int:
    """The most units a pool can run: the autoscaler's ceiling when it has one, else ``replicas``."""
    return pool.autoscaling.max_replicas if pool.autoscaling is not None else pool.replicas


def capacity(spec: ServiceSpec) -> dict[str, Any]:
    """Nodes and GPUs both pools need at their maximum replicas (one pod per node), per role and in
    total, and the GPU limit the node pool gets. Pure; the node pool and the policy pack read it."""
    roles = {}
    for role, pool in spec.pools().items():
        units = max_replicas(pool)
        roles[role] = {
            "max_replicas": units,
            "nodes_per_replica": pool.nodes_per_replica,
            "gpus_per_node": spec.gpu.per_node,
            "max_nodes": units * pool.nodes_per_replica,
            "max_gpus": units * pool.nodes_per_replica * spec.gpu.per_node,
        }
    max_gpus = sum(r["max_gpus"] for r in roles.values())
    limit = None
    if spec.node_pool is not None and spec.node_pool.karpenter is not None:
        configured = spec.node_pool.karpenter.gpu_limit
        limit = max_gpus if configured is None else configured
    return {
        "roles": roles,
        "max_nodes": sum(r["max_nodes"] for r in roles.values()),
        "max_gpus": max_gpus,
        "gpu_resource": spec.gpu.resource_name,
        "gpu_limit": limit,
        "nodes_available": len(spec.node_pool.existing.nodes) if spec.node_pool and spec.node_pool.existing else None,
    }


def node_pool_problems(spec: ServiceSpec) -> list[Problem]:
    """An explicit Karpenter GPU limit must hold both pools at their maximum replicas. (A fleet of
    existing nodes smaller than the ceiling is a policy question, not bad input: the policy pack
    compares ``nodes_available`` with ``max_nodes``.)"""
    if spec.node_pool is None:
        return []
    numbers = capacity(spec)
    at = f"{SERVICE_KEY}.node_pool"
    found = []
    if numbers["gpu_limit"] is not None and numbers["gpu_limit"] < numbers["max_gpus"]:
        found.append(Problem(
            f"{at}.karpenter.gpu_limit", numbers["gpu_limit"],
            f"at least {numbers['max_gpus']}: the GPUs of every pool at its maximum replicas "
            "(" + " + ".join(f"{role} {v['max_gpus']}" for role, v in numbers["roles"].items()) + ")",
            "node-pool-covers-pools",
        ))
    return found


def problems(spec: ServiceSpec) -> list[Problem]:
    """Every cross-field rule over the whole service, in a stable order."""
    found: list[Problem] = router_problems(spec) + node_pool_problems(spec)
    for role, pool in spec.pools().items():
        found.extend(pool_problems(role, pool, spec))
    # The commands' own rules assume the shape rules hold.
    return found or vllm.launch_problems(spec)


# --- loading -----------------------------------------------------------------------------------


class StackError(Exception):
    """Bad input: a stack file that cannot become a valid ServiceSpec."""

    def __init__(self, source: str, found: list[Problem]):
        self.source = source
        self.problems = found
        super().__init__("\n".join(p.render(source) for p in found))


def _key_path(prefix: str, data: Any, loc: tuple) -> str:
    """Pydantic's error location as the file spells it, walking the input alongside: `.key` in a
    mapping (an integer key too), `[i]` in a list; its `[key]` marker (the key itself is wrong)
    adds no step."""
    path = prefix
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(data, Mapping):
            path, data = path + key_step(part), data.get(part)
        else:
            path += f"[{part}]" if isinstance(part, int) else key_step(part)
            data = data[part] if isinstance(data, list) and isinstance(part, int) and part < len(data) else None
    return path


def _pydantic_problems(error: ValidationError, prefix: str, data: Any) -> list[Problem]:
    found = []
    for item in error.errors(include_url=False):
        kind, message = item["type"], item["msg"]
        if kind == "key":  # a whole mapping's rule, broken by one key (_key_problem)
            key = item["ctx"]["key"]
            found.append(Problem(_key_path(prefix, data, (*item["loc"], key)), item["input"][key], message))
            continue
        path = _key_path(prefix, data, item["loc"])
        if kind == "missing":
            found.append(Problem(path, _MISSING, "a value (required key)"))
        elif kind == "extra_forbidden":
            found.append(Problem(path, item["input"], "no such key (unknown keys are rejected)"))
        else:
            expected = message.removeprefix("Value error, ")
            found.append(Problem(path, item["input"], expected))
    return found


def service_from_config(service: Any, source: str) -> ServiceSpec:
    """Validate the value of ``moe-ep:service`` (a mapping) into a ServiceSpec, or raise StackError."""
    if not isinstance(service, Mapping):
        raise StackError(source, [Problem(SERVICE_KEY, service, "a mapping with the service's settings")])
    try:
        spec = ServiceSpec.model_validate(service)
    except ValidationError as error:
        raise StackError(source, _pydantic_problems(error, SERVICE_KEY, service)) from None
    found = problems(spec)
    if found:
        raise StackError(source, found)
    return spec


class _StackLoader(yaml.SafeLoader):
    """YAML as the Pulumi CLI reads a stack file: an unquoted date stays the string it is written as."""


_StackLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_JSON_SCALARS = (str, int, float, bool, type(None))
_MAX_EXPANDED_VALUES = 1_000_000
_MAX_EXACT_INT = 2**53
_MAX_NESTING = 100
"""Collections inside collections: a stack file needs about ten; PyYAML composes recursively and
would hit Python's recursion limit a few hundred levels down, in generators whose clean-up then
prints "Exception ignored" noise."""


def _nests_deeper_than(text: str, limit: int) -> bool:
    """Whether ``text``'s collections nest more than ``limit`` deep, read from the parser's events
    (which, unlike composing the document, does not recurse). YAML errors propagate."""
    depth = 0
    for event in yaml.parse(text, Loader=_StackLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > limit:
                return True
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return False


def _expanded_size(document: Any) -> int | None:
    """Values in ``document`` with every YAML alias expanded (capped just above the limit), or None
    when an alias sits inside its own anchor (a value that contains itself). Memoized per shared
    node, so an alias bomb costs the size of the file, not of its expansion."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: Any) -> int | None:
        if not isinstance(node, (dict, list)):
            return 1
        if id(node) in open_nodes:
            return None
        if id(node) not in sizes:
            open_nodes.add(id(node))
            total = 1
            for child in node.values() if isinstance(node, dict) else node:
                inner = size(child)
                if inner is None:
                    return None
                total = min(total + inner, _MAX_EXPANDED_VALUES + 1)
            open_nodes.discard(id(node))
            sizes[id(node)] = total
        return sizes[id(node)]

    return size(document)


def _non_json_values(config: dict[str, Any]) -> list[Problem]:
    """Values JSON cannot hold (explicit ``!!binary``, ``!!set``, ``!!timestamp`` tags) and integers
    a float64 cannot hold exactly: Pulumi config values are JSON, its numbers float64, and the
    program reads them back from there. Each shared node (a YAML alias) is visited once."""
    found, seen, todo = [], set(), [(str(key), value) for key, value in config.items()]
    while todo:
        path, node = todo.pop()
        if isinstance(node, int) and not isinstance(node, bool) and abs(node) > _MAX_EXACT_INT:
            found.append(Problem(path, node, "an integer of magnitude at most 2**53 (Pulumi config numbers are float64)", "json-value"))
            continue
        if isinstance(node, _JSON_SCALARS) or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, _JSON_SCALARS):
                    found.append(Problem(path + key_step(key), key, "a string as key (Pulumi config values are JSON)", "json-value"))
                todo.append((path + key_step(key), value))
        elif isinstance(node, list):
            todo.extend((f"{path}[{index}]", value) for index, value in enumerate(node))
        else:
            found.append(Problem(path, node, "a string, number, boolean, list or mapping (Pulumi config values are JSON)", "json-value"))
    return sorted(found, key=lambda p: p.path)


def yaml_problem(error: yaml.YAMLError) -> str:
    """Where and what a YAML error is, on one line as every problem: `` at line L, column C: what``."""
    mark = getattr(error, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"{where}: {' '.join(str(getattr(error, 'problem', None) or error).split())}"


def read_stack_config(path: Path) -> dict[str, Any]:
    """The ``config:`` mapping of a Pulumi stack file, checked for shape; raises StackError."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise StackError(source, [Problem("(file)", source, f"a readable UTF-8 stack file ({error.__class__.__name__}: {getattr(error, 'strerror', None) or error})", "readable")]) from None
    try:
        if _nests_deeper_than(text, _MAX_NESTING):
            raise StackError(source, [Problem("(file)", source, f"YAML nested at most {_MAX_NESTING} levels deep", "yaml")])
        document = yaml.load(text, Loader=_StackLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        raise StackError(source, [Problem("(file)", source, f"valid YAML{yaml_problem(error)}", "yaml")]) from None
    size = _expanded_size(document)
    if size is None or size > _MAX_EXPANDED_VALUES:
        raise StackError(source, [Problem(
            "(file)", source, f"at most {_MAX_EXPANDED_VALUES:,} values with YAML aliases expanded and no alias inside "
            "its own anchor (the Pulumi CLI rejects such files too)", "yaml-aliases",
        )])
    if document is None:
        raise StackError(source, [Problem("config", _MISSING, f"a stack file with `config: {{{SERVICE_KEY}: ...}}` (the file is empty)", "non-empty")])
    if not isinstance(document, dict) or not isinstance(document.get("config"), dict):
        shown = document.get("config", _MISSING) if isinstance(document, dict) else document
        raise StackError(source, [Problem("config", shown, f"a mapping that holds {SERVICE_KEY}")])
    config = document["config"]
    unknown = sorted(k for k in config if str(k).startswith(f"{CONFIG_NAMESPACE}:") and k not in KNOWN_KEYS)
    if unknown:
        raise StackError(source, [Problem(k, config[k], f"one of the keys {', '.join(KNOWN_KEYS)}") for k in unknown])
    if SERVICE_KEY not in config:
        raise StackError(source, [Problem(SERVICE_KEY, _MISSING, "the service's settings (required key)")])
    found = _non_json_values(config)
    if found:
        raise StackError(source, found)
    return config


def load_service(path: Path) -> ServiceSpec:
    """Read and validate a stack file's service, or raise StackError naming file, key, value."""
    return service_from_config(read_stack_config(path)[SERVICE_KEY], str(path))
