"""The typed baseline Pulumi program: the fleet's registrations written by hand with the provider SDKs.

Every custom resource the fleet registered is registered again through the provider SDK's generated
class for its type (``pulumi_kubernetes.apps.v1.Deployment``, ``pulumi_kubernetes.apiextensions.CustomResource``
for CRD-backed kinds; for the API key, the dynamic resource moe-ep registers too,
``components.api_key.GeneratedKey``) with the same name, parent, inputs and options; components as in
``bare_program.py``. Time over ``bare_program.py``'s is the generated classes' cost; moe-ep registers
most objects through ``KubernetesObject`` instead.
"""

from benchmarks import replay

replay.register(replay.take(), replay.typed_custom)
