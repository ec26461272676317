"""A stack, planned offline: validated spec, the program's registrations, manifests, checks.

This is what ``moe-ep preview`` and ``moe-ep render`` print or write; it is also what tests and
benchmarks drive, so the CLI stays a thin shell around it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi.output import Unknown

from components import sizing, vllm
from components.prerequisites import required_crds
from components.spec import SERVICE_KEY, ServiceSpec, read_stack_config, service_from_config

from . import analyze, engine, manifests, schemas

CONTEXT_KEY = "kubernetes:context"

PROGRAM = "__main__.py"


def project_root(start: Path | None = None) -> Path:
    """The directory holding ``Pulumi.yaml``: searched upwards from ``start`` (default: the
    working directory), else the checkout this package was installed from."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "Pulumi.yaml").is_file() and (folder / PROGRAM).is_file():
            return folder
    return Path(__file__).resolve().parent.parent


def stack_file(project: Path, stack: str) -> Path:
    return project / "stacks" / f"Pulumi.{stack}.yaml"


def stack_name(path: Path) -> str:
    """``Pulumi.prod.yaml`` -> ``prod``; any other file name -> its stem."""
    name = path.name
    if name.startswith("Pulumi.") and name.endswith((".yaml", ".yml")):
        return name.split(".", 1)[1].rsplit(".", 1)[0]
    return path.stem


@dataclass
class Plan:
    stack: str
    source: Path
    config: dict[str, Any]
    spec: ServiceSpec
    run: engine.Run
    objects: list[dict[str, Any]]
    violations: list[dict[str, Any]] = field(default_factory=list)
    crd_dir: Path | None = None
    schema_problems: list[str] = field(default_factory=list)
    """Custom resources the CRDs in ``crd_dir`` reject (they would fail at apply time)."""

    @property
    def mandatory_violations(self) -> list[dict[str, Any]]:
        return [v for v in self.violations if v["enforcement"] == "mandatory"]


def load(source: Path) -> tuple[dict[str, Any], ServiceSpec]:
    """Read and validate a stack file; raises StackError (exit 2) naming file, key and value."""
    config = read_stack_config(source)
    return config, service_from_config(config[SERVICE_KEY], str(source))


def build(source: Path, project: Path | None = None, stack: str | None = None, crd_dir: Path | None = None,
          preview: bool = False) -> Plan:
    """Validate ``source``, run the real program on it under mocks, run the policy pack, and,
    given a CRD folder, check the custom resources against it. ``preview``: as a fresh stack's
    first ``pulumi preview`` (what providers compute is unknown; see ``engine``), so the policy
    results are the ones ``pulumi preview --policy-pack policies`` reports on a new stack."""
    config, spec = load(source)
    levels = analyze.enforcement_levels(config, str(source))
    root = project or project_root()
    name = stack or stack_name(source)
    run = engine.run_program(root / PROGRAM, config, name, preview=preview)
    objects = manifests.manifests(run.resources)
    return Plan(
        stack=name, source=source, config=config, spec=spec, run=run, objects=objects,
        violations=analyze.analyze([*run.resources, run.stack_resource()], levels), crd_dir=crd_dir,
        schema_problems=[str(p) for p in schemas.validate_custom_resources(objects, crd_dir)] if crd_dir else [],
    )


# --- the JSON view (DESIGN.md's contract) ------------------------------------------------------


def pool_view(spec: ServiceSpec, role: str) -> dict[str, Any] | None:
    pool = spec.pools().get(role)
    if pool is None:
        return None
    return {
        "replicas": pool.replicas,
        "nodes_per_replica": pool.nodes_per_replica,
        "gpus_per_node": spec.gpu.per_node,
        "tensor_parallel_size": pool.tensor_parallel_size,
        "data_parallel_size": pool.data_parallel_size,
        "expert_parallel_size": pool.ep_size,
        "gpus": sizing.gpus(pool, spec.gpu.per_node),
        "autoscaling": (
            {"min": pool.autoscaling.min_replicas, "max": pool.autoscaling.max_replicas, "engine": pool.autoscaling.engine}
            if pool.autoscaling else None
        ),
    }


def commands_view(spec: ServiceSpec) -> dict[str, Any]:
    views: dict[str, Any] = {}
    for role in spec.pools():
        launch = vllm.launch(spec, role)
        views[role] = {"leader": list(launch.leader), "worker": list(launch.worker) if launch.worker else None}
    return views


def gpus_view(spec: ServiceSpec) -> dict[str, int]:
    initial = sum(p.replicas * sizing.gpus(p, spec.gpu.per_node) for p in spec.pools().values())
    most = sum(
        max(p.replicas, p.autoscaling.max_replicas if p.autoscaling else 0) * sizing.gpus(p, spec.gpu.per_node)
        for p in spec.pools().values()
    )
    return {"initial": initial, "max": most}


def resources_view(run: engine.Run) -> list[dict[str, Any]]:
    rows = []
    for r in run.resources:
        meta = r.inputs.get("metadata") or {}
        rows.append({
            "type": r.type, "name": r.name, "kind": r.kind,
            "namespace": meta.get("namespace") if isinstance(meta, dict) else None,
            "parent": r.parent_name,
        })
    return sorted(rows, key=lambda row: (row["type"], row["name"]))


def _gb(value: float) -> float:
    return round(value, 2)


def sizing_view(spec: ServiceSpec) -> dict[str, Any]:
    """Per pool: memory per GPU, KV capacity, the fit verdict, roofline throughput and cost
    (components.sizing). Throughput assumes sizing's typical request (TYPICAL_INPUT_LEN in,
    TYPICAL_OUTPUT_LEN out): the stack does not describe its traffic."""
    arch, gpu, dtype = spec.model.arch, spec.gpu.info, spec.model.dtype
    price = sizing.price(spec)
    prompt, output = sizing.TYPICAL_INPUT_LEN, sizing.TYPICAL_OUTPUT_LEN
    view: dict[str, Any] = {}
    for role, pool in spec.pools().items():
        verdict = sizing.fit(spec, role)
        per_replica = sizing.gpus(pool, spec.gpu.per_node)
        if role == "prefill":
            speed = sizing.prefill_throughput(arch, gpu, dtype, prompt)
        else:
            speed = sizing.decode_throughput(arch, gpu, dtype, verdict, prompt, output, sizing.workload_of(spec, pool))
        unit_tokens = speed.tokens_per_second_per_gpu * per_replica
        hourly = sizing.cost_per_hour(pool.replicas * per_replica, price)
        w = verdict.weights
        view[role] = {
            "gpus_per_replica": per_replica,
            "startup_minutes": sizing.startup_minutes(spec, pool),
            "fits": verdict.fits,
            "margin_gb": _gb(verdict.margin_gb),
            "message": verdict.message,
            "memory_per_gpu_gb": {
                "device": _gb(verdict.gpu_memory_gb), "budget": _gb(verdict.budget_gb),
                "weights": _gb(verdict.weights_gb), "reserve": _gb(verdict.reserve_gb),
                "kv_cache": _gb(verdict.kv_cache_gb), "one_sequence": _gb(verdict.sequence_gb),
            },
            "weights_per_gpu_gb": {
                "routed_experts": _gb(w.routed_experts / sizing.GB), "shared_experts": _gb(w.shared_experts / sizing.GB),
                "dense_mlp": _gb(w.dense_mlp / sizing.GB), "attention": _gb(w.attention / sizing.GB),
                "embeddings": _gb(w.embeddings / sizing.GB), "router": _gb(w.router / sizing.GB),
            },
            "routed_experts_per_gpu": round(w.experts_per_gpu, 3),
            "kv_tokens_per_dp_rank": verdict.kv_tokens,
            "kv_tokens_per_replica": verdict.kv_tokens_per_unit,
            "max_model_len": verdict.max_model_len,
            "throughput": {
                "source": speed.source, "input_len": prompt, "output_len": output if role == "decode" else 0,
                "tokens_per_second_per_gpu": round(speed.tokens_per_second_per_gpu, 1),
                "tokens_per_second_per_replica": round(unit_tokens, 1),
            },
            "cost": {
                "price_per_gpu_hour": price,
                "per_hour": round(hourly, 2),
                "per_million_tokens": round(sizing.cost_per_million_tokens(hourly, unit_tokens * pool.replicas), 3)
                if unit_tokens > 0 and pool.replicas else None,
            },
        }
    return view


def outputs_view(run: engine.Run) -> dict[str, Any]:
    return {k: ("[secret]" if k in run.secret_outputs else "[unknown]" if isinstance(v, Unknown) else v)
            for k, v in sorted(run.outputs.items())}


ROLES = ("prefill", "decode")


def _every_role(views: dict[str, Any]) -> dict[str, Any]:
    """Both roles' keys, null for a pool the stack does not have (as under ``pools``)."""
    return {role: views.get(role) for role in ROLES}


def to_json(plan: Plan) -> dict[str, Any]:
    spec = plan.spec
    return {
        "project": plan.run.project,
        "stack": plan.stack,
        "service": {"name": spec.name, "namespace": spec.namespace},
        "pools": {role: pool_view(spec, role) for role in ROLES},
        "gpus": gpus_view(spec),
        "commands": _every_role(commands_view(spec)),
        "resources": resources_view(plan.run),
        "policy": {"violations": plan.violations},
        "schema": {"crd_dir": str(plan.crd_dir) if plan.crd_dir else None, "problems": plan.schema_problems},
        "sizing": _every_role(sizing_view(spec)),
        "outputs": outputs_view(plan.run),
        "cluster": cluster_view(plan),
    }


def cluster_view(plan: Plan) -> dict[str, Any]:
    """Which cluster `pulumi up` deploys to (the stack's pinned ``kubernetes:context``, null: the
    kubeconfig's current one) and what it reads there before creating anything: the CRDs, and
    the nodes it patches."""
    existing = plan.spec.node_pool.existing if plan.spec.node_pool else None
    return {"context": plan.config.get(CONTEXT_KEY), "crds": required_crds(plan.spec),
            "nodes": list(existing.nodes) if existing else []}
