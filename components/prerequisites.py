"""What a service needs the cluster to serve before `pulumi up`: the CustomResourceDefinitions of
the operators it uses (installed by the platform team, see DESIGN.md), read first.

Without them the provider skips its dry run for a kind the cluster does not serve, so the preview
is green and `up` fails after five retries, half-way through. Read first, a missing CRD fails the
preview, naming it, before anything is created.
"""

from __future__ import annotations

from typing import Optional

import pulumi

from .kubernetes_object import KubernetesObject
from .spec import ServiceSpec

CRD_API_VERSION = "apiextensions.k8s.io/v1"
CRDS = {
    "LeaderWorkerSet": "leaderworkersets.leaderworkerset.x-k8s.io",
    "InferencePool": "inferencepools.inference.networking.k8s.io",
    "ScaledObject": "scaledobjects.keda.sh",
    "PodMonitor": "podmonitors.monitoring.coreos.com",
    "ServiceMonitor": "servicemonitors.monitoring.coreos.com",
    "PrometheusRule": "prometheusrules.monitoring.coreos.com",
    "NodePool": "nodepools.karpenter.sh",
}
"""The CRD that serves each custom kind moe-ep creates."""


def custom_kinds(spec: ServiceSpec) -> list[str]:
    """The custom kinds the service creates (tests hold this to what the components register). Pure."""
    kinds = {"LeaderWorkerSet"}
    if spec.router_mode == "llm-d":
        kinds.add("InferencePool")
    if any(pool.autoscaling is not None and pool.autoscaling.engine == "keda" for pool in spec.pools().values()):
        kinds.add("ScaledObject")
    if spec.monitoring.enabled:
        kinds |= {"PodMonitor", "PrometheusRule"} | ({"ServiceMonitor"} if spec.router_mode == "llm-d" else set())
    if spec.node_pool is not None and spec.node_pool.karpenter is not None:
        kinds.add("NodePool")
    return sorted(kinds)


def required_crds(spec: ServiceSpec) -> list[str]:
    """Names of the CRDs the cluster must serve for this service. Pure."""
    return sorted(CRDS[kind] for kind in custom_kinds(spec))


class ClusterPrerequisites(pulumi.ComponentResource):
    """Reads every CRD the service needs (:func:`required_crds`); the service's objects wait for it.

    Example::

        needs = ClusterPrerequisites("r1-prerequisites", spec)
        MoEEPService("r1", spec, pulumi.ResourceOptions(depends_on=[needs]))
    """

    def __init__(self, resource_name: str, spec: ServiceSpec, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__("moe-ep:index:ClusterPrerequisites", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.crds = required_crds(spec)
        for crd in self.crds:
            KubernetesObject.read(f"{resource_name}-{crd}", CRD_API_VERSION, "CustomResourceDefinition", crd, child)
        self.register_outputs({"crds": self.crds})
