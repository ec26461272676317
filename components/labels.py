"""The label scheme every object of a service carries (Kubernetes' recommended labels)."""

from __future__ import annotations

from .spec import ServiceSpec

COMPONENT = "app.kubernetes.io/component"


def service_labels(spec: ServiceSpec) -> dict[str, str]:
    """Labels every object of a service carries."""
    return {
        "app.kubernetes.io/name": spec.name,
        "app.kubernetes.io/part-of": "moe-ep",
        "app.kubernetes.io/managed-by": "pulumi",
    }


def component_labels(spec: ServiceSpec, component: str) -> dict[str, str]:
    """Labels of one part of a service (a pool role, the router, the scheduler, ...)."""
    return {**service_labels(spec), COMPONENT: component}
