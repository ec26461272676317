"""The fleet benchmark: N prod-like services in one program, against two baselines.

Each size runs in a fresh interpreter (``python -m benchmarks fleet-child N``) so its peak RSS is
its own. There the three programs run in rounds (see :func:`measure`), all through
``moe_ep.engine.run_program``:

- the fleet program (``fleet_program.py``, moe-ep's components);
- core: ``bare_program.py``, the same registrations through bare ``pulumi.CustomResource``/
  ``ComponentResource`` subclasses. moe-ep / core is the issue's metric (target <= 1.25): the
  cost of moe-ep's components, validation and pure builders, and of the typed classes it keeps
  (``components.kubernetes_object``);
- typed: ``typed_program.py``, the same registrations through the provider SDKs' generated
  classes (pulumi-kubernetes' typed class per kind): writing the same objects by hand the usual
  way. typed / core is those classes' own cost (typed outputs, option merges, alias handling).

Both replays are checked to register exactly what the fleet does.
"""

from __future__ import annotations

import gc
import json
import math
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


def run_bare(run: engine.Run) -> engine.Run:
    replay.hand_over(run)
    return engine.run_program(BARE_PROGRAM, {}, STACK)


def run_typed(run: engine.Run) -> engine.Run:
    replay.hand_over(run)
    return engine.run_program(TYPED_PROGRAM, {}, STACK)


def _timed(action) -> tuple[float, Any]:
    # Every run starts from a collected heap, so none pays for the garbage of the one before.
    gc.collect()
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


PROGRAMS = ("moe_ep", "core", "typed")
ORDERS = tuple(PROGRAMS[i:] + PROGRAMS[:i] for i in range(len(PROGRAMS)))
"""Round k runs the programs in ORDERS[k % 3], so none always runs first or after the same one."""


def rounds_for(services: int, runs: int) -> int:
    """Rounds for a fleet of ``services``: at least ``runs``, and about 100 services' worth for
    small fleets, whose runs are short enough for the machine's noise to swamp a single one."""
    return max(runs, -(-100 // services))


MEDIAN_CONFIDENCE = 0.95


def median_interval(values: list[float], confidence: float = MEDIAN_CONFIDENCE) -> tuple[float, float, float]:
    """A distribution-free confidence interval for the median of the population ``values`` were
    drawn from: the order statistics x(k) and x(n+1-k), k as large as keeps their coverage (the
    count of values below the median is Binomial(n, 1/2)) at least ``confidence``. Returns
    (low, high, coverage); with too few values for ``confidence`` (n < 6 at 95%) that is
    (min, max) and a coverage below it."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("no values")
    k, below = 1, 1 / 2**n  # below = P(Binomial(n, 1/2) < k)
    while k < n // 2 and 1 - 2 * (below + math.comb(n, k) / 2**n) >= confidence:
        below += math.comb(n, k) / 2**n
        k += 1
    return ordered[k - 1], ordered[n - k], max(0.0, 1 - 2 * below)


def measure(service: dict[str, Any], services: int, runs: int) -> dict[str, Any]:
    """One size, in this interpreter. Warm-up: each program once at N=1 (imports and first-use
    caches are paid there), then one untimed fleet run of this size whose registrations the replays
    register. Then ``runs`` rounds of the three programs in rotating order;
    every timed fleet run must register exactly the reference (determinism), and every replay is
    checked against it (same URNs, types, parents, inputs, options), so the baselines register
    exactly what moe-ep does.

    Ratios are the median of the per-round ratios: the runs of one round are seconds apart and
    share the machine's state, so a slow stretch of the machine slows all three alike. Each comes
    with :func:`median_interval`, which says how far this VM's noise leaves the median uncertain."""
    warm = run_fleet(service, 1)
    run_bare(warm)
    run_typed(warm)
    del warm
    rss_before = _peak_rss_mb()
    reference = run_fleet(service, services)
    rss_fleet = _peak_rss_mb()  # the fleet's peak, before any replay of this size
    expected = sorted(replay.identity(reference.resources), key=repr)
    programs = {
        "moe_ep": lambda: run_fleet(service, services),
        "core": lambda: run_bare(reference),
        "typed": lambda: run_typed(reference),
    }
    times: dict[str, list[float]] = {name: [] for name in PROGRAMS}
    for round_ in range(runs):
        for name in ORDERS[round_ % len(ORDERS)]:
            seconds, run = _timed(programs[name])
            times[name].append(seconds)
            if sorted(replay.identity(run.resources), key=repr) != expected:
                raise AssertionError(f"{name} registered something other than the reference fleet run did")
            del run
    median = {name: statistics.median(t) for name, t in times.items()}
    paired = {base: [m / b for m, b in zip(times["moe_ep"], times[base])] for base in ("core", "typed")}
    provider_sdk = [t / c for t, c in zip(times["typed"], times["core"])]
    kubernetes_objects = sum(1 for r in reference.resources if r.custom and r.type.startswith("kubernetes:"))
    return {
        "services": services,
        "resources": len(reference.resources),
        "kubernetes_objects": kubernetes_objects,
        "runs": len(times["moe_ep"]),
        "moe_ep_seconds": round(median["moe_ep"], 4),
        "core_seconds": round(median["core"], 4),
        "typed_seconds": round(median["typed"], 4),
        "core_ratio": round(statistics.median(paired["core"]), 3),
        "typed_ratio": round(statistics.median(paired["typed"]), 3),
        **{f"{base}_ratio_interval": [round(x, 3) for x in median_interval(paired[base])] for base in ("core", "typed")},
        # The generated classes' own cost over the bare SDK.
        "typed_over_core_ratio": round(statistics.median(provider_sdk), 3),
        "typed_over_core_ratio_interval": [round(x, 3) for x in median_interval(provider_sdk)],
        "moe_ep_ms_per_service": round(1000 * median["moe_ep"] / services, 2),
        "core_ms_per_service": round(1000 * median["core"] / services, 2),
        "typed_ms_per_service": round(1000 * median["typed"] / services, 2),
        "moe_ep_seconds_all": [round(t, 4) for t in times["moe_ep"]],
        "core_seconds_all": [round(t, 4) for t in times["core"]],
        "typed_seconds_all": [round(t, 4) for t in times["typed"]],
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
    smallest multi-service size's (1.0 = perfectly linear), and that growth over the bare SDK's
    (1.0 = moe-ep scales exactly as the SDK does under it)."""
    multi = [r for r in rows if r["services"] > 1] or rows
    first, last = multi[0], multi[-1]
    return {
        "moe_ep_per_service_growth": round(last["moe_ep_ms_per_service"] / first["moe_ep_ms_per_service"], 3),
        "core_per_service_growth": round(last["core_ms_per_service"] / first["core_ms_per_service"], 3),
        "typed_per_service_growth": round(last["typed_ms_per_service"] / first["typed_ms_per_service"], 3),
        "growth_over_core": round(
            (last["moe_ep_ms_per_service"] / first["moe_ep_ms_per_service"])
            / (last["core_ms_per_service"] / first["core_ms_per_service"]), 3),
        "from_services": first["services"],
        "to_services": last["services"],
    }
