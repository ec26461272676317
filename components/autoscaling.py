"""Per-role autoscaling of units: an HPA on the LeaderWorkerSet scale subresource, or a KEDA
ScaledObject. Pure.

LWS exposes a scale subresource whose pod selector matches leader pods only, so the autoscaler
counts and scales whole units and reads rank 0's metrics. GPU units take minutes to load: scale
up at most one unit per period, scale down only after a long stabilization, and on the way down
pick the policy that removes the least.
"""

from __future__ import annotations

from typing import Any

from .spec import AutoscalingSpec, ServiceSpec
from .unit import LWS_API_VERSION

HPA_API_VERSION = "autoscaling/v2"
KEDA_API_VERSION = "keda.sh/v1alpha1"


def behavior(auto: AutoscalingSpec) -> dict[str, Any]:
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": auto.scale_up_period_seconds}],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": auto.scale_down_stabilization_seconds,
            "selectPolicy": "Min",
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": auto.scale_up_period_seconds}],
        },
    }


def _target(unit_name: str) -> dict[str, str]:
    return {"apiVersion": LWS_API_VERSION, "kind": "LeaderWorkerSet", "name": unit_name}


def _quantity(value: float) -> str:
    return f"{value:g}"


def hpa_spec(auto: AutoscalingSpec, unit_name: str) -> dict[str, Any]:
    """autoscaling/v2 HPA: average waiting requests per unit (a Pods metric served by the
    metrics adapter under ``auto.hpa_metric``)."""
    return {
        "scaleTargetRef": _target(unit_name),
        "minReplicas": auto.min_replicas,
        "maxReplicas": auto.max_replicas,
        "metrics": [{
            "type": "Pods",
            "pods": {
                "metric": {"name": auto.hpa_metric},
                "target": {"type": "AverageValue", "averageValue": _quantity(auto.target_waiting_per_unit)},
            },
        }],
        "behavior": behavior(auto),
    }


def waiting_query(spec: ServiceSpec, role: str) -> str:
    """One series: requests waiting across the role's units (KEDA needs a single value)."""
    return f'sum(vllm:num_requests_waiting{{namespace="{spec.namespace}",pod=~"{spec.name}-{role}-[0-9]+"}})'


def scaled_object_spec(auto: AutoscalingSpec, unit_name: str, spec: ServiceSpec, role: str) -> dict[str, Any]:
    """KEDA ScaledObject with a Prometheus trigger; the HPA KEDA creates gets the same behaviour."""
    return {
        "scaleTargetRef": _target(unit_name),
        "minReplicaCount": auto.min_replicas,
        "maxReplicaCount": auto.max_replicas,
        "pollingInterval": 30,
        "cooldownPeriod": auto.scale_down_stabilization_seconds,
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": behavior(auto)}},
        "triggers": [{
            "type": "prometheus",
            "metadata": {
                "serverAddress": auto.prometheus_address,
                "query": waiting_query(spec, role),
                "threshold": _quantity(auto.target_waiting_per_unit),
            },
        }],
    }
