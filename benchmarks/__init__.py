"""moe-ep's benchmarks (``make bench``): figures, not pass/fail timings.

- ``preview``: wall time of planning each stack (in-process and through the ``moe-ep`` command).
- ``fleet``: N prod-like services in one program against the bare Pulumi SDK registering the
  same resources under the same mocks.
- ``blast_radius``: how many vLLM pod templates (and objects) typical day-2 changes to the prod
  stack touch.

``python -m benchmarks`` prints a table per benchmark and writes them all to ``out/bench.json``.
"""
