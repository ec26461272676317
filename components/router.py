"""Router: the service's one endpoint, in front of the prefill and decode pools.

Two modes (``router.mode``):

- ``llm-d``: the llm-d inference scheduler (the Gateway API Inference Extension's endpoint
  picker with llm-d's prefill/decode plugins) decides, per request, which decode unit serves it
  and whether a prefill unit computes the prompt first (prefix-based decider). An Envoy proxy
  asks the scheduler over ext_proc and forwards to the chosen pod; the llm-d routing sidecar in
  each decode pod runs the prefill call and hands the KV cache over NIXL. An ``InferencePool``
  names the pods the scheduler may pick (rank 0 of every unit).
- ``round-robin``: Envoy balancing requests over the decode units' rank 0 (decode-only stacks).

The proxy is stateless and scales on CPU; the scheduler keeps its prefix-cache index in memory
and runs as one replica. Every object is plain Kubernetes (no chart), so every field is checked.
Wiring facts come from llm-d's pd-disaggregation and wide-ep-lws guides (llm-d v0.6.0 release).
"""

from __future__ import annotations

import hashlib
from typing import Any, Mapping, Optional

import pulumi
import yaml

from . import sizing, vllm
from .autoscaling import HPA_API_VERSION
from .disruption import PDB_API_VERSION, pdb_spec
from .kubernetes_object import KubernetesObject
from .labels import component_labels
from .placement import OFF_GPU_NODES
from .scanning import skip_annotations
from .spec import MAX_UNITS, ServiceSpec
from .unit import IMAGE_PULL_POLICY, LWS_WORKER_INDEX_LABEL

PROXY_PORT = 8081
PROXY_READY_PORT = 19001
SERVICE_PORT = 80
EPP_GRPC_PORT = 9002
EPP_HEALTH_PORT = 9003
EPP_METRICS_PORT = 9090
INFERENCE_POOL_API = "inference.networking.k8s.io/v1"
RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_API_VERSION = f"{RBAC_GROUP}/v1"
LLM_D_ROLE_LABEL = "llm-d.ai/role"
SERVICE_ANNOTATIONS = {"pulumi.com/skipAwait": "true"}
"""On the router's and the llm-d scheduler's Services. pulumi-kubernetes awaits a Service with a
selector until its endpoints have settled (10 s after their last change) and none is unready, which
checks nothing the Deployment behind it does not: its awaiter already fails `up` when the pods do
not become available, the Service selects them with the Deployment's own selector, and nothing reads
the Service's status (the endpoint is its in-cluster name). A LoadBalancer's address is not awaited
either: a cluster that never assigns one shows it on the Service, not in `up`."""
ROUTER_COMPONENT = "router"
SCHEDULER_COMPONENT = "scheduler"
CONFIG_CHECKSUM_ANNOTATION = "moe-ep.io/config-sha256"

RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}
"""Pod Security `restricted`, for every router container."""


def names(spec: ServiceSpec) -> dict[str, str]:
    base = spec.name
    return {
        "router": f"{base}-router",
        "scheduler": f"{base}-scheduler",
        "pool": base,
        "backends": f"{base}-router-backends",
    }


def endpoint(spec: ServiceSpec) -> str:
    """The URL clients use inside the cluster."""
    return f"http://{names(spec)['router']}.{spec.namespace}.svc.cluster.local"


def selector(spec: ServiceSpec, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": spec.name, "app.kubernetes.io/component": component}


def serving_selector(spec: ServiceSpec) -> dict[str, str]:
    """Rank 0 of every unit of the service: the only pods that serve HTTP."""
    return {"app.kubernetes.io/name": spec.name, "app.kubernetes.io/part-of": "moe-ep", LWS_WORKER_INDEX_LABEL: "0"}


def config_yaml(document: dict[str, Any]) -> str:
    """A config file's text, keys in the order written. libyaml's emitter (PyYAML's wheels bundle
    it) writes the same text as the pure-Python one, five times faster."""
    return yaml.dump(document, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False)


# --- llm-d pieces (pure) -----------------------------------------------------------------------


def config_checksum(config: str) -> dict[str, str]:
    """The pod-template annotation that rolls a Deployment when its ConfigMap changes: Envoy and the
    scheduler read their file once at start, and a new ConfigMap alone restarts no pod. Pure."""
    return {CONFIG_CHECKSUM_ANNOTATION: hashlib.sha256(config.encode()).hexdigest()}


def scheduler_config(spec: ServiceSpec) -> str:
    """The llm-d EndpointPickerConfig: decode profile first, then prefill when the decider says the
    uncached part of the prompt is long enough."""
    scorers = [
        {"pluginRef": "max-score-picker"},
        {"pluginRef": "prefix-cache-scorer", "weight": 2},
        {"pluginRef": "queue-scorer", "weight": 1},
        {"pluginRef": "kv-cache-utilization-scorer", "weight": 1},
    ]
    config = {
        "apiVersion": "inference.networking.x-k8s.io/v1alpha1",
        "kind": "EndpointPickerConfig",
        # prefix-cache-scorer publishes per-endpoint prefix matches only with this gate; the decider reads them.
        "featureGates": ["prepareDataPlugins"],
        "plugins": [
            {"type": "prefill-header-handler"},
            {"type": "prefill-filter"},
            {"type": "decode-filter"},
            {"type": "prefix-cache-scorer", "parameters": {"maxPrefixBlocksToMatch": 256, "lruCapacityPerServer": 31250}},
            {"type": "queue-scorer"},
            {"type": "kv-cache-utilization-scorer"},
            {"type": "max-score-picker"},
            {"type": "prefix-based-pd-decider", "parameters": {"nonCachedTokens": spec.router.non_cached_tokens}},
            {"type": "pd-profile-handler", "parameters": {"deciderPluginName": "prefix-based-pd-decider"}},
        ],
        "schedulingProfiles": [
            {"name": "prefill", "plugins": [{"pluginRef": "prefill-filter"}, *scorers]},
            {"name": "decode", "plugins": [{"pluginRef": "decode-filter"}, *scorers]},
        ],
    }
    return config_yaml(config)


def routing_sidecar(spec: ServiceSpec) -> dict[str, Any]:
    """The llm-d routing sidecar of a decode pod: takes the serving port, calls the prefill unit
    named in ``x-prefiller-host-port``, then its local vLLM with the KV-transfer parameters."""
    return {
        "name": "routing-proxy",
        "image": spec.router.sidecar_image,
        "imagePullPolicy": IMAGE_PULL_POLICY,
        "restartPolicy": "Always",
        "args": [
            f"--port={vllm.SERVE_PORT}",
            f"--vllm-port={vllm.BEHIND_SIDECAR_PORT}",
            "--kv-connector=nixlv2",  # v0.7.1 reads this; --connector is its deprecated alias
            "--secure-proxy=false",
            "--zap-log-level=1",
        ],
        "ports": [{"name": "http", "containerPort": vllm.SERVE_PORT, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}},
        "securityContext": dict(RESTRICTED),
    }


def inference_pool_spec(spec: ServiceSpec) -> dict[str, Any]:
    return {
        "selector": {"matchLabels": serving_selector(spec)},
        "targetPorts": [{"number": vllm.SERVE_PORT}],
        "endpointPickerRef": {
            "name": names(spec)["scheduler"],
            "port": {"number": EPP_GRPC_PORT},
            "failureMode": "FailClose",
        },
    }


def scheduler_rules() -> list[dict[str, Any]]:
    """What the scheduler reads: the pods it picks from and its InferencePool (and the optional
    objective/rewrite objects of the inference extension)."""
    read = ["get", "list", "watch"]
    return [
        {"apiGroups": [""], "resources": ["pods"], "verbs": read},
        {"apiGroups": ["inference.networking.k8s.io"], "resources": ["inferencepools"], "verbs": read},
        {"apiGroups": ["inference.networking.x-k8s.io"], "resources": ["inferenceobjectives", "inferencemodelrewrites"], "verbs": read},
    ]


def scheduler_pod(spec: ServiceSpec) -> dict[str, Any]:
    n = names(spec)
    grpc_probe = {"grpc": {"port": EPP_HEALTH_PORT, "service": "inference-extension"}}
    container = {
        "name": "scheduler",
        "image": spec.router.scheduler_image,
        "imagePullPolicy": IMAGE_PULL_POLICY,
        "args": [
            f"--pool-name={n['pool']}",
            f"--pool-namespace={spec.namespace}",
            "--pool-group=inference.networking.k8s.io",
            "--config-file=/config/scheduler.yaml",
            f"--grpc-port={EPP_GRPC_PORT}",
            f"--grpc-health-port={EPP_HEALTH_PORT}",
            f"--metrics-port={EPP_METRICS_PORT}",
            # Plain gRPC inside the namespace; the NetworkPolicy admits only the proxy to this port.
            "--secure-serving=false",
            "--metrics-endpoint-auth=false",
            "--kv-cache-usage-percentage-metric=vllm:kv_cache_usage_perc",
            "--tracing=false",
            "--zap-encoder=json",
            "--v=1",
        ],
        "env": [
            {"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "ports": [
            {"name": "grpc", "containerPort": EPP_GRPC_PORT, "protocol": "TCP"},
            {"name": "grpc-health", "containerPort": EPP_HEALTH_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": EPP_METRICS_PORT, "protocol": "TCP"},
        ],
        "livenessProbe": {**grpc_probe, "initialDelaySeconds": 5, "periodSeconds": 10},
        "readinessProbe": {**grpc_probe, "periodSeconds": 2},
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "4", "memory": "8Gi"}},
        "securityContext": dict(RESTRICTED),
        "volumeMounts": [{"name": "config", "mountPath": "/config", "readOnly": True}],
    }
    return {
        "metadata": {"labels": component_labels(spec, SCHEDULER_COMPONENT),
                     "annotations": config_checksum(scheduler_config(spec))},
        "spec": {
            "serviceAccountName": n["scheduler"],
            "automountServiceAccountToken": True,
            "affinity": OFF_GPU_NODES,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 130,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [container],
            "volumes": [{"name": "config", "configMap": {"name": n["scheduler"]}}],
        },
    }


# --- the proxy (both modes) --------------------------------------------------------------------


def envoy_config(spec: ServiceSpec) -> str:
    """Envoy: one HTTP listener; llm-d mode asks the scheduler (ext_proc) and forwards to the
    address it sets in ``x-gateway-destination-endpoint``; round-robin mode balances over the
    decode units' rank 0, resolved through a headless Service."""
    n = names(spec)
    llm_d = spec.router_mode == "llm-d"
    long = "86400s"
    http_filters: list[dict[str, Any]] = []
    clusters: list[dict[str, Any]] = []
    if llm_d:
        http_filters.append({
            "name": "envoy.filters.http.ext_proc",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
                "grpc_service": {"envoy_grpc": {"cluster_name": "scheduler"}, "timeout": "10s"},
                "processing_mode": {
                    "request_header_mode": "SEND", "response_header_mode": "SEND",
                    "request_body_mode": "FULL_DUPLEX_STREAMED", "response_body_mode": "FULL_DUPLEX_STREAMED",
                    "request_trailer_mode": "SEND", "response_trailer_mode": "SEND",
                },
                "message_timeout": "1000s",
            },
        })
        clusters += [
            {
                "name": "backends",
                "type": "ORIGINAL_DST",
                "lb_policy": "CLUSTER_PROVIDED",
                "connect_timeout": "10s",
                "circuit_breakers": circuit_breakers(spec),
                "original_dst_lb_config": {"use_http_header": True, "http_header_name": "x-gateway-destination-endpoint"},
            },
            {
                "name": "scheduler",
                "type": "STRICT_DNS",
                "lb_policy": "ROUND_ROBIN",
                "connect_timeout": "5s",
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": {"http2_protocol_options": {}},
                    },
                },
                "load_assignment": _dns_endpoint("scheduler", f"{n['scheduler']}.{spec.namespace}.svc.cluster.local", EPP_GRPC_PORT),
            },
        ]
    else:
        clusters.append({
            "name": "backends",
            "type": "STRICT_DNS",
            "lb_policy": "ROUND_ROBIN",
            "connect_timeout": "10s",
            "circuit_breakers": circuit_breakers(spec),
            # Re-resolved every 5 s, Envoy's default: Cluster.dns_refresh_rate is deprecated since 1.33.
            "load_assignment": _dns_endpoint("backends", f"{n['backends']}.{spec.namespace}.svc.cluster.local", vllm.SERVE_PORT),
        })
    http_filters.append({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router", "suppress_envoy_headers": True},
    })
    config = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 19000}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "ready",
                    "address": {"socket_address": {"address": "0.0.0.0", "port_value": PROXY_READY_PORT}},
                    "filter_chains": [{"filters": [_hcm("ready", [
                        {"name": "envoy.filters.http.health_check", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck",
                            "pass_through_mode": False,
                            "headers": [{"name": ":path", "string_match": {"exact": "/ready"}}],
                        }},
                        {"name": "envoy.filters.http.router", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
                    ], {"virtual_hosts": [{"name": "ready", "domains": ["*"], "routes": []}]})]}],
                },
                {
                    "name": "http",
                    "address": {"socket_address": {"address": "0.0.0.0", "port_value": PROXY_PORT}},
                    "per_connection_buffer_limit_bytes": 32768,
                    "filter_chains": [{"filters": [_hcm("http", http_filters, {"virtual_hosts": [{
                        "name": "models", "domains": ["*"],
                        # Generations stream for minutes: no route timeout, a long idle timeout.
                        "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "backends", "timeout": "0s", "idle_timeout": long}}],
                    }]})]}],
                },
            ],
            "clusters": clusters,
        },
    }
    return config_yaml(config)


BREAKER_HEADROOM = 2
"""Envoy lets through twice what a decode unit runs at once: vLLM queues as much again; beyond that
a saturated unit answers 503 at once instead of piling requests up."""


def unit_concurrency(spec: ServiceSpec) -> int:
    """Sequences one decode unit runs at once (every request the router forwards ends at a decode
    unit; in llm-d mode its sidecar calls prefill itself): ``max_num_seqs`` per DP rank (vLLM's
    default for the GPU when unset) x DP ranks. Pure."""
    return sizing.workload_of(spec, spec.decode).seqs(spec.gpu.info) * spec.decode.data_parallel_size


def circuit_breakers(spec: ServiceSpec) -> dict[str, Any]:
    """The backends cluster's limits. Envoy's defaults (1,024 connections, pending and active
    requests per cluster) would turn a wide-EP service away long before its units are full. The
    limit is per unit (a host of the cluster: one rank 0), and the cluster-wide one is that times
    the most units a pool may have, so it never binds first and an autoscaling bound stays a change
    to the autoscaler alone (a new Envoy config would roll the router and cut streams). Pure."""
    per_unit = BREAKER_HEADROOM * unit_concurrency(spec)
    total = per_unit * MAX_UNITS
    return {
        "thresholds": [{"priority": "DEFAULT", "max_connections": total, "max_pending_requests": total,
                        "max_requests": total, "max_retries": 3, "track_remaining": True}],
        "per_host_thresholds": [{"priority": "DEFAULT", "max_connections": per_unit}],
    }


def _dns_endpoint(cluster: str, host: str, port: int) -> dict[str, Any]:
    return {"cluster_name": cluster, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}]}]}


def _hcm(prefix: str, filters: list[dict[str, Any]], routes: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": prefix,
            "normalize_path": True,
            "merge_slashes": True,
            "common_http_protocol_options": {"headers_with_underscores_action": "REJECT_REQUEST"},
            "route_config": routes,
            "http_filters": filters,
        },
    }


def proxy_pod(spec: ServiceSpec) -> dict[str, Any]:
    n = names(spec)
    container = {
        "name": "envoy",
        "image": spec.router.envoy_image,
        "imagePullPolicy": IMAGE_PULL_POLICY,
        "command": ["envoy"],
        "args": ["--service-node", n["router"], "--log-level", "warn", "--drain-strategy", "immediate",
                 "--drain-time-s", "60", "-c", "/etc/envoy/envoy.yaml"],
        "ports": [
            {"name": "http", "containerPort": PROXY_PORT, "protocol": "TCP"},
            {"name": "ready", "containerPort": PROXY_READY_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": PROXY_READY_PORT}, "periodSeconds": 5, "timeoutSeconds": 1},
        "livenessProbe": {"httpGet": {"path": "/ready", "port": PROXY_READY_PORT}, "periodSeconds": 10, "failureThreshold": 6},
        "resources": {"requests": {"cpu": "1", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}},
        "securityContext": dict(RESTRICTED),
        "volumeMounts": [{"name": "config", "mountPath": "/etc/envoy", "readOnly": True}],
    }
    return {
        "metadata": {"labels": component_labels(spec, ROUTER_COMPONENT), "annotations": config_checksum(envoy_config(spec))},
        "spec": {
            "automountServiceAccountToken": False,
            "affinity": OFF_GPU_NODES,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 90,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [container],
            "volumes": [{"name": "config", "configMap": {"name": n["router"]}}],
        },
    }


def proxy_autoscaler_spec(spec: ServiceSpec) -> dict[str, Any]:
    r = spec.router
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": names(spec)["router"]},
        "minReplicas": r.min_replicas,
        "maxReplicas": r.max_replicas,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": r.target_cpu_utilization}}}],
    }


class Router(pulumi.ComponentResource):
    """The service's endpoint: an Envoy proxy Deployment (CPU-autoscaled, disruption budget
    ``minAvailable: 1``) behind a Service ``<service>-router``; in ``llm-d`` mode also the llm-d
    scheduler (Deployment, ServiceAccount, Role, config) and an ``InferencePool`` over rank 0 of
    every unit; in ``round-robin`` mode a headless Service over the decode units' rank 0.

    Example::

        router = Router("r1-router", spec)
        pulumi.export("endpoint", router.endpoint)
    """

    endpoint: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        spec: ServiceSpec | Mapping[str, Any],
        opts: Optional[pulumi.ResourceOptions] = None,
    ) -> None:
        super().__init__("moe-ep:index:Router", resource_name, None, opts)
        spec = ServiceSpec.model_validate(spec)
        n, ns = names(spec), spec.namespace
        child = pulumi.ResourceOptions(parent=self)

        def meta(name: str, component: str) -> dict[str, Any]:
            return {"name": name, "namespace": ns, "labels": component_labels(spec, component)}

        def register(name: str, component: str, api_version: str, kind: str, opts: pulumi.ResourceOptions = child,
                     annotations: Mapping[str, str] | None = None, **fields: Any) -> KubernetesObject:
            metadata = meta(name, component) | ({"annotations": dict(annotations)} if annotations else {})
            return KubernetesObject(name, {"apiVersion": api_version, "kind": kind, "metadata": metadata, **fields}, opts)

        if spec.router_mode == "llm-d":
            scheduler = n["scheduler"]
            register(scheduler, SCHEDULER_COMPONENT, "v1", "ServiceAccount", automountServiceAccountToken=False)
            register(scheduler, SCHEDULER_COMPONENT, RBAC_API_VERSION, "Role", rules=scheduler_rules())
            register(scheduler, SCHEDULER_COMPONENT, RBAC_API_VERSION, "RoleBinding",
                     roleRef={"apiGroup": RBAC_GROUP, "kind": "Role", "name": scheduler},
                     subjects=[{"kind": "ServiceAccount", "name": scheduler, "namespace": ns}])
            register(scheduler, SCHEDULER_COMPONENT, "v1", "ConfigMap", data={"scheduler.yaml": scheduler_config(spec)})
            register(
                scheduler, SCHEDULER_COMPONENT, "apps/v1", "Deployment", annotations=skip_annotations("image", "scheduler"),
                # One replica: the prefix-cache index lives in its memory; Recreate avoids two.
                spec={"replicas": 1, "strategy": {"type": "Recreate"}, "selector": {"matchLabels": selector(spec, SCHEDULER_COMPONENT)},
                      "template": scheduler_pod(spec)},
            )
            register(scheduler, SCHEDULER_COMPONENT, "v1", "Service", annotations=SERVICE_ANNOTATIONS, spec={"type": "ClusterIP", "selector": selector(spec, SCHEDULER_COMPONENT), "ports": [
                {"name": "grpc", "port": EPP_GRPC_PORT, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "kubernetes.io/h2c"},
                {"name": "metrics", "port": EPP_METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"},
            ]})
            register(n["pool"], "inference-pool", INFERENCE_POOL_API, "InferencePool", spec=inference_pool_spec(spec))
        else:
            register(n["backends"], ROUTER_COMPONENT, "v1", "Service", spec={
                "clusterIP": "None", "selector": {**serving_selector(spec), "app.kubernetes.io/component": "decode"},
                "ports": [{"name": "http", "port": vllm.SERVE_PORT, "targetPort": "http", "protocol": "TCP"}],
            })
        router = n["router"]
        register(router, ROUTER_COMPONENT, "v1", "ConfigMap", data={"envoy.yaml": envoy_config(spec)})
        register(
            router, ROUTER_COMPONENT, "apps/v1", "Deployment", annotations=skip_annotations("image"),
            spec={"replicas": spec.router.min_replicas, "selector": {"matchLabels": selector(spec, ROUTER_COMPONENT)},
                  "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                  "template": proxy_pod(spec)},
            # The HPA owns replicas once it exists.
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(ignore_changes=["spec.replicas"])),
        )
        self.service = register(router, ROUTER_COMPONENT, "v1", "Service", annotations=SERVICE_ANNOTATIONS, spec={
            "type": spec.router.service_type, "selector": selector(spec, ROUTER_COMPONENT),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        })
        register(router, ROUTER_COMPONENT, HPA_API_VERSION, "HorizontalPodAutoscaler", spec=proxy_autoscaler_spec(spec))
        register(router, ROUTER_COMPONENT, PDB_API_VERSION, "PodDisruptionBudget",
                 spec=pdb_spec(selector(spec, ROUTER_COMPONENT), min_available=1))
        self.endpoint = pulumi.Output.from_input(endpoint(spec))
        self.register_outputs({"endpoint": self.endpoint, "name": n["router"]})
