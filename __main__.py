"""The moe-ep program: the stack's `moe-ep:service` config becomes one MoEEPService."""

import pulumi

from components import MoEEPService, StackError, service_from_config

try:
    spec = service_from_config(
        pulumi.Config("moe-ep").require_object("service"), f"Pulumi.{pulumi.get_stack()}.yaml"
    )
except StackError as error:
    raise pulumi.RunError(str(error)) from None

service = MoEEPService(spec.name, spec)
for key, value in service.outputs.items():
    pulumi.export(key, value)
