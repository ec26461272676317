"""Where and with what a pool's pods run: node selection, tolerations, devices, privileges.

Pure data handed from the node-pool side of a service to its serving pools, so a pool never needs
to know how its nodes were provisioned.
"""

from __future__ import annotations

from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field

GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
"""Set by GPU Feature Discovery on every GPU node; the pools select on it."""

OFF_GPU_NODES = {
    "nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "preference": {"matchExpressions": [{"key": GPU_PRODUCT_LABEL, "operator": "DoesNotExist"}]}},
        ],
    },
}
"""The affinity of pods that need no GPU (the router, the scheduler): a node without one, when there
is such a node. On a GPU node they take CPU and memory the model servers were sized for, and they
keep the node from being scaled in (Karpenter and the cluster autoscaler leave nodes that run
pods); preferred, not required, so a cluster of GPU nodes only still runs them."""

RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
"""The container securityContext of a model server that needs no device privileges."""


def device_container(capabilities: tuple[str, ...], privileged: bool = False) -> dict[str, Any]:
    """The container securityContext of a model server that opens RDMA devices.

    Kubernetes has no ambient capabilities: an added capability reaches a process only when it runs
    as root (uid 0), so this context pins uid 0 explicitly, drops every other capability and keeps
    seccomp. ``privileged`` (a cluster-provider setting) replaces all of that with a privileged
    container, for RDMA setups that need raw device access.
    """
    if privileged:
        return {"privileged": True, "runAsNonRoot": False, "runAsUser": 0}
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"add": list(capabilities), "drop": ["ALL"]},
        "runAsNonRoot": False,
        "runAsUser": 0,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


class Placement(BaseModel):
    """Scheduling and device settings applied to every pod of a pool."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node_selector: Mapping[str, str] = Field(default_factory=dict, description="Pod nodeSelector. Default none.")
    tolerations: tuple[dict, ...] = Field(
        ({"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"},),
        description="Pod tolerations. Default: the GPU taint nvidia.com/gpu:NoSchedule.",
    )
    extra_resources: Mapping[str, int] = Field(default_factory=dict, description="Devices per pod, e.g. RDMA.")
    security_context: Mapping[str, Any] = Field(
        default_factory=lambda: dict(RESTRICTED_CONTAINER), description="Container securityContext."
    )
    pod_annotations: Mapping[str, str] = Field(default_factory=dict, description="E.g. Multus networks.")
    exclusive_topology: str | None = Field(None, description="LWS exclusive-topology key for multi-node units.")
