"""The baseline Pulumi program: the fleet's registrations replayed with the bare SDK.

Every resource the fleet registered is registered again through a bare ``pulumi.CustomResource`` or
``pulumi.ComponentResource`` subclass with the same type, name, parent, inputs and options; no moe-ep code
and no provider SDK run. The registrations are handed over in memory by
:func:`benchmarks.replay.hand_over`, so this program's time is registration only.
"""

from benchmarks import replay

replay.register(replay.take())
