"""GpuNodePool: the GPU nodes a service's units land on, and where each unit's pods go.

Two provisioners. ``karpenter`` writes a ``karpenter.sh/v1`` NodePool that launches tainted,
labelled GPU nodes on demand (Karpenter and the node class are the platform team's). ``existing``
labels and taints nodes that are already in the cluster with one server-side-apply patch per node.

:func:`placement` is the other half: the node selector, toleration, RDMA devices, capabilities and
LWS exclusive topology every vLLM pod of a role gets, so pools never read the node-pool settings.
"""

from __future__ import annotations

from typing import Any, Literal, Mapping, Optional

import pulumi

from .kubernetes_object import KubernetesObject
from .placement import GPU_PRODUCT_LABEL, GPU_TAINT_KEY, RESTRICTED_CONTAINER, Placement, device_container
from .labels import service_labels
from .spec import DEEPEP_BACKENDS, NodePoolSpec, ServiceSpec, capacity

KARPENTER_API_VERSION = "karpenter.sh/v1"
POOL_LABEL = "moe-ep.io/pool"
RDMA_LABEL = "moe-ep.io/rdma"
SECURITY_TIER_ANNOTATION = "moe-ep.io/security-tier"
MULTUS_NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"
GPU_TAINT = {"key": GPU_TAINT_KEY, "effect": "NoSchedule"}

SecurityTier = Literal["restricted", "rdma", "privileged"]


def pool_name(spec: ServiceSpec) -> str:
    """Value of the ``moe-ep.io/pool`` label (and the NodePool's name)."""
    assert spec.node_pool is not None
    return spec.node_pool.name or spec.name


def needs_rdma(spec: ServiceSpec, role: str) -> bool:
    """A unit spanning nodes (collectives between ranks) or any role of a disaggregated service
    (NIXL moves the KV cache between prefill and decode) wants the RDMA fabric."""
    return spec.pools()[role].nodes_per_replica > 1 or spec.disaggregated


def uses_rdma(spec: ServiceSpec, role: str) -> bool:
    """The role wants RDMA and the node pool says how to reach it."""
    return spec.node_pool is not None and spec.node_pool.rdma is not None and needs_rdma(spec, role)


def capabilities(spec: ServiceSpec, role: str) -> tuple[str, ...]:
    """IPC_LOCK to pin RDMA memory regions; SYS_RAWIO too for DeepEP (NVSHMEM/IBGDA device access)."""
    if not uses_rdma(spec, role):
        return ()
    return ("IPC_LOCK", "SYS_RAWIO") if spec.pools()[role].all2all_backend in DEEPEP_BACKENDS else ("IPC_LOCK",)


def security_tier(spec: ServiceSpec, role: str) -> SecurityTier:
    """``restricted``: no capabilities at all. ``rdma``: uid 0 with only IPC_LOCK (and SYS_RAWIO).
    ``privileged``: only where the node pool's ``privileged`` flag asks for it, on RDMA roles."""
    if not uses_rdma(spec, role):
        return "restricted"
    assert spec.node_pool is not None
    return "privileged" if spec.node_pool.privileged else "rdma"


def node_labels(spec: ServiceSpec) -> dict[str, str]:
    """The labels this service puts on its GPU nodes."""
    assert spec.node_pool is not None
    labels = {POOL_LABEL: pool_name(spec)}
    if spec.node_pool.rdma is not None:
        labels[RDMA_LABEL] = "true"
    return labels


def placement(spec: ServiceSpec, role: str) -> Placement:
    """Where and with what every pod of ``role`` runs. Pure.

    Without a ``node_pool`` section pods select the GPU product (the label GPU Feature Discovery
    sets) and tolerate the GPU taint (and carry their security tier): the memory plan holds only on
    that GPU. With one they select the pool (and GPU product, unless ``select_gpu_product`` is off)
    and get RDMA where :func:`uses_rdma`.
    """
    tier = security_tier(spec, role)
    annotations = {SECURITY_TIER_ANNOTATION: tier}
    node_pool = spec.node_pool
    if node_pool is None:
        return Placement(node_selector={GPU_PRODUCT_LABEL: spec.gpu.info.node_label}, pod_annotations=annotations)
    selector = {POOL_LABEL: pool_name(spec)}
    if node_pool.select_gpu_product:
        selector[GPU_PRODUCT_LABEL] = spec.gpu.info.node_label
    devices: dict[str, int] = {}
    security_context: dict[str, Any] = dict(RESTRICTED_CONTAINER)
    if uses_rdma(spec, role):
        assert node_pool.rdma is not None
        selector[RDMA_LABEL] = "true"
        devices[node_pool.rdma.resource_name] = node_pool.rdma.per_pod
        security_context = device_container(capabilities(spec, role), privileged=node_pool.privileged)
        if node_pool.rdma.networks:
            annotations[MULTUS_NETWORKS_ANNOTATION] = node_pool.rdma.networks
    multi_node = spec.pools()[role].nodes_per_replica > 1
    return Placement(
        node_selector=selector,
        extra_resources=devices,
        security_context=security_context,
        pod_annotations=annotations,
        exclusive_topology=node_pool.exclusive_topology_key if multi_node else None,
    )


def karpenter_node_pool_spec(spec: ServiceSpec) -> dict[str, Any]:
    """The ``spec`` of the Karpenter NodePool. Pure."""
    node_pool: NodePoolSpec | None = spec.node_pool
    assert node_pool is not None and node_pool.karpenter is not None
    settings = node_pool.karpenter
    labels = node_labels(spec)
    if node_pool.select_gpu_product:
        # Karpenter launches a node for a pending pod only when it knows the node will carry every
        # label the pod selects; GPU Feature Discovery sets the same value once the node is up.
        labels[GPU_PRODUCT_LABEL] = spec.gpu.info.node_label
    requirements: list[dict[str, Any]] = [
        {"key": CAPACITY_TYPE_LABEL, "operator": "In", "values": list(settings.capacity_types)},
    ]
    if settings.instance_types:
        requirements.append({"key": INSTANCE_TYPE_LABEL, "operator": "In", "values": list(settings.instance_types)})
    for requirement in settings.requirements:
        entry: dict[str, Any] = {"key": requirement.key, "operator": requirement.operator}
        if requirement.values:
            entry["values"] = list(requirement.values)
        requirements.append(entry)
    budgets: list[dict[str, Any]] = [{"nodes": settings.max_disrupted_nodes}]
    if not settings.replace_drifted_nodes:
        # Drift replacement evicts a rank, and guard then restarts the whole unit: an operator's call.
        budgets.append({"nodes": "0", "reasons": ["Drifted"]})
    return {
        "template": {
            "metadata": {"labels": dict(sorted(labels.items()))},
            "spec": {
                "nodeClassRef": {
                    "group": settings.node_class.group,
                    "kind": settings.node_class.kind,
                    "name": settings.node_class.name,
                },
                "requirements": requirements,
                "taints": [dict(GPU_TAINT)],
                "expireAfter": settings.expire_after,
            },
        },
        # WhenEmpty: a node is only removed once no pod (no unit) runs on it; Karpenter never
        # moves a serving rank to pack nodes tighter.
        "disruption": {
            "consolidationPolicy": "WhenEmpty",
            "consolidateAfter": settings.consolidate_after,
            "budgets": budgets,
        },
        "limits": {spec.gpu.resource_name: capacity(spec)["gpu_limit"]},
    }


def node_patch(spec: ServiceSpec, node: str) -> dict[str, Any]:
    """The patch of one existing node (a ``kubernetes:core/v1:NodePatch``): only what this service adds. Pure.

    pulumi-kubernetes applies a Patch resource with server-side apply under a field manager of its
    own (``pulumi-kubernetes-<random>``, drawn once and kept in the state) and, when the resource is
    deleted, releases exactly the fields that manager owns; fields other managers also own stay ("Deleting a Patch resource will undo the patched changes ... Any fields
    that become unmanaged during this process will reset", pulumi.com/registry/packages/kubernetes/
    how-to-guides/managing-resources-with-server-side-apply/; kubernetes.io/docs/reference/using-api/
    server-side-apply/). Labels are a granular map, so other labels are never touched. Node
    ``spec.taints`` is one atomic list (kubernetes/kubernetes#128866 would make it a map), so the
    taint patch conflicts with any other owner of the node's taints; without ``patchForce`` that
    conflict fails the update instead of overwriting someone else's taints. ``existing.taint:
    false`` leaves taints alone for nodes that already carry theirs.

    The patch names no field manager (the ``pulumi.com/patchFieldManager`` annotation): that
    annotation is applied to the node with the rest, so two stacks sharing nodes, each naming its
    own manager, conflicted over its value on the second ``up`` (found on the local plane). Two
    services' patches of a node are thus identical, and server-side apply lets their managers
    share every field.
    """
    assert spec.node_pool is not None and spec.node_pool.existing is not None
    patch: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node,
            "labels": dict(sorted(node_labels(spec).items())),
        },
    }
    if spec.node_pool.existing.taint:
        patch["spec"] = {"taints": [dict(GPU_TAINT)]}
    return patch


class GpuNodePool(pulumi.ComponentResource):
    """The GPU nodes of one service.

    With ``node_pool.provisioner: karpenter`` creates a Karpenter ``karpenter.sh/v1`` NodePool
    (Karpenter and the referenced node class must exist) that launches nodes labelled
    ``moe-ep.io/pool: <name>`` (and ``moe-ep.io/rdma: "true"`` with RDMA), tainted
    ``nvidia.com/gpu:NoSchedule``, limited to the GPUs both pools need at their maximum replicas,
    and consolidated only when empty. With ``existing`` reads every named node (one the cluster
    lacks fails the preview), then creates one ``NodePatch`` per node, after that node's read, that
    adds those labels and the taint (server-side apply; deleting the stack removes only them).
    Exposes ``name`` (the pool label value) and ``capacity`` (see :func:`components.spec.capacity`).

    Example::

        pool = GpuNodePool("r1-gpus", spec)   # spec: a ServiceSpec with a `node_pool` section
        PrefillPool("r1-prefill", spec, placement(spec, "prefill"), pulumi.ResourceOptions(depends_on=[pool]))
    """

    node_pool: KubernetesObject | None
    node_reads: list[KubernetesObject]
    node_patches: list[KubernetesObject]

    def __init__(
        self,
        resource_name: str,
        service: ServiceSpec | Mapping[str, Any],
        opts: Optional[pulumi.ResourceOptions] = None,
    ) -> None:
        super().__init__("moe-ep:index:GpuNodePool", resource_name, None, opts)
        spec = ServiceSpec.model_validate(service)
        if spec.node_pool is None:
            raise ValueError(f"service {spec.name!r} has no node_pool section")
        child = pulumi.ResourceOptions(parent=self)
        self.name = pool_name(spec)
        self.capacity = capacity(spec)
        self.node_pool = None
        self.node_reads = []
        self.node_patches = []
        if spec.node_pool.karpenter is not None:
            self.node_pool = KubernetesObject(resource_name, {
                "apiVersion": KARPENTER_API_VERSION, "kind": "NodePool",
                "metadata": {"name": self.name, "labels": dict(sorted(service_labels(spec).items()))},
                "spec": karpenter_node_pool_spec(spec),
            }, child)
        else:
            assert spec.node_pool.existing is not None
            # A patch is a server-side apply, which creates a Node that does not exist: every node
            # is read first, so a misspelt or decommissioned one fails the preview (which reads them
            # all before `up` applies anything) instead of appearing. Each patch waits for its own
            # node's read only: waiting for all of them put every read's URN into every patch's
            # state, N² bytes the file backend rewrote after every step (make bench's live section).
            self.node_reads = [KubernetesObject.read(f"{resource_name}-{node}", "v1", "Node", node, child)
                               for node in spec.node_pool.existing.nodes]
            for node, read in zip(spec.node_pool.existing.nodes, self.node_reads):
                after = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[read]))
                self.node_patches.append(KubernetesObject(f"{resource_name}-{node}", node_patch(spec, node), after, patch=True))
        self.register_outputs({"name": self.name, "capacity": self.capacity})
