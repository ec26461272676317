"""MoEEPService: one MoE model served by decode and (optionally) prefill pools."""

from __future__ import annotations

from typing import Any, Mapping, Optional

import pulumi

from .api_key import ApiKey
from .labels import service_labels
from .monitoring import MetricsTarget, Monitoring, MonitoringArgs
from .namespace import ServiceNamespace
from .network import NetworkPolicies
from .node_pool import GpuNodePool, placement
from .prerequisites import ClusterPrerequisites
from .pools import DecodePool, PrefillPool
from .router import SCHEDULER_COMPONENT, Router
from .router import selector as router_selector
from .spec import ServiceSpec


class MoEEPService(pulumi.ComponentResource):
    """Everything that serves one model, created in this order:

    1. ``ClusterPrerequisites``: reads of the CRDs the service needs and, with a ``node_pool``
       section, the ``GpuNodePool`` (reads of the nodes it patches, then its patches or Karpenter
       NodePool); a missing CRD or node fails the preview, naming it, before anything is created;
    2. the namespace with its Pod Security labels (``ServiceNamespace``; skipped with
       ``create_namespace: false``, when the caller orders the service after the namespace's owner),
       and the ``ApiKey``;
    3. a ``PrefillPool`` (when the spec has ``prefill``) and a ``DecodePool``, each with its units,
       autoscaler and disruption budget, every pod placed on the node pool;
    4. the ``Router``, ``Monitoring`` (unless disabled) and the ``NetworkPolicies``.

    Outputs: ``endpoint`` (URL), ``api_key`` (a secret), and the names of the parts.

    Example::

        import pulumi
        from components import MoEEPService, ServiceSpec

        spec = ServiceSpec.model_validate(pulumi.Config("moe-ep").require_object("service"))
        svc = MoEEPService(spec.name, spec)
        pulumi.export("decode", svc.decode.name)
    """

    prefill: PrefillPool | None
    decode: DecodePool

    def __init__(
        self,
        resource_name: str,
        spec: ServiceSpec | Mapping[str, Any],
        opts: Optional[pulumi.ResourceOptions] = None,
    ) -> None:
        super().__init__("moe-ep:index:MoEEPService", resource_name, None, opts)
        spec = ServiceSpec.model_validate(spec)
        self.spec = spec
        # What the cluster must already have is read first (the CRDs here, the nodes a node pool
        # patches in GpuNodePool): when any is missing the preview fails naming it, and nothing is
        # created (a child registers only after its parent, and the parent after its depends_on).
        self.prerequisites = ClusterPrerequisites(f"{spec.name}-prerequisites", spec, pulumi.ResourceOptions(parent=self))
        # The GPU nodes (a Karpenter NodePool, or labels on existing nodes) before the pods that select them.
        self.node_pool = GpuNodePool(
            f"{spec.name}-gpus", spec, opts=pulumi.ResourceOptions(parent=self, depends_on=[self.prerequisites]),
        ) if spec.node_pool else None
        checks = [self.prerequisites, *(self.node_pool.node_reads if self.node_pool else [])]
        self.namespace = ServiceNamespace(
            f"{spec.name}-namespace", spec, opts=pulumi.ResourceOptions(parent=self, depends_on=checks),
        ) if spec.create_namespace else None
        # Everything else waits for the checks and the namespace.
        first = [*checks, *([self.namespace] if self.namespace else [])]
        child = pulumi.ResourceOptions(parent=self, depends_on=first)
        self.api_key = ApiKey(
            f"{spec.name}-api-key", service=spec.name, namespace=spec.namespace, labels=service_labels(spec),
            length=spec.api_key.length, keepers=spec.api_key.keepers, opts=child,
        )
        # Pods read the key from its Secret, so they wait for it.
        after_key = pulumi.ResourceOptions(
            parent=self, depends_on=[*first, self.api_key, *([self.node_pool] if self.node_pool else [])]
        )
        self.prefill = (
            PrefillPool(f"{spec.name}-prefill", spec, placement(spec, "prefill"), opts=after_key) if spec.prefill else None
        )
        self.decode = DecodePool(f"{spec.name}-decode", spec, placement(spec, "decode"), opts=after_key)
        self.router = Router(f"{spec.name}-router", spec, opts=child)
        # The llm-d scheduler is the router part with a metrics port; Envoy's admin port stays local.
        router_metrics = MetricsTarget(
            name=f"{spec.name}-scheduler", selector=router_selector(spec, SCHEDULER_COMPONENT), port="metrics",
        ) if spec.router_mode == "llm-d" else None
        self.monitoring = Monitoring(
            f"{spec.name}-monitoring", MonitoringArgs(service=spec, router=router_metrics), opts=child,
        ) if spec.monitoring.enabled else None
        if spec.network.policies:
            NetworkPolicies(f"{spec.name}-network", spec, opts=child)
        self.outputs = {
            "service": spec.name,
            "namespace": spec.namespace,
            "endpoint": self.router.endpoint,
            "api_key": self.api_key.value,
            "router": f"{spec.name}-router",
            "prefill": self.prefill.name if self.prefill else None,
            "decode": self.decode.name,
            "node_pool": self.node_pool.name if self.node_pool else None,
        }
        self.register_outputs(self.outputs)
