"""PodDisruptionBudgets, counted in units for vLLM pools. Pure.

One pod evicted from a unit takes the whole unit down (the group restarts), so a budget of
``k`` pods across a pool's pods bounds a voluntary disruption to at most ``k`` units.
"""

from __future__ import annotations

from typing import Any

PDB_API_VERSION = "policy/v1"


def pdb_spec(match_labels: dict[str, str], *, max_unavailable: int | None = None, min_available: int | None = None) -> dict[str, Any]:
    """A policy/v1 PodDisruptionBudget spec. ``AlwaysAllow`` lets a drain evict pods that are not
    ready (a unit still loading its weights must not block node maintenance)."""
    if (max_unavailable is None) == (min_available is None):
        raise ValueError("give exactly one of max_unavailable and min_available")
    spec: dict[str, Any] = {"selector": {"matchLabels": dict(sorted(match_labels.items()))}, "unhealthyPodEvictionPolicy": "AlwaysAllow"}
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    else:
        spec["minAvailable"] = min_available
    return spec


def unit_pdb_spec(match_labels: dict[str, str], max_unavailable_units: int) -> dict[str, Any]:
    """Budget for a pool: at most ``max_unavailable_units`` units disrupted at once."""
    return pdb_spec(match_labels, max_unavailable=max_unavailable_units)
