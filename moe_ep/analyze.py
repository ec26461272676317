"""Run the policy pack on a planned stack through the pulumi-policy analyzer, as the engine does.

The servicer is the one the Pulumi CLI talks to over gRPC (``pulumi_policy.policy.
_PolicyAnalyzerServicer``; private, hence the pinned pulumi-policy): ``Configure`` with the
stack's enforcement levels, ``Analyze`` once per resource with its inputs, ``AnalyzeStack`` once
with every resource's outputs. What it sends is what the engine (pkg/v3 v3.274.0) sends: every
resource the program registered, components included, and the root stack with its exports
(``engine.Run.stack_resource``); keys starting with ``__`` dropped (the engine's
``SkipInternalKeys``); unknowns, in a preview-mode run, as the wire's unknown sentinel. Default
providers, which the engine also sends, are left out: no rule reads them.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from google.protobuf import struct_pb2
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy.policy import EnforcementLevel, _PolicyAnalyzerServicer

from components.spec import POLICY_KEY, Problem, StackError, key_step
from policies.pack import NAME, VERSION, policies
from policies.rules import RULES_BY_NAME

from .engine import Registration, wire

_LEVEL_NAMES = {
    analyzer_pb2.ADVISORY: "advisory",
    analyzer_pb2.MANDATORY: "mandatory",
    analyzer_pb2.DISABLED: "disabled",
    analyzer_pb2.REMEDIATE: "mandatory",
}
_LEVELS = {"advisory": analyzer_pb2.ADVISORY, "mandatory": analyzer_pb2.MANDATORY, "disabled": analyzer_pb2.DISABLED}


def enforcement_levels(config: Mapping[str, Any], source: str) -> dict[str, str]:
    """Per-stack overrides from ``moe-ep:policy: {enforcement: {rule: level}}``; raises StackError."""
    section = config.get(POLICY_KEY) or {}
    at = f"{POLICY_KEY}.enforcement"
    if not isinstance(section, Mapping) or set(section) - {"enforcement"}:
        raise StackError(source, [Problem(POLICY_KEY, section, "a mapping with the key `enforcement`")])
    levels = section.get("enforcement") or {}
    if not isinstance(levels, Mapping):
        raise StackError(source, [Problem(at, levels, "a mapping of rule name to advisory | mandatory | disabled")])
    found = []
    for rule, level in levels.items():
        if rule not in RULES_BY_NAME:
            found.append(Problem(at + key_step(rule), level, f"a rule name: one of {', '.join(sorted(RULES_BY_NAME))}"))
        elif not isinstance(level, str) or level not in _LEVELS:
            found.append(Problem(at + key_step(rule), level, "advisory, mandatory or disabled"))
    if found:
        raise StackError(source, found)
    return dict(levels)


def _engine_view(value: Any) -> Any:
    """Without the keys the engine keeps from analyzers (``__provider``, ``__inputs``, ...)."""
    if isinstance(value, Mapping):
        return {k: _engine_view(v) for k, v in value.items() if not str(k).startswith("__")}
    if isinstance(value, list):
        return [_engine_view(v) for v in value]
    return value


def _struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(_engine_view(wire(dict(value))))
    return struct


def analyzer(levels: Mapping[str, str] | None = None) -> _PolicyAnalyzerServicer:
    servicer = _PolicyAnalyzerServicer(NAME, VERSION, policies(), EnforcementLevel.ADVISORY)
    request = analyzer_pb2.ConfigureAnalyzerRequest()
    for rule, level in (levels or {}).items():
        request.policyConfig[rule].CopyFrom(analyzer_pb2.PolicyConfig(enforcementLevel=_LEVELS[level]))
    servicer.Configure(request, None)
    return servicer


def _violations(response: analyzer_pb2.AnalyzeResponse, names: Mapping[str, str], default: str) -> list[dict[str, Any]]:
    return [
        {
            "policy": d.policyName,
            "enforcement": _LEVEL_NAMES[d.enforcementLevel],
            "resource": names.get(d.urn, default),
            # The SDK prefixes the policy's description; the rule's own sentence is what says what is wrong.
            "message": d.message.removeprefix(d.description + "\n"),
        }
        for d in response.diagnostics
    ]


def analyze(resources: Iterable[Registration], levels: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Every violation, in a stable order (mandatory first). ``resources``: what the program
    registered, and the root stack (``Run.stack_resource()``) to see what the engine sends."""
    servicer = analyzer(levels)
    resources = list(resources)
    names = {r.urn: r.name for r in resources}
    found: list[dict[str, Any]] = []
    for r in resources:
        request = analyzer_pb2.AnalyzeRequest(type=r.type, properties=_struct(r.inputs), urn=r.urn, name=r.name)
        found += _violations(servicer.Analyze(request, None), names, r.name)
    stack = analyzer_pb2.AnalyzeStackRequest(resources=[
        analyzer_pb2.AnalyzerResource(
            type=r.type, properties=_struct(r.outputs), urn=r.urn, name=r.name, parent=r.parent, dependencies=list(r.dependencies),
        )
        for r in resources
    ])
    found += _violations(servicer.AnalyzeStack(stack, None), names, "(stack)")
    return sorted(found, key=lambda v: (v["enforcement"] != "mandatory", v["policy"], v["resource"], v["message"]))
