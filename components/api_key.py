"""ApiKey: a generated key in a Kubernetes Secret, handed to every vLLM container as VLLM_API_KEY.

The key exists only in Pulumi's state (encrypted as a secret), the Secret, and the stack's secret
output; pods read it by reference, never as a literal.

The key is a Pulumi dynamic resource (``GeneratedKey``), not pulumi-random's ``RandomPassword``:
the Go module proxy serves no build of pulumi-random's provider, so the CLI could not load it. A
dynamic provider still has Pulumi draw the key once, keep it encrypted in the state, and draw a
new one only when ``length`` or a ``keepers`` value changes. The CLI runs it in ``python -m
pulumi.dynamic``, which unpickles the provider by reference to this module (installed with the
package), so the provider is a top-level class holding no state.
"""

from __future__ import annotations

import secrets
import string
from typing import Any, Optional

import pulumi
from pulumi import dynamic
from pulumi.dynamic.dynamic import PROVIDER_KEY

from .kubernetes_object import KubernetesObject

SECRET_KEY = "api-key"
ENV_NAME = "VLLM_API_KEY"
KEY_TYPE = "pulumi-python:dynamic/moe-ep:GeneratedKey"
"""The type ``GeneratedKey`` registers (the SDK's ``pulumi-python:dynamic`` plus its module and name)."""
ALPHABET = string.ascii_letters + string.digits


def secret_name(service: str) -> str:
    return f"{service}-api-key"


def api_key_env(service: str) -> dict:
    """The env entry that gives a container the key by reference. Pure."""
    return {"name": ENV_NAME, "valueFrom": {"secretKeyRef": {"name": secret_name(service), "key": SECRET_KEY}}}


class _KeyProvider(dynamic.ResourceProvider):
    """Draws the key on create and never again: changing ``length`` or ``keepers`` replaces the
    resource; any other change (the serialized provider itself) is an update that keeps the key;
    a refresh reads the state back (the default ``read``)."""

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        key = "".join(secrets.choice(ALPHABET) for _ in range(int(props["length"])))
        return dynamic.CreateResult(secrets.token_hex(8), {**_inputs(props), "result": key})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        old, new = _inputs(olds), _inputs(news)
        replaces = [p for p in old if old[p] != new[p]]
        return dynamic.DiffResult(changes=bool(replaces) or olds.get(PROVIDER_KEY) != news.get(PROVIDER_KEY), replaces=replaces)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult({**_inputs(news), "result": olds["result"]})


def _inputs(props: dict[str, Any]) -> dict[str, Any]:
    """The inputs that pick the key; no keepers and empty keepers are the same."""
    return {"length": props.get("length"), "keepers": props.get("keepers") or None}


class GeneratedKey(dynamic.Resource, module="moe-ep", name="GeneratedKey"):
    """A key of ``length`` letters and digits, drawn once with ``secrets``; changing ``length`` or
    a ``keepers`` value replaces it. ``result`` is secret in the state."""

    result: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        length: pulumi.Input[int],
        keepers: Optional[pulumi.Input[dict[str, str]]] = None,
        opts: Optional[pulumi.ResourceOptions] = None,
    ) -> None:
        super().__init__(
            _KeyProvider(), resource_name, {"length": length, "keepers": keepers, "result": None},
            pulumi.ResourceOptions.merge(pulumi.ResourceOptions(additional_secret_outputs=["result"]), opts),
        )


class ApiKey(pulumi.ComponentResource):
    """A generated API key and the Secret that holds it.

    Creates a ``GeneratedKey`` (letters and digits; change a ``keepers`` value to rotate) and a
    Secret ``<service>-api-key`` with the key under ``api-key``. ``value`` is a Pulumi secret.

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
        key = GeneratedKey(
            resource_name, length=length, keepers=dict(sorted((keepers or {}).items())) or None,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.value = pulumi.Output.secret(key.result)
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
