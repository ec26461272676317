"""PrefillPool and DecodePool: one role's vLLM units and what belongs to them.

Both are a :class:`ServingPool`; they differ only in their role (which section of the stack they
read, which labels their pods carry, how the router treats them).
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, Optional

import pulumi

from . import autoscaling, sizing, vllm
from .disruption import PDB_API_VERSION, unit_pdb_spec
from .kubernetes_object import KubernetesObject
from .labels import component_labels
from .placement import Placement
from .router import LLM_D_ROLE_LABEL, routing_sidecar
from .scanning import skip_annotations, unit_skip_kinds
from .spec import ServiceSpec
from .unit import LWS_NAME_LABEL, DistributedUnit, DistributedUnitArgs

ROLE_LABEL = "moe-ep.io/role"
ARCHITECTURE_ANNOTATION = "moe-ep.io/architecture"
GPU_PRODUCT_ANNOTATION = "moe-ep.io/gpu-product"
DTYPE_ANNOTATION = "moe-ep.io/dtype"


def unit_annotations(spec: ServiceSpec) -> dict[str, str]:
    """What a unit serves, in words the policy pack reads (the argv alone does not name the
    architecture or the GPU)."""
    return {
        ARCHITECTURE_ANNOTATION: spec.model.architecture,
        GPU_PRODUCT_ANNOTATION: spec.gpu.product,
        DTYPE_ANNOTATION: spec.model.dtype,
    }


def pool_labels(spec: ServiceSpec, role: str) -> dict[str, str]:
    # llm-d.ai/role tells the llm-d scheduler's prefill/decode filters which pods are which.
    return {**component_labels(spec, role), ROLE_LABEL: role, LLM_D_ROLE_LABEL: role}


def unit_args(spec: ServiceSpec, role: str, placement: Placement | None = None) -> DistributedUnitArgs:
    """Pure: the DistributedUnit of one role, from the service spec."""
    pool = spec.pools()[role]
    launch = vllm.launch(spec, role)
    startup_minutes = sizing.startup_minutes(spec, pool)
    placement = placement or Placement()
    return DistributedUnitArgs(
        namespace=spec.namespace,
        name=f"{spec.name}-{role}",
        image=spec.image,
        replicas=pool.replicas,
        size=pool.nodes_per_replica,
        leader_command=launch.leader,
        worker_command=launch.worker or (),
        env=(*launch.env, vllm.engine_ready_env(startup_minutes)),
        gpus_per_pod=spec.gpu.per_node,
        gpu_resource=spec.gpu.resource_name,
        cpu=pool.resources.cpu,
        memory=pool.resources.memory,
        shm_size=pool.resources.shm_size,
        port=vllm.vllm_port(spec, role),
        leader_sidecars=(routing_sidecar(spec),) if vllm.behind_sidecar(spec, role) else (),
        guard=spec.unit.guard,
        comm_interface=spec.unit.comm_interface,
        max_surge=spec.unit.max_surge,
        max_unavailable=spec.unit.max_unavailable,
        start_barrier=spec.unit.start_barrier,
        startup_minutes=startup_minutes,
        labels=pool_labels(spec, role),
        # checkov's accepted findings sit on the LWS, not in its pod templates (the tests scan those as shadow Deployments).
        annotations={**unit_annotations(spec), **skip_annotations(*unit_skip_kinds(placement.security_context, pool.nodes_per_replica))},
        placement=placement,
        autoscaled=pool.autoscaling is not None,
    )


class ServingPool(pulumi.ComponentResource):
    """The units of one role with their autoscaler (HPA or KEDA ScaledObject, when the pool has
    ``autoscaling``) and PodDisruptionBudget. Subclasses fix the role; see PrefillPool and DecodePool."""

    role: ClassVar[str]
    unit: DistributedUnit

    def __init__(
        self,
        resource_name: str,
        service: ServiceSpec | Mapping[str, Any],
        placement: Placement | None = None,
        opts: Optional[pulumi.ResourceOptions] = None,
    ) -> None:
        super().__init__(f"moe-ep:index:{type(self).__name__}", resource_name, None, opts)
        spec = ServiceSpec.model_validate(service)
        if self.role not in spec.pools():
            raise ValueError(f"service {spec.name!r} has no {self.role} pool")
        self.spec = spec
        self.pool = spec.pools()[self.role]
        self.unit_args = unit_args(spec, self.role, placement)
        child = pulumi.ResourceOptions(parent=self)
        self.unit = DistributedUnit(resource_name, self.unit_args, child)
        self.name = self.unit_args.name
        meta = {"name": self.name, "namespace": spec.namespace, "labels": pool_labels(spec, self.role)}
        auto = self.pool.autoscaling
        if auto is not None and auto.engine == "hpa":
            KubernetesObject(resource_name, {
                "apiVersion": autoscaling.HPA_API_VERSION, "kind": "HorizontalPodAutoscaler", "metadata": meta,
                "spec": autoscaling.hpa_spec(auto, self.name),
            }, child)
        elif auto is not None:
            KubernetesObject(resource_name, {
                "apiVersion": autoscaling.KEDA_API_VERSION, "kind": "ScaledObject", "metadata": meta,
                "spec": autoscaling.scaled_object_spec(auto, self.name, spec, self.role),
            }, child)
        KubernetesObject(resource_name, {
            "apiVersion": PDB_API_VERSION, "kind": "PodDisruptionBudget", "metadata": meta,
            "spec": unit_pdb_spec({LWS_NAME_LABEL: self.name}, self.pool.max_unavailable_units),
        }, child)
        self.register_outputs({"name": self.name, "leader_address": self.unit.leader_address})


class PrefillPool(ServingPool):
    """The prefill units of a disaggregated service: they compute the prompt's KV cache and hand
    it to a decode unit over the KV connector.

    Example::

        PrefillPool("r1-prefill", spec)   # spec: a ServiceSpec with a `prefill` section
    """

    role = "prefill"


class DecodePool(ServingPool):
    """The decode units: they generate tokens (and, without a prefill pool, serve whole requests).

    Example::

        DecodePool("r1-decode", spec)
    """

    role = "decode"
