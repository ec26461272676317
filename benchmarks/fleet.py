"""The fleet benchmark: N prod-like services in one program, against two baselines.

Each size runs in a fresh interpreter (``python -m benchmarks fleet-child N``) so its peak RSS is
its own. In that interpreter every program first runs once at N=1 (imports and first-use caches
are paid there, not in the figures), then in turn ``runs`` times each, all through
``moe_ep.engine.run_program``:

- the fleet program (``fleet_program.py``, moe-ep's components);
- core: ``bare_program.py``, the same registrations through bare ``pulumi.CustomResource``/
  ``ComponentResource`` subclasses. moe-ep / core is the issue's metric (target <= 1.25); it
  includes pulumi-kubernetes' own per-object cost (aliases, an output per declared property,
  option merging), which moe-ep pays by using the provider SDK at all;
- typed: ``typed_program.py``, the same registrations through the provider SDK classes moe-ep uses.
  moe-ep / typed is the overhead of moe-ep's components and logic over writing the same objects
  by hand with pulumi-kubernetes.

Ratios are of medians. Both replays are checked to register exactly what the fleet did.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from moe_ep import engine

from . import replay

HERE = Path(__file__).resolve().parent
FLEET_PROGRAM = HERE / "fleet_program.py"
BARE_PROGRAM = HERE / "bare_program.py"
TYPED_PROGRAM = HERE / "typed_program.py"
STACK = "fleet"


def fleet_config(service: dict[str, Any], services: int) -> dict[str, Any]:
    # fleet_program.py reads the size as `fleet:services`.
    return {"moe-ep:service": service, "fleet:services": str(services)}


def run_fleet(service: dict[str, Any], services: int) -> engine.Run:
    return engine.run_program(FLEET_PROGRAM, fleet_config(service, services), STACK)


def run_bare(resources: list[engine.Registration]) -> engine.Run:
    replay.hand_over(resources)
    return engine.run_program(BARE_PROGRAM, {}, STACK)


def run_typed(resources: list[engine.Registration]) -> engine.Run:
    replay.hand_over(resources)
    return engine.run_program(TYPED_PROGRAM, {}, STACK)


def _check_replay(which: str, replayed: engine.Run, fleet: engine.Run) -> None:
    if sorted(replay.identity(replayed.resources), key=repr) != sorted(replay.identity(fleet.resources), key=repr):
        raise AssertionError(f"the {which} replay registered something other than the fleet did")


def _timed(action) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure(service: dict[str, Any], services: int, runs: int) -> dict[str, Any]:
    """One size, in this interpreter: warm-up at N=1, then ``runs`` rounds of fleet, core replay,
    typed replay. Each replay is checked against the fleet (same URNs, types, parents, inputs,
    options), so the baselines register exactly what moe-ep did."""
    warm = run_fleet(service, 1)
    run_bare(warm.resources)
    run_typed(warm.resources)
    rss_before = _peak_rss_mb()
    fleet_times, core_times, typed_times = [], [], []
    fleet = None
    for _ in range(runs):
        seconds, fleet = _timed(lambda: run_fleet(service, services))
        fleet_times.append(seconds)
        rss_fleet = _peak_rss_mb()  # the fleet's peak: read before any replay of this size
        seconds, core = _timed(lambda: run_bare(fleet.resources))
        core_times.append(seconds)
        _check_replay("core", core, fleet)
        seconds, typed = _timed(lambda: run_typed(fleet.resources))
        typed_times.append(seconds)
        _check_replay("typed", typed, fleet)
    assert fleet is not None
    fleet_s, core_s, typed_s = (statistics.median(t) for t in (fleet_times, core_times, typed_times))
    return {
        "services": services,
        "resources": len(fleet.resources),
        "kubernetes_objects": sum(1 for r in fleet.resources if r.custom and r.type.startswith("kubernetes:")),
        "runs": runs,
        "moe_ep_seconds": round(fleet_s, 4),
        "core_seconds": round(core_s, 4),
        "typed_seconds": round(typed_s, 4),
        "core_ratio": round(fleet_s / core_s, 3),
        "typed_ratio": round(fleet_s / typed_s, 3),
        "moe_ep_ms_per_service": round(1000 * fleet_s / services, 2),
        "core_ms_per_service": round(1000 * core_s / services, 2),
        "typed_ms_per_service": round(1000 * typed_s / services, 2),
        "moe_ep_seconds_all": [round(t, 4) for t in fleet_times],
        "core_seconds_all": [round(t, 4) for t in core_times],
        "typed_seconds_all": [round(t, 4) for t in typed_times],
        "peak_rss_mb": round(rss_fleet, 1),
        "rss_after_warmup_mb": round(rss_before, 1),
    }


def measure_in_child(stack_file: Path, services: int, runs: int) -> dict[str, Any]:
    """``measure`` in a fresh interpreter (its own peak RSS); the child prints one JSON line."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "fleet-child", str(stack_file), str(services), str(runs)],
        cwd=HERE.parent, capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"fleet of {services} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def scaling(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Linear when the per-service time stays flat: the largest size's per-service time over the
    smallest multi-service size's (1.0 = perfectly linear)."""
    multi = [r for r in rows if r["services"] > 1] or rows
    first, last = multi[0], multi[-1]
    return {
        "moe_ep_per_service_growth": round(last["moe_ep_ms_per_service"] / first["moe_ep_ms_per_service"], 3),
        "core_per_service_growth": round(last["core_ms_per_service"] / first["core_ms_per_service"], 3),
        "typed_per_service_growth": round(last["typed_ms_per_service"] / first["typed_ms_per_service"], 3),
        "from_services": first["services"],
        "to_services": last["services"],
    }
