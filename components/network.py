"""NetworkPolicies of a service: deny ingress by default, then open exactly the paths it uses.

Paths: clients -> router proxy; proxy -> scheduler (ext_proc); proxy and scheduler -> rank 0 of
the units (requests; the scheduler also reads metrics); unit <-> unit of the same service (NIXL KV
transfer, vLLM DP RPC, NCCL/Gloo bootstrap); Prometheus -> metrics ports. Egress stays open: pods
pull weights and resolve DNS.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import pulumi

from . import router, vllm
from .kubernetes_object import KubernetesObject
from .labels import component_labels
from .spec import ServiceSpec

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
SERVING_ROLES = ("prefill", "decode")


def _pods(spec: ServiceSpec, components: tuple[str, ...]) -> dict[str, Any]:
    return {
        "matchLabels": {"app.kubernetes.io/name": spec.name},
        "matchExpressions": [{"key": "app.kubernetes.io/component", "operator": "In", "values": list(components)}],
    }


def _prometheus(spec: ServiceSpec) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: spec.network.prometheus_namespace}}}


def _tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def network_policies(spec: ServiceSpec) -> dict[str, dict[str, Any]]:
    """name -> NetworkPolicy spec. Pure."""
    n = router.names(spec)
    proxy = {"podSelector": {"matchLabels": router.selector(spec, router.ROUTER_COMPONENT)}}
    scheduler = {"podSelector": {"matchLabels": router.selector(spec, router.SCHEDULER_COMPONENT)}}
    servers = {"podSelector": _pods(spec, SERVING_ROLES)}
    policies: dict[str, dict[str, Any]] = {
        f"{spec.name}-default-deny": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": spec.name}},
            "policyTypes": ["Ingress"],
        },
        n["router"]: {
            "podSelector": {"matchLabels": router.selector(spec, router.ROUTER_COMPONENT)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"ports": _tcp(router.PROXY_PORT)},  # the endpoint: any client (the API key guards it)
                {"from": [_prometheus(spec)], "ports": _tcp(router.PROXY_READY_PORT)},
            ],
        },
        f"{spec.name}-model-servers": {
            "podSelector": _pods(spec, SERVING_ROLES),
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [proxy, scheduler], "ports": _tcp(vllm.SERVE_PORT)},
                # Ranks of a unit and units of both roles talk on many ports (NIXL, DP RPC, NCCL, Gloo).
                {"from": [servers]},
                {"from": [_prometheus(spec)], "ports": _tcp(vllm.SERVE_PORT, vllm.BEHIND_SIDECAR_PORT)},
            ],
        },
    }
    if spec.router_mode == "llm-d":
        policies[n["scheduler"]] = {
            "podSelector": {"matchLabels": router.selector(spec, router.SCHEDULER_COMPONENT)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [proxy], "ports": _tcp(router.EPP_GRPC_PORT)},
                {"from": [_prometheus(spec)], "ports": _tcp(router.EPP_METRICS_PORT)},
            ],
        }
    return dict(sorted(policies.items()))


class NetworkPolicies(pulumi.ComponentResource):
    """The NetworkPolicies of one service (see the module docstring for the paths they open).

    Example::

        NetworkPolicies("r1-network", spec)
    """

    def __init__(
        self,
        resource_name: str,
        spec: ServiceSpec | Mapping[str, Any],
        opts: Optional[pulumi.ResourceOptions] = None,
    ) -> None:
        super().__init__("moe-ep:index:NetworkPolicies", resource_name, None, opts)
        spec = ServiceSpec.model_validate(spec)
        for name, policy in network_policies(spec).items():
            KubernetesObject(name, {
                "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": name, "namespace": spec.namespace, "labels": component_labels(spec, "network")},
                "spec": policy,
            }, pulumi.ResourceOptions(parent=self))
        self.register_outputs({})
