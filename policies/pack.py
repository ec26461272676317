"""The rules as pulumi-policy policies: the one place that adapts rules.py to the Policy SDK."""

from __future__ import annotations

from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from .rules import RULES, Resource, Rule

NAME = "moe-ep"
VERSION = "0.1.0"
LEVELS = {
    "advisory": EnforcementLevel.ADVISORY,
    "mandatory": EnforcementLevel.MANDATORY,
    "disabled": EnforcementLevel.DISABLED,
}


def _plain(value: Any) -> Any:
    """The SDK's read-only proxies as plain dicts and lists."""
    if hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return value
    return [_plain(v) for v in value]


def _resource_policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        for message in rule.check(Resource(args.resource_type, args.name, _plain(args.props))):
            report(message, args.urn)

    return ResourceValidationPolicy(rule.name, rule.description, validate, LEVELS[rule.enforcement])


def _stack_policy(rule: Rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        resources = [Resource(r.resource_type, r.name, _plain(r.props)) for r in args.resources]
        urns = {r.name: r.urn for r in args.resources}
        for name, message in rule.check(resources):
            report(f"{name}: {message}", urns.get(name))

    return StackValidationPolicy(rule.name, rule.description, validate, LEVELS[rule.enforcement])


def policies() -> list:
    return [(_resource_policy if rule.scope == "resource" else _stack_policy)(rule) for rule in RULES]
