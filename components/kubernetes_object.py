"""A Kubernetes object registered from its manifest.

moe-ep builds every object as a complete manifest in pure functions (pod templates, policies,
autoscalers, dashboards) and registers each through :class:`KubernetesObject`, one small class,
rather than pulumi-kubernetes' generated class per kind. Those classes give a manifest that is
already complete nothing it needs, and they cost on every object: a typed output object built for
every nested field of the returned state, option merges, and aliases to the kind's older API
versions (``extensions/v1beta1`` for a Deployment) that a stack which never used those versions
can only pay for (``make bench`` measures that as typed/core). Importing their ``core/v1`` module
alone takes about 0.2 s of every ``moe-ep`` command.

The engine receives the same registration either way: the kind's pulumi-kubernetes type token, the
manifest's fields as inputs, and the provider version pulumi-kubernetes pins
(``tests/test_kubernetes_object.py`` registers both ways and compares). What a class knew about
one kind, the caller says: the API-key Secret names its secret outputs as the Secret class does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Optional

import pulumi
from pulumi_kubernetes import _utilities as provider_sdk

_CORE_GROUP_VERSION = "v1"
_CORE_GROUP = "core/"
_PATCH_SUFFIX = "Patch"


def provider_type(api_version: str, kind: str) -> str:
    """pulumi-kubernetes' type token for ``kind`` at ``api_version``: ``kubernetes:apps/v1:Deployment``;
    the core group, whose apiVersion has no group, is ``core`` (``kubernetes:core/v1:Service``)."""
    if not api_version or not kind:
        raise ValueError(f"a Kubernetes manifest needs apiVersion and kind, got {api_version!r} and {kind!r}")
    group_version = f"{_CORE_GROUP}{api_version}" if api_version == _CORE_GROUP_VERSION else api_version
    return f"kubernetes:{group_version}:{kind}"


def manifest_type(type_: str) -> tuple[str, str]:
    """The apiVersion and kind a pulumi-kubernetes type token stands for, :func:`provider_type`
    reversed; a patch type (``kubernetes:core/v1:NodePatch``) stands for the kind it patches."""
    _, group_version, kind = type_.split(":")
    return group_version.removeprefix(_CORE_GROUP), kind.removesuffix(_PATCH_SUFFIX)


class KubernetesObject(pulumi.CustomResource):
    """One Kubernetes object: ``manifest`` (``apiVersion``, ``kind``, ``metadata`` and the kind's
    other top-level fields in their wire spelling, ``spec``, ``data``, ``rules``, ...) registered with
    the pulumi-kubernetes provider under its type token (:func:`provider_type`).

    ``patch=True`` registers a server-side apply patch of an object someone else owns instead
    (pulumi-kubernetes' ``<Kind>Patch`` types, ``kubernetes:core/v1:NodePatch``): only the fields
    the manifest names are applied, and deleting the resource takes back only those.

    The outputs are the manifest's top-level fields, untyped and under their wire names
    (``obj.metadata``, ``obj.spec``; a ConfigMap has ``obj.data`` and no ``spec``), and
    ``obj.status``, the live status the provider reads back (a LoadBalancer Service's address).

    Example::

        KubernetesObject("r1-router", {
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "r1-router", "namespace": "llm"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "r1-router"}}},
        }, opts=pulumi.ResourceOptions(parent=router))
    """

    if TYPE_CHECKING:
        # For type checkers only: the SDK re-reads a resource class's annotations every time one
        # of its objects resolves its outputs, a cost this class, registered for every object, avoids.
        metadata: pulumi.Output[Any]
        status: pulumi.Output[Any]

    def __init__(
        self,
        resource_name: str,
        manifest: Mapping[str, Any],
        opts: Optional[pulumi.ResourceOptions] = None,
        patch: bool = False,
    ) -> None:
        kind = manifest.get("kind", "")
        type_ = provider_type(manifest.get("apiVersion", ""), f"{kind}{_PATCH_SUFFIX}" if patch and kind else kind)
        # The provider version and plugin source pulumi-kubernetes' own classes pin; a caller's win.
        opts = pulumi.ResourceOptions.merge(provider_sdk.get_resource_opts_defaults(), opts)
        # `status` as the generated classes declare it: an output only (None is never sent).
        super().__init__(type_, resource_name, {"status": None, **manifest}, opts)

    @classmethod
    def read(cls, resource_name: str, api_version: str, kind: str, object_id: str,
             opts: Optional[pulumi.ResourceOptions] = None) -> "KubernetesObject":
        """An object the cluster must already have (``name``, or ``namespace/name``), read rather than
        managed: the engine fails the preview naming it when it does not exist, and never deletes it.

        Example::

            KubernetesObject.read("gpu-01", "v1", "Node", "gpu-01")
        """
        return cls(resource_name, {"apiVersion": api_version, "kind": kind},
                   pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(id=object_id)))
