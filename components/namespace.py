"""ServiceNamespace: the namespace a service runs in, with its Pod Security Admission labels.

``enforce`` is the least the model servers need: ``privileged`` when any role opens RDMA devices
(IPC_LOCK/SYS_RAWIO, or a privileged container: both beyond ``baseline``), else ``baseline``
(vLLM runs as root, which ``restricted`` forbids). ``warn`` and ``audit`` are ``restricted``, so
anything beyond the router's profile shows up in kubectl warnings and the audit log. The
``-version`` labels pin the profiles to the Kubernetes minor the manifests are validated against,
so a cluster upgrade cannot change what is admitted.
"""

from __future__ import annotations

from typing import Any, Literal, Mapping, Optional

import pulumi

from .kubernetes_object import KubernetesObject
from .node_pool import security_tier
from .spec import ServiceSpec

PSS_PREFIX = "pod-security.kubernetes.io"
PSS_VERSION = "v1.31"
"""Pod Security profile version: the Kubernetes minor every manifest is validated against."""

Level = Literal["privileged", "baseline", "restricted"]


def enforce_level(spec: ServiceSpec) -> Level:
    """``privileged`` when any role is in an RDMA security tier, else ``baseline``. Pure."""
    return "privileged" if any(security_tier(spec, role) != "restricted" for role in spec.pools()) else "baseline"


def namespace_labels(spec: ServiceSpec) -> dict[str, str]:
    """The Namespace's labels: Pod Security modes and versions, and who manages it. Pure."""
    labels = {"app.kubernetes.io/part-of": "moe-ep", "app.kubernetes.io/managed-by": "pulumi"}
    for mode, level in (("enforce", enforce_level(spec)), ("warn", "restricted"), ("audit", "restricted")):
        labels[f"{PSS_PREFIX}/{mode}"] = level
        labels[f"{PSS_PREFIX}/{mode}-version"] = PSS_VERSION
    return dict(sorted(labels.items()))


class ServiceNamespace(pulumi.ComponentResource):
    """The Namespace ``spec.namespace`` with the Pod Security labels of :func:`namespace_labels`.

    ``MoEEPService`` creates one when ``create_namespace`` is true (the default) and makes every
    other object wait for it. With several services in one namespace exactly one creates it, and
    its labels must admit every service's pods.

    Example::

        ns = ServiceNamespace("r1-namespace", spec)
        pulumi.export("namespace", ns.name)
    """

    namespace: KubernetesObject
    name: str

    def __init__(
        self,
        resource_name: str,
        service: ServiceSpec | Mapping[str, Any],
        opts: Optional[pulumi.ResourceOptions] = None,
    ) -> None:
        super().__init__("moe-ep:index:ServiceNamespace", resource_name, None, opts)
        spec = ServiceSpec.model_validate(service)
        self.name = spec.namespace
        self.namespace = KubernetesObject(resource_name, {
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": spec.namespace, "labels": namespace_labels(spec)},
        }, pulumi.ResourceOptions(parent=self))
        self.register_outputs({"name": self.name})
