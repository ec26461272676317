"""DistributedUnit: one vLLM instance that may span several nodes, as a LeaderWorkerSet.

Rank 0 (the LWS leader) takes the traffic; the other ranks join it. With ``guard`` on, the
failure of any rank recreates the whole group (a DP/EP group cannot lose a member and go on),
and a rolling update replaces whole groups.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import pulumi
from pydantic import BaseModel, ConfigDict, Field

from .kubernetes_object import KubernetesObject
from .placement import Placement

LWS_API_VERSION = "leaderworkerset.x-k8s.io/v1"
LWS_NAME_LABEL = "leaderworkerset.sigs.k8s.io/name"
LWS_WORKER_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"
EXCLUSIVE_TOPOLOGY_ANNOTATION = "leaderworkerset.sigs.k8s.io/exclusive-topology"
START_BARRIER_IMAGE = "busybox:1.37.0"
HEALTH_PATH = "/health"
PROBE_PERIOD_SECONDS = 10
# Tags are pinned, digests are not: the kubelet resolves the tag at every start (cached layers are
# reused), so a re-pushed tag cannot leave the ranks of one unit on different images.
IMAGE_PULL_POLICY = "Always"


class DistributedUnitArgs(BaseModel):
    """Everything a DistributedUnit needs; plain data, so other languages can hand a mapping."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str
    name: str = Field(description="Name of the LeaderWorkerSet and of the rank-0 Service.")
    image: str
    replicas: int = Field(1, ge=0, description="Units. Default 1.")
    size: int = Field(1, ge=1, description="Nodes (pods) per unit, rank 0 included. Default 1.")
    leader_command: tuple[str, ...] = Field(description="Full argv of rank 0's container.")
    worker_command: tuple[str, ...] = Field((), description="Full argv of ranks 1..size-1's container.")
    env: tuple[dict, ...] = Field((), description="Kubernetes EnvVar objects for every rank.")
    gpus_per_pod: int = Field(ge=1)
    gpu_resource: str = Field("nvidia.com/gpu", description="GPU extended resource. Default nvidia.com/gpu.")
    cpu: str = Field("32", description="CPU request = limit. Default 32.")
    memory: str = Field("512Gi", description="Memory request = limit. Default 512Gi.")
    shm_size: str = Field("32Gi", description="/dev/shm size limit. Default 32Gi.")
    port: int = Field(8000, description="vLLM's HTTP port on rank 0 (probes use it). Default 8000.")
    leader_sidecars: tuple[dict, ...] = Field(
        (), description="Native sidecars (init containers with restartPolicy Always) of rank 0; one may serve the `http` port in front of vLLM."
    )
    guard: bool = Field(True, description="Recreate the group when any rank restarts. Default true.")
    comm_interface: str = Field("eth0", description="Interface named in COMM_IFNAME. Default eth0.")
    max_surge: int | str = Field(0, description="Rolling update: extra units. Default 0.")
    max_unavailable: int | str = Field(1, description="Rolling update: units down at once. Default 1.")
    start_barrier: bool = Field(False, description="Init container waiting for every rank's DNS. Default false.")
    startup_minutes: int = Field(30, ge=1, description="How long rank 0 may take to load. Default 30.")
    labels: Mapping[str, str] = Field(default_factory=dict, description="Added to every object and pod.")
    annotations: Mapping[str, str] = Field(
        default_factory=dict, description="On the LeaderWorkerSet only (not its pods): facts policies read, e.g. the model's architecture."
    )
    placement: Placement = Field(default_factory=Placement, description="Nodes, tolerations, devices, privileges.")
    autoscaled: bool = Field(False, description="An autoscaler owns `replicas`; Pulumi then ignores it.")


def rank_env(comm_interface: str) -> list[dict]:
    """The PAI-EAS multi-machine variables, mapped from what LWS and the downward API provide."""
    return [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "RANK_ID", "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{LWS_WORKER_INDEX_LABEL}']"}}},
        {"name": "MASTER_ADDRESS", "value": "$(LWS_LEADER_ADDRESS)"},
        {"name": "RANK_IP", "value": "$(POD_IP)"},
        {"name": "COMM_IFNAME", "value": comm_interface},
    ]


def _env(args: DistributedUnitArgs) -> list[dict]:
    env = rank_env(args.comm_interface)
    seen = {e["name"] for e in env}
    # POD_IP is defined once, first, so later `$(POD_IP)` references expand.
    return env + [e for e in args.env if e["name"] not in seen]


def _http_probe(args: DistributedUnitArgs, period: int, failures: int) -> dict:
    return {
        "httpGet": {"path": HEALTH_PATH, "port": args.port},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def _start_barrier() -> dict:
    # Ranks are <lws>-<group>-<i>.<subdomain>...; the leader is <lws>-<group>.<subdomain>...
    script = (
        'first="${LWS_LEADER_ADDRESS%%.*}"; rest="${LWS_LEADER_ADDRESS#*.}"; i=0; '
        'while [ "$i" -lt "$LWS_GROUP_SIZE" ]; do '
        'if [ "$i" -eq 0 ]; then host="$LWS_LEADER_ADDRESS"; else host="$first-$i.$rest"; fi; '
        'until nslookup "$host" >/dev/null 2>&1; do echo "waiting for $host"; sleep 2; done; '
        "i=$((i + 1)); done"
    )
    return {
        "name": "start-barrier",
        "image": START_BARRIER_IMAGE,
        "imagePullPolicy": IMAGE_PULL_POLICY,
        "command": ["/bin/sh", "-c", script],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "32Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
            "runAsUser": 65534, "readOnlyRootFilesystem": True, "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def pod_template(args: DistributedUnitArgs, leader: bool) -> dict:
    """The pod template of rank 0 (``leader``) or of the other ranks. Pure."""
    # Quantities as strings: the API server stores a custom resource's pod template as given, and
    # gives `4` back as "4", so an int here showed a diff on every preview after `up`.
    amount = {args.gpu_resource: str(args.gpus_per_pod),
              **{name: str(count) for name, count in sorted(args.placement.extra_resources.items())}}
    compute = {"cpu": args.cpu, "memory": args.memory, **amount}
    container: dict[str, Any] = {"name": "vllm", "image": args.image, "imagePullPolicy": IMAGE_PULL_POLICY}
    if leader:
        container["command"] = list(args.leader_command)
    else:
        container["command"] = list(args.worker_command)
    container["env"] = _env(args)
    sidecars = list(args.leader_sidecars) if leader else []
    if leader:
        # The Service targets the port named `http`: vLLM's, unless a sidecar serves in front of it.
        port_name = "vllm" if any(p.get("name") == "http" for c in sidecars for p in c.get("ports", [])) else "http"
        container["ports"] = [{"name": port_name, "containerPort": args.port, "protocol": "TCP"}]
        # Headless ranks serve no HTTP; rank 0 reports the unit's health for all of them.
        container["startupProbe"] = _http_probe(args, PROBE_PERIOD_SECONDS, args.startup_minutes * 60 // PROBE_PERIOD_SECONDS)
        container["readinessProbe"] = _http_probe(args, PROBE_PERIOD_SECONDS, 3)
        container["livenessProbe"] = _http_probe(args, 30, 5)
    container["resources"] = {"requests": dict(compute), "limits": dict(compute)}
    container["securityContext"] = dict(args.placement.security_context)
    container["volumeMounts"] = [{"name": "dshm", "mountPath": "/dev/shm"}]
    spec: dict[str, Any] = {
        # Privileged containers run unconfined whatever the pod says; every other one gets the runtime's profile.
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        # A Service named like VLLM_PORT would inject VLLM_PORT=tcp://... and crash vLLM.
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 120,
    }
    init = ([_start_barrier()] if args.start_barrier else []) + sidecars
    if init:
        spec["initContainers"] = init
    spec["containers"] = [container]
    placement = args.placement
    if placement.node_selector:
        spec["nodeSelector"] = dict(sorted(placement.node_selector.items()))
    if placement.tolerations:
        spec["tolerations"] = list(placement.tolerations)
    spec["volumes"] = [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": args.shm_size}}]
    metadata: dict[str, Any] = {"labels": dict(sorted(args.labels.items()))}
    if placement.pod_annotations:
        metadata["annotations"] = dict(sorted(placement.pod_annotations.items()))
    return {"metadata": metadata, "spec": spec}


def leader_worker_set_spec(args: DistributedUnitArgs) -> dict:
    """The LeaderWorkerSet `spec`. Pure."""
    template: dict[str, Any] = {
        "size": args.size,
        "restartPolicy": "RecreateGroupOnPodRestart" if args.guard else "None",
    }
    if args.size > 1:
        template["leaderTemplate"] = pod_template(args, leader=True)
        template["workerTemplate"] = pod_template(args, leader=False)
    else:
        # With one pod per group LWS runs the worker template as the leader.
        template["workerTemplate"] = pod_template(args, leader=True)
    return {
        "replicas": args.replicas,
        # Not LeaderReady: a vLLM DP leader is not ready until its workers have joined.
        "startupPolicy": "LeaderCreated",
        "rolloutStrategy": {
            "type": "RollingUpdate",
            "rollingUpdateConfiguration": {"maxSurge": args.max_surge, "maxUnavailable": args.max_unavailable},
        },
        "leaderWorkerTemplate": template,
    }


def lws_metadata(args: DistributedUnitArgs) -> dict:
    metadata: dict[str, Any] = {"name": args.name, "namespace": args.namespace, "labels": dict(sorted(args.labels.items()))}
    annotations = dict(args.annotations)
    if args.placement.exclusive_topology and args.size > 1:
        annotations[EXCLUSIVE_TOPOLOGY_ANNOTATION] = args.placement.exclusive_topology
    if annotations:
        metadata["annotations"] = dict(sorted(annotations.items()))
    return metadata


LEADER_SERVICE_ANNOTATIONS = {"pulumi.com/skipAwait": "true"}
"""pulumi-kubernetes awaits a Service with a selector until none of its endpoints is unready, for
at most 10 minutes; rank 0 is unready for the whole model load (20+ minutes for DeepSeek-R1), so
the first `up` would fail on it. The LeaderWorkerSet is not awaited either: readiness of the units
is a question for monitoring, not for `pulumi up`."""


def leader_service_name(args: DistributedUnitArgs) -> str:
    """``<unit>-leader``: the LWS controller owns a headless Service named after the unit itself,
    the subdomain of every pod's DNS name (``LWS_LEADER_ADDRESS``); it creates it only if no
    Service of that name exists, so taking the name would break multi-node units."""
    return f"{args.name}-leader"


def serving_port(args: DistributedUnitArgs) -> int:
    """The port rank 0 serves clients on: a sidecar's ``http`` port when one sits in front of vLLM,
    else vLLM's own. Pure."""
    in_front = [p["containerPort"] for s in args.leader_sidecars for p in s.get("ports", []) if p.get("name") == "http"]
    return in_front[0] if in_front else args.port


def leader_service_spec(args: DistributedUnitArgs) -> dict:
    """A ClusterIP Service that selects only rank 0 of every unit, on the port rank 0 serves
    clients on (the same number as its target: a decode unit behind the routing sidecar is reached
    on 8000 like every other unit, never on vLLM's 8200 behind it). Pure."""
    port = serving_port(args)
    return {
        "type": "ClusterIP",
        "selector": {LWS_NAME_LABEL: args.name, LWS_WORKER_INDEX_LABEL: "0"},
        "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
    }


class DistributedUnit(pulumi.ComponentResource):
    """A group of pods that runs one vLLM instance across ``size`` nodes, ``replicas`` times.

    Creates a LeaderWorkerSet (``leaderworkerset.x-k8s.io/v1``; LWS must be installed) and a
    Service ``<name>-leader`` that selects rank 0 of every group. Exposes ``leader_address``, the in-cluster
    DNS name of that Service.

    Example::

        unit = DistributedUnit("decode", DistributedUnitArgs(
            namespace="llm", name="r1-decode", image="vllm/vllm-openai:v0.33.0", size=2,
            leader_command=("vllm", "serve", "deepseek-ai/DeepSeek-R1"), gpus_per_pod=8))
        pulumi.export("decode", unit.leader_address)
    """

    leader_worker_set: KubernetesObject
    service: KubernetesObject
    leader_address: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        args: DistributedUnitArgs | Mapping[str, Any],
        opts: Optional[pulumi.ResourceOptions] = None,
    ) -> None:
        super().__init__("moe-ep:index:DistributedUnit", resource_name, None, opts)
        args = DistributedUnitArgs.model_validate(args)
        child = pulumi.ResourceOptions(parent=self)
        self.args = args
        self.leader_worker_set = KubernetesObject(
            resource_name,
            {"apiVersion": LWS_API_VERSION, "kind": "LeaderWorkerSet", "metadata": lws_metadata(args),
             "spec": leader_worker_set_spec(args)},
            pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(ignore_changes=["spec.replicas"] if args.autoscaled else None)),
        )
        self.service = KubernetesObject(f"{resource_name}-leader", {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": leader_service_name(args), "namespace": args.namespace,
                         "labels": dict(sorted(args.labels.items())),
                         "annotations": dict(LEADER_SERVICE_ANNOTATIONS)},
            "spec": leader_service_spec(args),
        }, child)
        self.leader_address = pulumi.Output.from_input(f"{leader_service_name(args)}.{args.namespace}.svc.cluster.local")
        self.register_outputs({"leader_address": self.leader_address, "name": args.name})
