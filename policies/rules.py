"""The policy rules: pure functions over resource inputs, as the Pulumi engine hands them over.

Each rule reads what a resource *is* (a LeaderWorkerSet's pod templates and vLLM argv, an HPA's
bounds, a Service's type), never the stack file, so the pack checks any program that uses the
components, and `moe-ep preview` runs exactly these functions through the same analyzer.
A resource rule yields messages; a stack rule yields (resource name, message) pairs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Literal, Mapping, Sequence

from components import catalog, sizing, vllm
from components.node_pool import SECURITY_TIER_ANNOTATION
from components.pools import ARCHITECTURE_ANNOTATION, DTYPE_ANNOTATION, GPU_PRODUCT_ANNOTATION, ROLE_LABEL
from components.unit import LWS_NAME_LABEL

Enforcement = Literal["advisory", "mandatory", "disabled"]

LWS = "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_PATCH = "kubernetes:core/v1:NodePatch"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
SERVICE = "kubernetes:core/v1:Service"
WORKLOADS = {
    "kubernetes:apps/v1:Deployment": ("template",),
    "kubernetes:apps/v1:StatefulSet": ("template",),
    "kubernetes:apps/v1:DaemonSet": ("template",),
    "kubernetes:batch/v1:Job": ("template",),
    LWS: ("leaderWorkerTemplate.leaderTemplate", "leaderWorkerTemplate.workerTemplate"),
}
# Device-plugin resources that give a pod RDMA: the shared-device plugin, SR-IOV host devices,
# AWS EFA, and vendor plugins that name the function in the resource.
RDMA_RESOURCE = re.compile(r"^(rdma/.+|nvidia\.com/hostdev|vpc\.amazonaws\.com/efa|.+/.*(rdma|roce|hca|sriov).*)$")
MODEL_SERVER_CAPABILITIES = {"IPC_LOCK", "SYS_RAWIO"}
SECRET_NAME = re.compile(r"(?i)(api[_-]?key|token|password|passwd|secret|credential)")
ROUTER_COMPONENTS = {"router", "scheduler"}


@dataclass(frozen=True)
class Resource:
    """What a rule sees of one resource."""

    type: str
    name: str
    props: Mapping[str, Any]
    urn: str = ""
    """Which resource this is (names repeat: a unit's LWS, PDB and HPA share one); stack rules
    yield the resource at fault, and the pack reports the violation on its URN."""


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    enforcement: Enforcement
    scope: Literal["resource", "stack"]
    check: Callable[..., Iterable[Any]]


# --- reading resources -------------------------------------------------------------------------


def _get(obj: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(obj, Mapping) or key not in obj:
            return None
        obj = obj[key]
    return obj


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def pod_specs_with_metadata(r: Resource) -> list[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
    """(which template, pod metadata, pod spec) of a workload's pod templates."""
    found = []
    for path in WORKLOADS.get(r.type, ()):
        template = _get(r.props.get("spec"), path)
        if isinstance(template, Mapping) and isinstance(template.get("spec"), Mapping):
            found.append((path.rsplit(".", 1)[-1], template.get("metadata") or {}, template["spec"]))
    return found


def pod_specs(r: Resource) -> list[tuple[str, Mapping[str, Any]]]:
    """(which template, pod spec) of a workload's pod templates."""
    return [(which, pod) for which, _, pod in pod_specs_with_metadata(r)]


def containers(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]


def vllm_argv(container: Mapping[str, Any]) -> list[str] | None:
    """The `vllm serve` argv of a container (directly, or exec'd by a shell wrapper), if any."""
    command, args = list(container.get("command") or []), list(container.get("args") or [])
    for argv in (command + args, args):
        if argv[:2] == ["vllm", "serve"]:
            return [str(a) for a in argv]
    return None


def flag(argv: Sequence[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


@dataclass(frozen=True)
class UnitView:
    """A LeaderWorkerSet read as a vLLM unit."""

    name: str
    size: int
    gpus_per_pod: int
    argv: list[str]
    annotations: Mapping[str, str]

    @property
    def tp(self) -> int:
        return _int(flag(self.argv, "--tensor-parallel-size")) or 1

    @property
    def dp(self) -> int:
        return _int(flag(self.argv, "--data-parallel-size")) or 1

    @property
    def pp(self) -> int:
        return _int(flag(self.argv, "--pipeline-parallel-size")) or 1

    @property
    def expert_parallel(self) -> bool:
        return "--enable-expert-parallel" in self.argv

    @property
    def eplb(self) -> dict | None:
        if "--enable-eplb" not in self.argv:
            return None
        raw = flag(self.argv, "--eplb-config")
        return json.loads(raw) if raw else {}

    @property
    def architecture(self) -> catalog.Architecture | None:
        return catalog.ARCHITECTURES.get(self.annotations.get(ARCHITECTURE_ANNOTATION, ""))


    @property
    def gpu(self) -> catalog.GpuProduct | None:
        return catalog.GPUS.get(self.annotations.get(GPU_PRODUCT_ANNOTATION, ""))

    @property
    def dtype(self) -> str:
        return self.annotations.get(DTYPE_ANNOTATION, "")

    def layout(self) -> sizing.Layout:
        eplb = self.eplb or {}
        return sizing.Layout(
            self.tp, self.dp, self.expert_parallel, _int(eplb.get("num_redundant_experts")) or 0,
            flag(self.argv, "--speculative-config") is not None,
        )

    def workload(self) -> sizing.Workload:
        kv_dtype = flag(self.argv, "--kv-cache-dtype") or "auto"
        return sizing.Workload(
            max_model_len=_int(flag(self.argv, "--max-model-len")) or sizing.Workload.max_model_len,
            gpu_memory_utilization=float(flag(self.argv, "--gpu-memory-utilization") or sizing.Workload.gpu_memory_utilization),
            kv_cache_dtype=kv_dtype,
            max_num_batched_tokens=_int(flag(self.argv, "--max-num-batched-tokens")),
            max_num_seqs=_int(flag(self.argv, "--max-num-seqs")),
            all2all_backend=flag(self.argv, "--all2all-backend"),
        )


def unit_view(r: Resource) -> UnitView | None:
    if r.type != LWS:
        return None
    specs = dict(pod_specs(r))
    leader = specs.get("leaderTemplate") or specs.get("workerTemplate")
    if leader is None:
        return None
    for c in leader.get("containers") or []:
        argv = vllm_argv(c)
        if argv:
            gpus = max((_int(v) or 0 for k, v in (_get(c, "resources.limits") or {}).items() if k.endswith("/gpu")), default=0)
            return UnitView(
                name=r.name,
                size=_int(_get(r.props, "spec.leaderWorkerTemplate.size")) or 1,
                gpus_per_pod=gpus,
                argv=argv,
                annotations=dict(_get(r.props, "metadata.annotations") or {}),
            )
    return None


# --- resource rules ----------------------------------------------------------------------------


def experts_divisible_by_ep(r: Resource) -> Iterator[str]:
    unit = unit_view(r)
    if unit is None or unit.eplb is None or unit.architecture is None:
        return
    ep = unit.tp * unit.dp
    redundant = _int(unit.eplb.get("num_redundant_experts")) or 0
    total = unit.architecture.routed_experts + redundant
    if total % ep:
        yield (f"EPLB needs (routed experts + redundant) divisible by EP: ({unit.architecture.routed_experts} + "
               f"{redundant}) % {ep} = {total % ep}; use {redundant + (-total) % ep} redundant experts")


def uneven_expert_split(r: Resource) -> Iterator[str]:
    unit = unit_view(r)
    if unit is None or not unit.expert_parallel or unit.eplb is not None or unit.architecture is None:
        return
    ep, experts = unit.tp * unit.dp, unit.architecture.routed_experts
    if experts % ep:
        low, high = experts // ep, experts // ep + 1
        yield (f"{experts} experts over EP {ep} leave ranks with {low} or {high} experts "
               f"({experts % ep} ranks carry one more, {100 * (high - low) / max(low, 1):.0f}% more load); "
               "enable EPLB with redundant experts or pick an EP that divides the experts")


def parallelism_covers_unit(r: Resource) -> Iterator[str]:
    unit = unit_view(r)
    if unit is None:
        return
    gpus = unit.size * unit.gpus_per_pod
    if unit.tp * unit.dp * unit.pp != gpus:
        yield f"TP × DP × PP = {unit.tp} × {unit.dp} × {unit.pp} = {unit.tp * unit.dp * unit.pp}, but the unit has {unit.size} pods × {unit.gpus_per_pod} GPUs = {gpus}"


def tp_within_node(r: Resource) -> Iterator[str]:
    unit = unit_view(r)
    if unit is not None and unit.tp > unit.gpus_per_pod:
        yield f"tensor parallel size {unit.tp} exceeds the {unit.gpus_per_pod} GPUs of one pod (TP across nodes needs NVLink-class links)"


def memory_fit(r: Resource) -> Iterator[str]:
    """Weights, runtime reserve and one max_model_len sequence fit each GPU (components.sizing)."""
    unit = unit_view(r)
    if unit is None or unit.architecture is None or unit.gpu is None or unit.dtype not in catalog.DTYPE_BYTES:
        return
    verdict = sizing.fit_layout(unit.architecture, unit.gpu, unit.dtype, unit.layout(), unit.workload())
    if not verdict.fits:
        yield f"{unit.architecture.name} {unit.dtype} with TP {unit.tp} DP {unit.dp}: {verdict.message}"


def startup_budget(r: Resource) -> Iterator[str]:
    """Rank 0's startup probe allows at least the model's estimated load time."""
    unit = unit_view(r)
    if unit is None or unit.architecture is None or unit.dtype not in catalog.DTYPE_BYTES:
        return
    needed = sizing.load_minutes(unit.architecture, unit.dtype)
    for which, pod in pod_specs(r):
        for c in pod.get("containers") or []:
            argv = vllm_argv(c)
            if argv is None or "--headless" in argv:
                continue  # headless ranks serve no HTTP and carry no probes
            probe = c.get("startupProbe") or {}
            budget = ((_int(probe.get("periodSeconds")) or 10) * (_int(probe.get("failureThreshold")) or 3)
                      + (_int(probe.get("initialDelaySeconds")) or 0))
            if budget < needed * 60:
                yield (f"{which}: the startup probe allows {budget / 60:.0f} min; loading {unit.architecture.name} "
                       f"{unit.dtype} takes about {needed} min (unit.startup_minutes)")


def remote_code_models(r: Resource) -> Iterator[str]:
    """A model whose repository carries code vLLM needs to start is served with --trust-remote-code."""
    unit = unit_view(r)
    if unit is None or unit.architecture is None or not unit.architecture.remote_code:
        return
    if "--trust-remote-code" not in unit.argv:
        yield (f"{unit.architecture.name} loads code from its model repository (its tokenizer): vLLM fails at start "
               "without --trust-remote-code (model.trust_remote_code)")


def gpu_requests_equal_limits(r: Resource) -> Iterator[str]:
    for which, pod in pod_specs(r):
        for c in containers(pod):
            requests, limits = _get(c, "resources.requests") or {}, _get(c, "resources.limits") or {}
            for key in sorted(set(requests) | set(limits)):
                if not key.endswith("/gpu"):
                    continue
                req, lim = requests.get(key), limits.get(key)
                if lim is None or (req is not None and float(req) != float(lim)):
                    yield f"{which}/{c.get('name')}: {key} requests {req} and limits {lim} must be equal"
                elif float(lim) != int(float(lim)) or int(float(lim)) < 1:
                    yield f"{which}/{c.get('name')}: {key} = {lim}: whole GPUs only"


def multi_node_group_restart(r: Resource) -> Iterator[str]:
    unit = unit_view(r)
    policy = _get(r.props, "spec.leaderWorkerTemplate.restartPolicy")
    if unit is not None and unit.size > 1 and policy != "RecreateGroupOnPodRestart":
        yield f"a {unit.size}-node unit restarts ranks one by one (restartPolicy {policy}); a DP/EP group cannot lose a member: use RecreateGroupOnPodRestart (unit.guard)"


def multi_node_rdma(r: Resource) -> Iterator[str]:
    unit = unit_view(r)
    if unit is None or unit.size <= 1:
        return
    for which, pod in pod_specs(r):
        for c in pod.get("containers") or []:
            if vllm_argv(c) is None:
                continue
            limits = _get(c, "resources.limits") or {}
            caps = set(_get(c, "securityContext.capabilities.add") or [])
            if not any(RDMA_RESOURCE.match(k) for k in limits):
                yield f"{which}: a {unit.size}-node unit requests no RDMA device (node_pool.rdma)"
            if "IPC_LOCK" not in caps:
                yield f"{which}: a {unit.size}-node unit lacks capability IPC_LOCK (RDMA memory registration)"


def dev_shm_memory(r: Resource) -> Iterator[str]:
    for which, pod in pod_specs(r):
        for c in pod.get("containers") or []:
            if vllm_argv(c) is None:
                continue
            mounts = {m.get("name") for m in c.get("volumeMounts") or [] if m.get("mountPath") == "/dev/shm"}
            memory = {v.get("name") for v in pod.get("volumes") or [] if _get(v, "emptyDir.medium") == "Memory"}
            if not mounts & memory:
                yield f"{which}: vLLM has no memory-backed /dev/shm (NCCL and the engine's shared memory need it)"


_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def image_pinned(r: Resource) -> Iterator[str]:
    for which, pod in pod_specs(r):
        for c in containers(pod):
            image = str(c.get("image") or "")
            if _DIGEST.search(image):
                continue
            tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else None
            if tag is None or tag == "latest":
                yield f"{which}/{c.get('name')}: image {image!r} is not pinned (use a version tag or a digest, not latest)"


def vllm_version_known(r: Resource) -> Iterator[str]:
    for which, pod in pod_specs(r):
        for c in pod.get("containers") or []:
            if vllm_argv(c) is None:
                continue
            version = vllm.image_version(str(c.get("image") or ""))
            if version not in vllm.SUPPORTED_VERSIONS:
                yield (f"{which}: image {c.get('image')!r} pins vLLM {version or '(unknown)'}; flags are emitted for "
                       f"{', '.join(vllm.SUPPORTED_VERSIONS)}")


def autoscaler_bounds(r: Resource) -> Iterator[str]:
    if r.type == HPA:
        low, high = _int(_get(r.props, "spec.minReplicas")) or 1, _int(_get(r.props, "spec.maxReplicas"))
    elif r.type == SCALED_OBJECT:
        low, high = _int(_get(r.props, "spec.minReplicaCount")), _int(_get(r.props, "spec.maxReplicaCount"))
    else:
        return
    if low is None or high is None or not 1 <= low <= high:
        yield f"bounds min {low}, max {high}: need 1 <= min <= max"


def _literal_secret_env(c: Mapping[str, Any]) -> Iterator[str]:
    for e in c.get("env") or []:
        if SECRET_NAME.search(str(e.get("name", ""))) and e.get("value"):
            yield f"env {e['name']} carries a literal value; reference a Secret (valueFrom.secretKeyRef)"
    argv = [str(a) for a in [*(c.get("command") or []), *(c.get("args") or [])]]
    for i, arg in enumerate(argv):
        if arg in ("--api-key", "--hf-token") or arg.startswith(("--api-key=", "--hf-token=")):
            yield f"argument {arg.split('=')[0]} puts a secret on the command line; use the environment from a Secret"


def no_secret_literals(r: Resource) -> Iterator[str]:
    for which, pod in pod_specs(r):
        for c in containers(pod):
            for message in _literal_secret_env(c):
                yield f"{which}/{c.get('name')}: {message}"
    if r.type == CONFIG_MAP:
        for key in sorted((r.props.get("data") or {})):
            if SECRET_NAME.search(key):
                yield f"ConfigMap key {key!r} looks like a secret; use a Secret"
    for key, value in sorted((_get(r.props, "metadata.annotations") or {}).items()):
        if SECRET_NAME.search(key) and value:
            yield f"annotation {key!r} looks like a secret value"


def security_context_tier(r: Resource) -> Iterator[str]:
    component = (_get(r.props, "metadata.labels") or {}).get("app.kubernetes.io/component")
    for which, meta, pod in pod_specs_with_metadata(r):
        # The node pool's provider flag (node_pool.privileged) marks the pods it allows to run privileged.
        privileged_ok = (meta.get("annotations") or {}).get(SECURITY_TIER_ANNOTATION) == "privileged"
        for c in containers(pod):
            sc = c.get("securityContext") or {}
            where = f"{which}/{c.get('name')}"
            if sc.get("privileged"):
                if not privileged_ok:
                    yield f"{where}: privileged without the node pool's provider flag ({SECURITY_TIER_ANNOTATION}: privileged)"
                continue
            if sc.get("allowPrivilegeEscalation") is not False:
                yield f"{where}: allowPrivilegeEscalation must be false"
            caps = _get(sc, "capabilities") or {}
            if "ALL" not in (caps.get("drop") or []):
                yield f"{where}: capabilities must drop ALL"
            added = set(caps.get("add") or [])
            if component in ROUTER_COMPONENTS:
                if added or sc.get("runAsNonRoot") is not True or _get(sc, "seccompProfile.type") != "RuntimeDefault":
                    yield f"{where}: router pods meet Pod Security 'restricted' (non-root, no capabilities, RuntimeDefault seccomp)"
            elif added - MODEL_SERVER_CAPABILITIES:
                yield f"{where}: capabilities {sorted(added - MODEL_SERVER_CAPABILITIES)} beyond what RDMA needs ({sorted(MODEL_SERVER_CAPABILITIES)})"
            argv = vllm_argv(c) or []
            if "SYS_RAWIO" in added and not (flag(argv, "--all2all-backend") or "").startswith("deepep"):
                yield f"{where}: SYS_RAWIO is only for deepep all-to-all backends"


# --- stack rules -------------------------------------------------------------------------------


def _selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    match = (selector or {}).get("matchLabels") or {}
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def _lws_pod_labels(r: Resource) -> list[dict[str, str]]:
    """Labels of the unit's pods, including those LWS adds."""
    name = _get(r.props, "metadata.name") or r.name
    found = []
    for path in ("leaderTemplate", "workerTemplate"):
        template = _get(r.props, f"spec.leaderWorkerTemplate.{path}")
        if isinstance(template, Mapping):
            labels = dict(_get(template, "metadata.labels") or {})
            found.append({**labels, LWS_NAME_LABEL: name})
    return found


def pool_has_pdb(resources: Sequence[Resource]) -> Iterator[tuple[Resource, str]]:
    budgets = [r for r in resources if r.type == PDB]
    for r in resources:
        if r.type != LWS:
            continue
        pods = _lws_pod_labels(r)
        if not any(_selects(_get(b.props, "spec.selector"), labels) for b in budgets for labels in pods):
            yield r, "no PodDisruptionBudget selects this unit's pods: a node drain may take every unit down"


def network_policy_present(resources: Sequence[Resource]) -> Iterator[tuple[Resource, str]]:
    policies = [r for r in resources if r.type == NETWORK_POLICY]
    for r in resources:
        if r.type != LWS:
            continue
        namespace = _get(r.props, "metadata.namespace")
        if not any(_get(p.props, "metadata.namespace") == namespace and _selects(_get(p.props, "spec.podSelector"), labels)
                   for p in policies for labels in _lws_pod_labels(r)):
            yield r, "no NetworkPolicy selects this unit's pods: every pod in the cluster can reach its ports"


def endpoint_requires_api_key(resources: Sequence[Resource]) -> Iterator[tuple[Resource, str]]:
    """Every vLLM server checks a key from a Secret (the router forwards Authorization)."""
    for r in resources:
        for which, pod in pod_specs(r):
            for c in pod.get("containers") or []:
                argv = vllm_argv(c)
                if argv is None or "--headless" in argv:
                    continue
                env = {e.get("name"): e for e in c.get("env") or []}
                if not _get(env.get("VLLM_API_KEY"), "valueFrom.secretKeyRef.name"):
                    yield r, f"{which}: vLLM serves without VLLM_API_KEY from a Secret: anyone who reaches the endpoint can use it"


def kv_connectors_consistent(resources: Sequence[Resource]) -> Iterator[tuple[Resource, str]]:
    by_service: dict[str, dict[str, str | None]] = {}
    units: dict[tuple[str, str], Resource] = {}
    for r in resources:
        unit = unit_view(r)
        if unit is None:
            continue
        labels = _get(r.props, "metadata.labels") or {}
        role = labels.get(ROLE_LABEL)
        if role not in ("prefill", "decode"):
            continue
        raw = flag(unit.argv, "--kv-transfer-config")
        connector = json.loads(raw).get("kv_connector") if raw else None
        service = labels.get("app.kubernetes.io/name", "")
        by_service.setdefault(service, {})[role] = connector
        units[service, role] = r
    for service, roles in sorted(by_service.items()):
        if "prefill" in roles and roles.get("prefill") != roles.get("decode"):
            yield (units.get((service, "decode")) or units[service, "prefill"],
                   f"service {service}: prefill uses KV connector {roles.get('prefill')}, decode {roles.get('decode')}: KV cache cannot move")


def units_at_most(resources: Sequence[Resource]) -> list[tuple[UnitView, int]]:
    """Every unit with the replicas it may reach: its autoscaler's maximum, else its replicas."""
    ceilings: dict[str, int] = {}
    for r in resources:
        bound = {HPA: "spec.maxReplicas", SCALED_OBJECT: "spec.maxReplicaCount"}.get(r.type)
        if bound and _int(_get(r.props, bound)):
            ceilings[_get(r.props, "spec.scaleTargetRef.name")] = _int(_get(r.props, bound))
    found = []
    for r in resources:
        unit = unit_view(r)
        if unit is not None:
            name = _get(r.props, "metadata.name") or r.name
            found.append((unit, ceilings.get(name, _int(_get(r.props, "spec.replicas")) or 0)))
    return found


def autoscaler_within_capacity(resources: Sequence[Resource]) -> Iterator[tuple[Resource, str]]:
    """Units at their maximum replicas fit the node pool: a Karpenter GPU limit, or the number of
    existing nodes labelled for it."""
    units = units_at_most(resources)
    gpus = sum(most * unit.size * unit.gpus_per_pod for unit, most in units)
    nodes = sum(most * unit.size for unit, most in units)
    for pool in (r for r in resources if r.type == NODE_POOL):
        for key, value in (_get(pool.props, "spec.limits") or {}).items():
            if key.endswith("/gpu") and _int(value) is not None and _int(value) < gpus:
                yield pool, f"{key} limit {value} is below the {gpus} GPUs the units need at their maximum replicas"
    # Reported on the first node by name: the engine sends resources in no set order.
    patched = sorted((r for r in resources if r.type == NODE_PATCH), key=lambda r: r.name)
    if patched and len(patched) < nodes:
        yield patched[0], f"{len(patched)} existing nodes are labelled for the pool; the units need {nodes} at their maximum replicas"


RULES: tuple[Rule, ...] = (
    Rule("experts-divisible-by-ep", "With EPLB, routed plus redundant experts divide evenly over the EP ranks.", "mandatory", "resource", experts_divisible_by_ep),
    Rule("uneven-expert-split", "Without EPLB, an EP size that does not divide the experts overloads some ranks.", "advisory", "resource", uneven_expert_split),
    Rule("parallelism-covers-unit", "TP × DP × PP equals the GPUs of a unit.", "mandatory", "resource", parallelism_covers_unit),
    Rule("tp-within-node", "Tensor parallelism stays inside one pod's GPUs.", "mandatory", "resource", tp_within_node),
    Rule("memory-fit", "Weights, runtime reserve and one max_model_len sequence fit every GPU of a unit.", "mandatory", "resource", memory_fit),
    Rule("startup-budget", "Rank 0's startup probe allows the model's estimated load time.", "mandatory", "resource", startup_budget),
    Rule("remote-code-models", "A model that needs code from its repository is served with --trust-remote-code.", "mandatory", "resource", remote_code_models),
    Rule("gpu-requests-equal-limits", "GPU requests equal limits, in whole GPUs.", "mandatory", "resource", gpu_requests_equal_limits),
    Rule("multi-node-group-restart", "Multi-node units restart as a group.", "mandatory", "resource", multi_node_group_restart),
    Rule("multi-node-rdma", "Multi-node units request an RDMA device and IPC_LOCK.", "mandatory", "resource", multi_node_rdma),
    Rule("dev-shm-memory", "vLLM containers mount a memory-backed /dev/shm.", "mandatory", "resource", dev_shm_memory),
    Rule("image-pinned", "Images are pinned to a version tag or digest, never latest.", "mandatory", "resource", image_pinned),
    Rule("vllm-version-known", "The vLLM image's version is one moe-ep emits flags for.", "mandatory", "resource", vllm_version_known),
    Rule("autoscaler-bounds", "Autoscalers keep 1 <= min <= max.", "mandatory", "resource", autoscaler_bounds),
    Rule("no-secret-literals", "No secret values in env literals, args, ConfigMaps or annotations.", "mandatory", "resource", no_secret_literals),
    Rule("security-context-tier", "Router pods are restricted; model servers add only RDMA capabilities, never privileged without the provider flag.", "mandatory", "resource", security_context_tier),
    Rule("pool-has-pdb", "Every unit has a PodDisruptionBudget.", "mandatory", "stack", pool_has_pdb),
    Rule("network-policy-present", "Every unit's pods are selected by a NetworkPolicy.", "mandatory", "stack", network_policy_present),
    Rule("endpoint-requires-api-key", "Every vLLM server requires the API key from a Secret.", "mandatory", "stack", endpoint_requires_api_key),
    Rule("kv-connectors-consistent", "Prefill and decode use the same KV connector.", "mandatory", "stack", kv_connectors_consistent),
    Rule("autoscaler-within-capacity", "Units at their maximum replicas fit the node pool's GPU limit.", "mandatory", "stack", autoscaler_within_capacity),
)
RULES_BY_NAME = {rule.name: rule for rule in RULES}
