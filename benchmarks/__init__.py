"""moe-ep's benchmarks (``make bench``): figures, not pass/fail timings.

- ``preview``: wall time of planning each stack (in-process and through the ``moe-ep`` command).
- ``fleet``: N prod-like services in one program against two replays of the same registrations
  under the same mocks: the bare Pulumi SDK (core, the issue's metric) and the provider SDKs'
  generated classes (typed: the same objects written by hand the usual way).
- ``blast_radius``: how many vLLM pod templates (and objects) typical day-2 changes to the prod
  stack touch.
- ``blast_radius_live`` (``blast-radius-live``): the same changes applied with ``pulumi up`` on a
  local control plane of its own; the vLLM pods restarted, added and removed, beside the replay's
  prediction. A disagreement fails the run (exit 1).

``python -m benchmarks`` prints a table per benchmark and writes them all to ``out/bench.json``.
"""
