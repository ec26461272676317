"""The rules as pulumi-policy policies: the one place that adapts rules.py to the Policy SDK.

The rules get the SDK's read-only proxies of the properties as they are, not copies: a proxy
raises ``UnknownValueError`` only when a rule reads a value the engine does not know yet (on a
first preview, the generated API key and what is built from it), and the SDK turns that into an
advisory "can't run policy" for that rule on that resource. A copy would read every value, so one
unknown anywhere (the stack's ``api_key`` output) would stop every stack rule on a first preview.
"""

from __future__ import annotations

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
VERSION = "0.0.1"
"""The version a Python pack reports: pulumi-policy's ``PolicyPack`` fixes it at 0.0.1, and the
CLI's messages quote it (``moe-ep@v0.0.1``); the offline analyzer says the same."""
LEVELS = {
    "advisory": EnforcementLevel.ADVISORY,
    "mandatory": EnforcementLevel.MANDATORY,
    "disabled": EnforcementLevel.DISABLED,
}


def _resource_policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        for message in rule.check(Resource(args.resource_type, args.name, args.props)):
            report(message, args.urn)

    return ResourceValidationPolicy(rule.name, rule.description, validate, LEVELS[rule.enforcement])


def _stack_policy(rule: Rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        resources = [Resource(r.resource_type, r.name, r.props, r.urn) for r in args.resources]
        for resource, message in rule.check(resources):
            report(f"{resource.name}: {message}", resource.urn or None)

    return StackValidationPolicy(rule.name, rule.description, validate, LEVELS[rule.enforcement])


def policies() -> list:
    return [(_resource_policy if rule.scope == "resource" else _stack_policy)(rule) for rule in RULES]
