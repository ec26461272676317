"""A stack, planned offline: validated spec, the program's registrations, manifests, checks.

This is what ``moe-ep preview`` and ``moe-ep render`` print or write; it is also what tests and
benchmarks drive, so the CLI stays a thin shell around it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components import sizing, vllm
from components.spec import SERVICE_KEY, ServiceSpec, read_stack_config, service_from_config

from . import engine, manifests

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

    @property
    def mandatory_violations(self) -> list[dict[str, Any]]:
        return [v for v in self.violations if v["enforcement"] == "mandatory"]


def load(source: Path) -> tuple[dict[str, Any], ServiceSpec]:
    """Read and validate a stack file; raises StackError (exit 2) naming file, key and value."""
    config = read_stack_config(source)
    return config, service_from_config(config[SERVICE_KEY], str(source))


def build(source: Path, project: Path | None = None, stack: str | None = None) -> Plan:
    """Validate ``source`` and run the real program on it under mocks."""
    config, spec = load(source)
    root = project or project_root()
    name = stack or stack_name(source)
    run = engine.run_program(root / PROGRAM, config, name)
    return Plan(stack=name, source=source, config=config, spec=spec, run=run, objects=manifests.manifests(run.resources))


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
        worker = None
        if launch.worker is not None:
            command, args = vllm.worker_container(launch)
            worker = command + args
        views[role] = {"leader": list(launch.leader), "worker": worker}
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
        kind = (r.inputs.get("kind") or r.type.rsplit(":", 1)[-1]) if r.type.startswith("kubernetes:") else r.type.rsplit(":", 1)[-1]
        rows.append({
            "type": r.type, "name": r.name, "kind": kind,
            "namespace": meta.get("namespace") if isinstance(meta, dict) else None,
            "parent": r.parent_name,
        })
    return sorted(rows, key=lambda row: (row["type"], row["name"]))


def sizing_view(spec: ServiceSpec) -> dict[str, Any]:
    return {
        role: {
            "gpus_per_replica": sizing.gpus(pool, spec.gpu.per_node),
            "startup_minutes": sizing.startup_minutes(spec, pool),
        }
        for role, pool in spec.pools().items()
    }


def outputs_view(run: engine.Run) -> dict[str, Any]:
    return {k: ("[secret]" if k in run.secret_outputs else v) for k, v in sorted(run.outputs.items())}


def to_json(plan: Plan) -> dict[str, Any]:
    spec = plan.spec
    return {
        "project": plan.run.project,
        "stack": plan.stack,
        "service": {"name": spec.name, "namespace": spec.namespace},
        "pools": {role: pool_view(spec, role) for role in ("prefill", "decode")},
        "gpus": gpus_view(spec),
        "commands": commands_view(spec),
        "resources": resources_view(plan.run),
        "policy": {"violations": plan.violations},
        "sizing": sizing_view(spec),
        "outputs": outputs_view(plan.run),
    }
