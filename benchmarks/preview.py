"""Preview wall time per stack: ``moe_ep.plan.build`` in-process (validation, the program under
mocks, manifests, the policy pack), and the ``moe-ep preview`` command as a subprocess (adds
interpreter start-up and imports)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from moe_ep import plan as planning

TARGET_SECONDS = 1.5
"""The issue's target for the prod stack's preview."""


def command() -> Path:
    """The ``moe-ep`` console script of the interpreter running the benchmarks."""
    return Path(sys.executable).parent / "moe-ep"


def measure(root: Path, stack: str, runs: int, command_runs: int) -> dict[str, Any]:
    source = planning.stack_file(root, stack)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        plan = planning.build(source, root, stack)
        times.append(time.perf_counter() - start)
    row: dict[str, Any] = {
        "stack": stack,
        "resources": len(plan.run.resources),
        "runs": runs,
        # The first build of a process also imports the SDKs and fills first-use caches.
        "first_seconds": round(times[0], 4),
        "median_seconds": round(statistics.median(times[1:] or times), 4),
    }
    if command_runs:
        wall = []
        for _ in range(command_runs):
            start = time.perf_counter()
            done = subprocess.run([str(command()), "preview", "--stack", stack], cwd=root, capture_output=True, text=True)
            if done.returncode not in (0, 1):  # 1: a mandatory policy fired, still a full preview
                raise RuntimeError(f"moe-ep preview --stack {stack} exited {done.returncode}:\n{done.stderr[-4000:]}")
            wall.append(time.perf_counter() - start)
        row["command_runs"] = command_runs
        row["command_median_seconds"] = round(statistics.median(wall), 4)
    return row
