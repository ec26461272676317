"""The live cluster a stack was deployed to, for the commands that read it after ``pulumi up``.

The context is, in order: ``--context``, the stack file's ``kubernetes:context`` (the one
``pulumi up`` used), the kubeconfig's current context. Every failure to reach the cluster is a
``ClusterError`` that names the kubeconfig, the context and the server (exit 2), never a trace.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import urllib3
from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

PROBE_TIMEOUT_S = 5


class ClusterError(Exception):
    """The kubeconfig does not name a usable cluster, or the cluster does not answer."""


@dataclass(frozen=True)
class Cluster:
    api: client.ApiClient
    kubeconfig: str
    context: str

    @property
    def server(self) -> str:
        return self.api.configuration.host

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def autoscaling(self) -> client.AutoscalingV2Api:
        return client.AutoscalingV2Api(self.api)

    @property
    def discovery(self) -> client.DiscoveryV1Api:
        return client.DiscoveryV1Api(self.api)

    def as_dict(self, obj: object) -> dict:
        """A typed client object as the API writes it (camelCase keys, no unset fields)."""
        return self.api.sanitize_for_serialization(obj)

    def unreachable(self, error: BaseException) -> ClusterError:
        return ClusterError(f"cannot reach the cluster at {self.server} (context {self.context} in {self.kubeconfig}): "
                            f"{_reason(error)}")


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib3.exceptions.MaxRetryError) and error.reason is not None:
        error = error.reason
    if isinstance(error, client.ApiException):
        return f"HTTP {error.status} {error.reason}".strip()
    return str(error) or type(error).__name__


def kubeconfig_path(flag: str | None) -> str:
    """``--kubeconfig``, else ``$KUBECONFIG`` (the first file of a list, as kubectl writes to), else
    ``~/.kube/config``."""
    if flag:
        return flag
    listed = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    return listed[0] if listed else str(Path("~/.kube/config").expanduser())


def connect(kubeconfig: str | None, context: str | None, stack_context: str | None = None) -> Cluster:
    """A client for ``context`` (else the stack's, else the current one), checked to answer."""
    path = kubeconfig_path(kubeconfig)
    if not Path(path).is_file():
        raise ClusterError(f"kubeconfig {path}: no such file (give --kubeconfig or set KUBECONFIG)")
    try:
        contexts, current = config.list_kube_config_contexts(config_file=path)
    except (ConfigException, OSError, ValueError) as error:
        raise ClusterError(f"kubeconfig {path}: {error}") from None
    names = sorted(c["name"] for c in contexts or [])
    chosen = context or stack_context or (current or {}).get("name")
    if chosen not in names:
        origin = "--context" if context else "the stack's kubernetes:context" if stack_context else "current-context"
        raise ClusterError(f"kubeconfig {path}: {origin} {chosen!r} is not one of its contexts: {', '.join(names) or '(none)'}")
    try:
        api = config.new_client_from_config(config_file=path, context=chosen, persist_config=False)
    except (ConfigException, OSError, ValueError) as error:
        raise ClusterError(f"kubeconfig {path}, context {chosen}: {error}") from None
    api.configuration.retries = 1
    cluster = Cluster(api=api, kubeconfig=path, context=chosen)
    try:
        client.VersionApi(api).get_code(_request_timeout=PROBE_TIMEOUT_S)
    except (urllib3.exceptions.HTTPError, client.ApiException, OSError) as error:
        raise cluster.unreachable(error) from None
    return cluster
