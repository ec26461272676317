"""The checkov findings this project accepts, and why: one table, written onto the objects.

checkov (``--framework kubernetes``) reads a skip from the scanned object's own
``metadata.annotations`` as ``checkov.io/skipN: CKV_K8S_xx=<reason>``. Every skip the project
takes is a row of :data:`CHECKOV_SKIPS`, keyed by what needs it; components ask for the rows that
apply to the object they build (a LeaderWorkerSet's rows cover the pod templates inside it, which
the tests scan as shadow Deployments). Everything else checkov flags is fixed in the components.
"""

from __future__ import annotations

from typing import Any, Mapping

SKIP_ANNOTATION_PREFIX = "checkov.io/skip"

_ROOT = "the vLLM image runs as root (model and kernel caches live under /root)"
CHECKOV_SKIPS: dict[str, tuple[tuple[str, str], ...]] = {
    # Every object that runs a container.
    "image": (("CKV_K8S_43", "tags pinned, digests per registry"),),
    # Every vLLM pod template (rank 0 and the other ranks).
    "vllm": (
        ("CKV_K8S_22", "vLLM, torch.compile and Triton write weights and kernel caches into the image's filesystem"),
        ("CKV_K8S_23", _ROOT),
        ("CKV_K8S_40", _ROOT),
        ("CKV_K8S_35", "vLLM reads its API key only from VLLM_API_KEY or argv; a secretKeyRef keeps it out of argv"),
    ),
    # Units of more than one node: ranks 1..n-1 are headless.
    "vllm-headless-ranks": (
        ("CKV_K8S_8", "ranks 1..n-1 serve no HTTP; rank 0's probes report the unit and guard restarts the group"),
        ("CKV_K8S_9", "ranks 1..n-1 serve no HTTP; rank 0's probes report the unit and guard restarts the group"),
    ),
    # RDMA roles (components.node_pool.capabilities): uid 0 with only the added capabilities.
    "vllm-rdma": (("CKV_K8S_25", "IPC_LOCK (and SYS_RAWIO for DeepEP) pins RDMA memory; every other capability is dropped"),),
    # node_pool.privileged: the cluster's RDMA setup needs a privileged container.
    "vllm-privileged": (
        ("CKV_K8S_16", "node_pool.privileged: this cluster's RDMA setup needs raw device access"),
        ("CKV_K8S_20", "node_pool.privileged: a privileged container can always escalate"),
        ("CKV_K8S_28", "node_pool.privileged: a privileged container keeps NET_RAW"),
        ("CKV_K8S_37", "node_pool.privileged: a privileged container keeps every capability"),
    ),
    # The llm-d scheduler's Deployment.
    "scheduler": (("CKV_K8S_38", "the llm-d scheduler watches pods and InferencePools through the API server"),),
}
"""kind of object -> (checkov check id, reason) rows. Reasons hold no ``=`` (checkov splits on it)."""


def skip_annotations(*kinds: str) -> dict[str, str]:
    """The ``checkov.io/skipN`` annotations for the rows of ``kinds``, numbered in order. Pure."""
    rows = [row for kind in kinds for row in CHECKOV_SKIPS[kind]]
    return {f"{SKIP_ANNOTATION_PREFIX}{i}": f"{check}={reason}" for i, (check, reason) in enumerate(rows, start=1)}


def unit_skip_kinds(security_context: Mapping[str, Any], size: int) -> tuple[str, ...]:
    """The rows a LeaderWorkerSet of ``size`` pods per unit needs, given its vLLM container's
    securityContext. Pure."""
    kinds = ["image", "vllm"]
    if size > 1:
        kinds.append("vllm-headless-ranks")
    if security_context.get("privileged"):
        kinds.append("vllm-privileged")
    elif (security_context.get("capabilities") or {}).get("add"):
        kinds.append("vllm-rdma")
    return tuple(kinds)
