"""The typed shape of a stack: one service under the config key ``moe-ep:service``.

Field constraints live on the models; rules that relate several fields (TP × DP against the GPUs
of a unit, expert counts against EP, ...) are small pure functions collected by :func:`problems`,
so tests call them directly and errors name the exact key path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import catalog

CONFIG_NAMESPACE = "moe-ep"
SERVICE_KEY = f"{CONFIG_NAMESPACE}:service"
POLICY_KEY = f"{CONFIG_NAMESPACE}:policy"
KNOWN_KEYS = (SERVICE_KEY, POLICY_KEY)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")

# vLLM 0.33.0 ``--all2all-backend`` choices (vllm/config/parallel.py, All2AllBackend).
All2AllBackend = Literal[
    "naive", "allgather_reducescatter", "deepep_high_throughput", "deepep_low_latency",
    "pplx", "flashinfer_all2allv",
]
DEEPEP_BACKENDS = ("deepep_high_throughput", "deepep_low_latency")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _dns_label(value: str, max_length: int = 63) -> str:
    if len(value) > max_length or not _DNS_LABEL.match(value):
        raise ValueError(
            f"a DNS-1123 label of at most {max_length} characters (lower-case letters, digits, '-', "
            "starting and ending with a letter or digit)"
        )
    return value


def _quantity(value: str) -> str:
    if not _QUANTITY.match(value):
        raise ValueError("a Kubernetes quantity such as '64Gi', '500m' or '32'")
    return value


class ModelSpec(_Model):
    id: str = Field(min_length=1, description="What vLLM serves: a Hugging Face id or a path in the image.")
    architecture: str = Field(description="Catalog key of the MoE architecture (components.catalog).")
    dtype: Literal["fp8", "bf16", "int4"] = Field("fp8", description="Weight dtype. Default fp8.")
    max_model_len: int = Field(32768, ge=256, le=4_194_304, description="Context length. Default 32768.")
    served_model_name: str | None = Field(
        None, min_length=1, description="Name clients send in `model`; default: the model id."
    )
    kv_cache_dtype: Literal["auto", "bf16", "fp8"] = Field(
        "auto", description="KV-cache dtype; `auto` follows the model. Default auto."
    )
    trust_remote_code: bool = Field(False, description="Pass --trust-remote-code. Default false.")

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, value: str) -> str:
        if value not in catalog.ARCHITECTURES:
            raise ValueError(f"one of {', '.join(sorted(catalog.ARCHITECTURES))}")
        return value

    @property
    def arch(self) -> catalog.Architecture:
        return catalog.ARCHITECTURES[self.architecture]


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


_POOL_ALIASES = {
    "tensor_parallel_size": "TP_SIZE",
    "data_parallel_size": "DP_SIZE",
    "expert_parallel_size": "EP_SIZE",
}


class PoolSpec(_Model):
    """One role's units: ``replicas`` units of ``nodes_per_replica`` nodes each."""

    replicas: int = Field(1, ge=0, le=1000, description="Units (vLLM instances). Default 1.")
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
    extra_args: tuple[str, ...] = Field(
        (), description="Appended to the vllm argv verbatim (checked by the vLLM conformance tests)."
    )

    @model_validator(mode="before")
    @classmethod
    def _one_spelling(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for name, alias in _POOL_ALIASES.items():
                if name in data and alias in data:
                    raise ValueError(f"give {name} or its alias {alias}, not both")
            if data.get("EP_SIZE") is not None or data.get("expert_parallel_size") is not None:
                if data.get("expert_parallel") is False:
                    raise ValueError("expert_parallel_size (EP_SIZE) is set but expert_parallel is false")
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
    comm_interface: str = Field("eth0", description="NIC for NCCL/Gloo/UCX and COMM_IFNAME. Default eth0.")
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

    @field_validator("max_surge", "max_unavailable")
    @classmethod
    def _count_or_percent(cls, value: int | str) -> int | str:
        if isinstance(value, int):
            if value < 0:
                raise ValueError("a non-negative number or a percentage such as '25%'")
            return value
        if not re.match(r"^[0-9]{1,3}%$", value):
            raise ValueError("a non-negative number or a percentage such as '25%'")
        return value


class ServiceSpec(_Model):
    """One MoE model served by a decode pool and, optionally, a prefill pool."""

    name: str = Field(description="DNS-1123 label, at most 40 characters: the prefix of every object.")
    namespace: str = Field(description="Namespace everything is created in.")
    image: str = Field(min_length=1, description="vLLM image; its tag pins the vLLM version whose flags are emitted.")
    model: ModelSpec
    gpu: GpuSpec
    prefill: PoolSpec | None = Field(None, description="Prefill pool; absent = decode-only (no disaggregation).")
    decode: PoolSpec
    kv_transfer: KvTransferSpec = Field(default_factory=KvTransferSpec, description="KV transfer between roles.")
    unit: UnitSpec = Field(default_factory=UnitSpec)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _dns_label(value, 40)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return _dns_label(value)

    @property
    def disaggregated(self) -> bool:
        return self.prefill is not None

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
        shown = "(missing)" if self.value is _MISSING else repr(self.value)
        return f"{source}: {self.path} = {shown}: expected {self.expected} [{self.rule}]"


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
    if pool.mtp is not None and arch.mtp_method is None:
        found.append(Problem(
            f"{at}.mtp", pool.mtp.model_dump(),
            f"absent: {arch.name} has no multi-token-prediction head", "mtp-needs-mtp-head",
        ))
    return found


def problems(spec: ServiceSpec) -> list[Problem]:
    """Every cross-field rule over the whole service, in a stable order."""
    found: list[Problem] = []
    for role, pool in spec.pools().items():
        found.extend(pool_problems(role, pool, spec))
    return found


# --- loading -----------------------------------------------------------------------------------


class StackError(Exception):
    """Bad input: a stack file that cannot become a valid ServiceSpec."""

    def __init__(self, source: str, found: list[Problem]):
        self.source = source
        self.problems = found
        super().__init__("\n".join(p.render(source) for p in found))


def _pydantic_problems(error: ValidationError, prefix: str) -> list[Problem]:
    found = []
    for item in error.errors(include_url=False):
        path = prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in item["loc"])
        kind, message = item["type"], item["msg"]
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
        raise StackError(source, _pydantic_problems(error, SERVICE_KEY)) from None
    found = problems(spec)
    if found:
        raise StackError(source, found)
    return spec


def read_stack_config(path: Path) -> dict[str, Any]:
    """The ``config:`` mapping of a Pulumi stack file, checked for shape; raises StackError."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise StackError(source, [Problem("(file)", source, f"a readable UTF-8 stack file ({error.__class__.__name__}: {getattr(error, 'strerror', None) or error})", "readable")]) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise StackError(source, [Problem("(file)", source, f"valid YAML{where}: {getattr(error, 'problem', error)}", "yaml")]) from None
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
    return config


def load_service(path: Path) -> ServiceSpec:
    """Read and validate a stack file's service, or raise StackError naming file, key, value."""
    return service_from_config(read_stack_config(path)[SERVICE_KEY], str(path))
