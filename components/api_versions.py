"""Kubernetes objects are registered at their current API version, with no aliases to older ones.

pulumi-kubernetes gives each typed class aliases to its kind's older API versions (a Deployment:
``apps/v1beta1``, ``apps/v1beta2``, ``extensions/v1beta1``; an HPA: ``autoscaling/v1``,
``v2beta1``, ``v2beta2``), so that a stack written with an older class keeps its objects when it
moves to the current one. moe-ep has registered only the current versions from its first release,
so in a moe-ep stack those aliases can match nothing. They are not free: the SDK turns every alias
of every object into a URN through a chain of outputs while the object registers, and sends it
for the engine to look up. Over half of a service's objects carry one to three such aliases;
registering 300 Deployments under mocks took 1.78 times as long as through bare
``pulumi.CustomResource`` with them, 1.27 times without.

Aliases anyone else sets (a caller moving a component to a new name or parent) are kept.
"""

from __future__ import annotations

import copy
from typing import Optional

import pulumi

_PROVIDER = "kubernetes:"


def _other_api_version(alias: object, type_: str) -> bool:
    """An alias that names only a type: the same kind at another API version."""
    if not isinstance(alias, pulumi.Alias) or not isinstance(alias.type_, str):
        return False
    unset = (..., None)
    return (
        alias.name in unset and alias.parent in unset and alias.stack in unset and alias.project in unset
        and alias.type_ != type_ and alias.type_.startswith(_PROVIDER)
        and alias.type_.rsplit(":", 1)[-1] == type_.rsplit(":", 1)[-1]
    )


def without_older_api_versions(args: pulumi.ResourceTransformationArgs) -> Optional[pulumi.ResourceTransformationResult]:
    """A resource transformation: a Kubernetes object's aliases to its kind's other API versions dropped."""
    aliases = args.opts.aliases
    if not aliases or not args.type_.startswith(_PROVIDER):
        return None
    kept = [alias for alias in aliases if not _other_api_version(alias, args.type_)]
    if len(kept) == len(aliases):
        return None
    opts = copy.copy(args.opts)
    opts.aliases = kept or None
    return pulumi.ResourceTransformationResult(args.props, opts)


def component_options(opts: Optional[pulumi.ResourceOptions]) -> pulumi.ResourceOptions:
    """A component's own options with :func:`without_older_api_versions` added: every resource
    the component creates, at any depth, inherits it (the SDK applies a parent's transformations
    to its children)."""
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(transformations=[without_older_api_versions]))
