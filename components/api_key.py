"""ApiKey: a generated key in a Kubernetes Secret, handed to every vLLM container as VLLM_API_KEY.

The key exists only in pulumi-random's state (encrypted as a secret), the Secret, and the
stack's secret output; pods read it by reference, never as a literal.
"""

from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_random as random

from .kubernetes_object import KubernetesObject

SECRET_KEY = "api-key"
ENV_NAME = "VLLM_API_KEY"


def secret_name(service: str) -> str:
    return f"{service}-api-key"


def api_key_env(service: str) -> dict:
    """The env entry that gives a container the key by reference. Pure."""
    return {"name": ENV_NAME, "valueFrom": {"secretKeyRef": {"name": secret_name(service), "key": SECRET_KEY}}}


class ApiKey(pulumi.ComponentResource):
    """A random API key and the Secret that holds it.

    Creates a ``random.RandomPassword`` (letters and digits; change a ``keepers`` value to rotate)
    and a Secret ``<service>-api-key`` with the key under ``api-key``. ``value`` is a Pulumi secret.

    Example::

        key = ApiKey("r1-api-key", service="r1", namespace="llm", labels={})
        pulumi.export("api_key", key.value)
    """

    value: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        service: str,
        namespace: str,
        labels: dict[str, str],
        length: int = 48,
        keepers: Optional[dict[str, str]] = None,
        opts: Optional[pulumi.ResourceOptions] = None,
    ) -> None:
        super().__init__("moe-ep:index:ApiKey", resource_name, None, opts)
        password = random.RandomPassword(
            resource_name,
            length=length,
            special=False,
            keepers=dict(sorted((keepers or {}).items())) or None,
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["result"]),
        )
        self.value = pulumi.Output.secret(password.result)
        self.secret = KubernetesObject(
            resource_name,
            {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": {"name": secret_name(service), "namespace": namespace, "labels": labels},
             "stringData": {SECRET_KEY: self.value}},
            # As pulumi-kubernetes' Secret class does: the key stays encrypted in the state under
            # both spellings, including the base64 `data` the provider returns.
            pulumi.ResourceOptions(parent=self, additional_secret_outputs=["data", "stringData"]),
        )
        self.register_outputs({"secret": secret_name(service)})
