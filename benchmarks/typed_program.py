"""The typed baseline Pulumi program: the fleet's registrations written by hand with the provider SDKs.

Every custom resource the fleet registered is registered again through the class moe-ep itself uses
for it (``pulumi_kubernetes.apps.v1.Deployment``, ``pulumi_kubernetes.apiextensions.CustomResource``
for CRD-backed kinds, ``pulumi_random.RandomPassword``) with the same name, parent, inputs and
options; components as in ``bare_program.py``. Time over ``bare_program.py``'s is the provider SDKs'
cost; moe-ep's time over this one's is its own components and logic.
"""

from benchmarks import replay

replay.register(replay.take(), replay.typed_custom)
