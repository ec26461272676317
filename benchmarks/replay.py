"""Replay recorded registrations with the bare Pulumi SDK (see ``bare_program.py``)."""

from __future__ import annotations

from typing import Any

import pulumi

from moe_ep.engine import Registration

_queued: list[list[Registration]] = []


def hand_over(resources: list[Registration]) -> None:
    """Queue the registrations the next run of ``bare_program.py`` replays."""
    _queued.append(resources)


def take() -> list[Registration]:
    if not _queued:
        raise RuntimeError("bare_program.py runs only after replay.hand_over(registrations)")
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


def register(resources: list[Registration]) -> None:
    """Register ``resources`` in their recorded order (a parent and a dependency always precede
    the resources that name them), mapping recorded URNs to the replayed resources."""
    by_urn: dict[str, pulumi.Resource] = {}
    components: list[pulumi.ComponentResource] = []
    for r in resources:
        opts = pulumi.ResourceOptions(
            parent=by_urn.get(r.parent),  # None: the stack, as recorded
            depends_on=[by_urn[urn] for urn in r.dependencies],
            ignore_changes=list(r.ignore_changes) or None,
            protect=r.protect or None,
            delete_before_replace=r.delete_before_replace or None,
        )
        if r.custom:
            by_urn[r.urn] = _Custom(r.type, r.name, dict(r.inputs), opts)
        else:
            component = _Component(r.type, r.name, opts)
            by_urn[r.urn] = component
            components.append(component)
    for component in components:
        # moe-ep's components end with register_outputs; so do these, to send the same calls.
        component.register_outputs({})


def identity(resources: list[Registration]) -> list[tuple[Any, ...]]:
    """What must match between a run and its replay: type, name, parent, inputs, options."""
    return [
        (r.urn, r.type, r.name, r.parent, r.custom, r.inputs, r.ignore_changes, r.dependencies, r.protect, r.delete_before_replace)
        for r in resources
    ]
