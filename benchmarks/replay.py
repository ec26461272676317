"""Replay recorded registrations (see ``bare_program.py`` and ``typed_program.py``).

Two ways to register the same objects without moe-ep's components: through bare
``pulumi.CustomResource`` subclasses (the core SDK, the issue's baseline) and through the provider
SDKs' generated classes (pulumi-kubernetes' typed class per kind, ``apiextensions.CustomResource``
for CRD-backed kinds) and, for the API key, the same dynamic resource moe-ep registers
(``components.api_key.GeneratedKey``): writing the same objects by hand the usual way.
"""

from __future__ import annotations

import copy
import functools
import importlib
from typing import Any, Callable

import pulumi
import pulumi_kubernetes as k8s
from pulumi.dynamic.dynamic import PROVIDER_KEY
from pulumi.runtime.rpc import get_resource_module
from pulumi_kubernetes import _tables as k8s_tables

from components import api_key
from moe_ep.engine import Registration, Run

_queued: list[Run] = []


def hand_over(run: Run) -> None:
    """Queue the run whose registrations (and reads) the next run of a replay program replays."""
    _queued.append(run)


def take() -> Run:
    if not _queued:
        raise RuntimeError("a replay program runs only after replay.hand_over(run)")
    return _queued.pop(0)


# Subclasses with their own __init__, as every provider SDK class and component is: the SDK
# records a resource's source position (a stack trace) only when it finds that third __init__
# frame, so direct pulumi.CustomResource(...) calls would skip work every real resource pays.
class _Custom(pulumi.CustomResource):
    def __init__(self, type_: str, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions):
        super().__init__(type_, name, props, opts)


class _Component(pulumi.ComponentResource):
    def __init__(self, type_: str, name: str, opts: pulumi.ResourceOptions):
        super().__init__(type_, name, None, opts)


CustomFactory = Callable[[Registration, pulumi.ResourceOptions], pulumi.CustomResource]


def core_custom(r: Registration, opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """``r`` through a bare ``pulumi.CustomResource`` subclass: type token and wire inputs as recorded."""
    return _Custom(r.type, r.name, dict(r.inputs), opts)


@functools.cache
def provider_class(type_: str) -> type[pulumi.CustomResource] | None:
    """The class registering ``type_``: ``GeneratedKey`` for the API key, else the provider SDK's,
    from the SDK's own table of type tokens (the one it rehydrates resource references with); None
    for a kind it has no class for (a CRD's)."""
    if type_ == api_key.KEY_TYPE:
        return api_key.GeneratedKey
    package, module, _ = type_.split(":")
    found = get_resource_module(package, module, "")
    class_name = found.mod_info["classes"].get(type_) if found is not None else None
    return getattr(importlib.import_module(found.mod_info["fqn"]), class_name) if class_name else None


def keyword(package: str, prop: str) -> str:
    """The Python keyword argument of the wire property ``prop``: pulumi-kubernetes' own table
    (it lists only the names that differ); ``GeneratedKey``'s are its wire names."""
    if package == "kubernetes":
        return k8s_tables.CAMEL_TO_SNAKE_CASE_TABLE.get(prop, prop)
    return prop


def _other_api_version(alias: object, type_: str) -> bool:
    """An alias a pulumi-kubernetes class adds: the same kind at another API version."""
    return (
        isinstance(alias, pulumi.Alias) and isinstance(alias.type_, str) and alias.type_ != type_
        and alias.type_.startswith("kubernetes:") and alias.type_.rsplit(":", 1)[-1] == type_.rsplit(":", 1)[-1]
        and all(part in (..., None) for part in (alias.name, alias.parent, alias.stack, alias.project))
    )


def without_older_api_versions(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
    """A transformation dropping those aliases: moe-ep registers none (``KubernetesObject``), and a
    replay must register exactly what moe-ep did."""
    kept = [alias for alias in args.opts.aliases or () if not _other_api_version(alias, args.type_)]
    if len(kept) == len(args.opts.aliases or ()):
        return None
    opts = copy.copy(args.opts)
    opts.aliases = kept or None
    return pulumi.ResourceTransformationResult(args.props, opts)


def typed_custom(r: Registration, opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """``r`` through the class for its type (:func:`provider_class`), top-level inputs as keyword
    arguments (nested objects stay wire-form dicts), without the class's aliases to older API
    versions (:func:`without_older_api_versions`)."""
    opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(transformations=[without_older_api_versions]))
    package = r.type.split(":", 1)[0]
    # A dynamic resource's class serializes its provider itself.
    args = {keyword(package, prop): value for prop, value in r.inputs.items() if prop != PROVIDER_KEY}
    cls = provider_class(r.type)
    if cls is not None:
        return cls(r.name, opts=opts, **args)
    if package == "kubernetes":
        return k8s.apiextensions.CustomResource(r.name, opts=opts, **args)
    raise ValueError(f"no provider SDK class registers {r.type}")


def register(run: Run, custom: CustomFactory = core_custom) -> None:
    """Register ``run``'s resources in their recorded order (a parent and a dependency always
    precede the resources that name them), custom resources through ``custom``, mapping recorded
    URNs to the replayed resources. A read is replayed where a dependency first names it, the
    same way in every baseline (it registers nothing)."""
    by_urn: dict[str, pulumi.Resource] = {}
    reads = {r.urn: r for r in run.reads}

    def replayed(urn: str) -> pulumi.Resource:
        if urn not in by_urn:
            read = reads[urn]
            by_urn[urn] = _Custom(read.type, read.name, dict(read.inputs), pulumi.ResourceOptions(
                parent=by_urn.get(read.parent), id=read.read_id, version=read.version or None))
        return by_urn[urn]

    components: list[pulumi.ComponentResource] = []
    for r in run.resources:
        opts = pulumi.ResourceOptions(
            parent=by_urn.get(r.parent),  # None: the stack, as recorded
            depends_on=[replayed(urn) for urn in r.dependencies],
            ignore_changes=list(r.ignore_changes) or None,
            protect=r.protect or None,
            delete_before_replace=r.delete_before_replace or None,
            version=r.version or None,
            additional_secret_outputs=list(r.additional_secret_outputs) or None,
        )
        if r.custom:
            by_urn[r.urn] = custom(r, opts)
        else:
            component = _Component(r.type, r.name, opts)
            by_urn[r.urn] = component
            components.append(component)
    for component in components:
        # moe-ep's components end with register_outputs; so do these, to send the same calls.
        component.register_outputs({})


def identity(resources: list[Registration]) -> list[tuple[Any, ...]]:
    """What must match between a run and its replay: type, name, parent, inputs, options (aliases
    included: the replays send none, so a run that sent any would not match; the provider version
    and the outputs kept secret)."""
    return [
        (r.urn, r.type, r.name, r.parent, r.custom, r.inputs, r.ignore_changes, r.dependencies, r.protect,
         r.delete_before_replace, r.aliases, r.version, r.additional_secret_outputs)
        for r in resources
    ]
