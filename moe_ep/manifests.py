"""Registered Kubernetes resources -> Kubernetes manifests, in apply order, byte-stable.

The mock runtime hands every number back as a float; Kubernetes wants integers for replicas,
ports and counts, so integral floats become ints. Keys are sorted (after apiVersion, kind,
metadata) so the same program renders the same bytes every time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

import yaml

from components.kubernetes_object import manifest_type

from .engine import Registration

# Apply order: what others depend on first; objects served by operators' CRDs last, after the
# Services and Secrets their pods use.
_KIND_ORDER = [
    "Namespace", "ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding",
    "Secret", "ConfigMap", "NetworkPolicy", "Node", "NodePool", "Service", "Deployment",
    "StatefulSet", "LeaderWorkerSet", "InferencePool", "HorizontalPodAutoscaler", "ScaledObject",
    "PodDisruptionBudget", "PodMonitor", "ServiceMonitor", "PrometheusRule",
]


def is_manifest(resource: Registration) -> bool:
    """True for Kubernetes objects (not providers, components or other packages' resources)."""
    return resource.custom and resource.type.startswith("kubernetes:") and not resource.type.startswith("pulumi:providers:")


def _normal(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _normal(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def to_manifest(resource: Registration) -> dict[str, Any]:
    """One Kubernetes object from one registration (integers restored, keys sorted)."""
    body = {k: v for k, v in resource.inputs.items() if k not in ("apiVersion", "kind", "metadata")}
    # A server-side-apply patch (NodePatch) is applied as the object it patches.
    api_version, kind = manifest_type(resource.type)
    manifest = {"apiVersion": resource.inputs.get("apiVersion") or api_version, "kind": kind}
    manifest["metadata"] = _normal(resource.inputs.get("metadata") or {})
    manifest.update(_normal(body))
    return manifest


def _order(manifest: dict[str, Any]) -> tuple:
    kind = manifest["kind"]
    rank = _KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER)
    meta = manifest["metadata"]
    return rank, kind, meta.get("namespace", ""), meta.get("name", "")


def manifests(resources: Iterable[Registration]) -> list[dict[str, Any]]:
    """Every Kubernetes object, in apply order."""
    return sorted((to_manifest(r) for r in resources if is_manifest(r)), key=_order)


def dump(manifest: dict[str, Any]) -> str:
    return yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False, width=120, allow_unicode=True)


_UNSAFE = re.compile(r"[^a-z0-9.-]+")


def file_name(index: int, manifest: dict[str, Any]) -> str:
    """``NNN-<kind>-<name>.yaml``: apply order in the name."""
    name = _UNSAFE.sub("-", manifest["metadata"].get("name", "unnamed").lower())
    return f"{index:03d}-{manifest['kind'].lower()}-{name}.yaml"


def write(objects: list[dict[str, Any]], out: Path) -> list[Path]:
    """Write one file per object into ``out`` (created; files of an earlier render removed)."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("[0-9][0-9][0-9]-*.yaml"):
        stale.unlink()
    written = []
    for index, manifest in enumerate(objects, start=1):
        path = out / file_name(index, manifest)
        path.write_text(dump(manifest), encoding="utf-8")
        written.append(path)
    return written
