"""MoEEPService: one MoE model served by decode and (optionally) prefill pools."""

from __future__ import annotations

from typing import Any, Mapping, Optional

import pulumi

from .pools import DecodePool, PrefillPool
from .spec import ServiceSpec


class MoEEPService(pulumi.ComponentResource):
    """Everything that serves one model: its pools of vLLM units, and (as they land) its router,
    autoscalers, disruption budgets, node pools and monitoring.

    Creates a PrefillPool when the spec has a ``prefill`` section and always a DecodePool.

    Example::

        import pulumi
        from components import MoEEPService, ServiceSpec

        spec = ServiceSpec.model_validate(pulumi.Config("moe-ep").require_object("service"))
        svc = MoEEPService(spec.name, spec)
        pulumi.export("decode", svc.decode.name)
    """

    prefill: PrefillPool | None
    decode: DecodePool

    def __init__(
        self,
        resource_name: str,
        spec: ServiceSpec | Mapping[str, Any],
        opts: Optional[pulumi.ResourceOptions] = None,
    ) -> None:
        super().__init__("moe-ep:index:MoEEPService", resource_name, None, opts)
        spec = ServiceSpec.model_validate(spec)
        self.spec = spec
        child = pulumi.ResourceOptions(parent=self)
        self.prefill = PrefillPool(f"{spec.name}-prefill", spec, opts=child) if spec.prefill else None
        self.decode = DecodePool(f"{spec.name}-decode", spec, opts=child)
        self.outputs = {
            "service": spec.name,
            "namespace": spec.namespace,
            "prefill": self.prefill.name if self.prefill else None,
            "decode": self.decode.name,
        }
        self.register_outputs(self.outputs)
