"""``python -m benchmarks`` (``make bench``): run the benchmarks, print their tables, write JSON.

Figures, not tests: the exit code is 0 whether or not a target is met (each table says), except
that the blast radius measured live must agree with the replay's: a disagreement is a defect of
one of them, printed as FAILED, and the exit code is 1.
``python -m benchmarks fleet-child STACK_FILE N RUNS`` is the fresh interpreter one fleet size
runs in (see ``benchmarks.fleet``); ``python -m benchmarks live-child NODES DIR INDEX`` is the one a
live size runs in (see ``benchmarks.live``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from components.spec import SERVICE_KEY, read_stack_config
from moe_ep import plan as planning

from . import blast_radius, blast_radius_live, fleet, live, preview

RATIO_TARGET = 1.25
LINEAR_TOLERANCE = 1.25
"""Per-service time at the largest size at most this times that at the smallest multi-service size."""


def _service(stack_file: Path) -> dict[str, Any]:
    return read_stack_config(stack_file)[SERVICE_KEY]


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [headers, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run_preview(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    stacks = sorted(planning.stack_name(p) for p in (root / "stacks").glob("Pulumi.*.yaml"))
    rows = [preview.measure(root, stack, args.runs, args.command_runs) for stack in stacks]
    prod = next((r for r in rows if r["stack"] == "prod"), None)
    print(f"\nPreview wall time (median of {args.runs} in-process builds after the first; "
          f"`moe-ep preview` subprocess: median of {args.command_runs})")
    print(_table(
        ["stack", "resources", "first build s", "median build s", "moe-ep preview s"],
        [[r["stack"], r["resources"], r["first_seconds"], r["median_seconds"], r.get("command_median_seconds", "-")] for r in rows],
    ))
    met = prod is not None and prod["median_seconds"] < preview.TARGET_SECONDS
    if prod is not None:
        print(f"target: prod preview < {preview.TARGET_SECONDS} s in-process: {'met' if met else 'MISSED'} "
              f"({prod['median_seconds']} s)")
    return {"rows": rows, "target_seconds": preview.TARGET_SECONDS, "target_met": met}


def run_fleet(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    stack_file = planning.stack_file(root, args.fleet_stack)
    rows = []
    for size in args.fleet_sizes:
        rows.append(fleet.measure_in_child(stack_file, size, fleet.rounds_for(size, args.fleet_runs)))
        print(f"  fleet of {size}: done", file=sys.stderr, flush=True)
    shape = fleet.scaling(rows)
    print(f"\nFleet of {args.fleet_stack}-like services in one program ({args.fleet_runs}+ rounds per size, more for small "
          "fleets; times are medians, ratios the median of each round's ratio with its distribution-free "
          f"{fleet.MEDIAN_CONFIDENCE:.0%} confidence interval)\n"
          "  core  = the same registrations through bare pulumi.CustomResource/ComponentResource subclasses;\n"
          "          moe-ep/core is the issue's metric\n"
          "  typed = the same registrations through the provider SDKs' generated classes (a typed\n"
          "          pulumi-kubernetes class per kind, moe-ep's GeneratedKey for the API key): writing the\n"
          "          objects by hand the usual way;\n"
          "          typed/core is those classes' own cost")

    def ratio(row: dict[str, Any], name: str) -> str:
        low, high, coverage = row[f"{name}_ratio_interval"]
        # Too few rounds for the confidence asked: the range of the rounds, and what it covers.
        short = f", {coverage:.0%}" if coverage < fleet.MEDIAN_CONFIDENCE else ""
        return f"{row[f'{name}_ratio']} ({low}-{high}{short})"

    print(_table(
        ["services", "resources", "rounds", "moe-ep s", "core s", "typed s", "moe-ep/core", "moe-ep/typed",
         "typed/core", "moe-ep ms/svc", "core ms/svc", "typed ms/svc", "peak RSS MB"],
        [[r["services"], r["resources"], r["runs"], r["moe_ep_seconds"], r["core_seconds"], r["typed_seconds"],
          ratio(r, "core"), ratio(r, "typed"), ratio(r, "typed_over_core"), r["moe_ep_ms_per_service"],
          r["core_ms_per_service"], r["typed_ms_per_service"], r["peak_rss_mb"]] for r in rows],
    ))
    worst_core = max(r["core_ratio"] for r in rows)
    worst_typed = max(r["typed_ratio"] for r in rows)
    linear = shape["moe_ep_per_service_growth"] <= LINEAR_TOLERANCE

    def verdict(base: str, worst: float) -> str:
        # The median decides; the highest interval bound says how close the noise comes to the target.
        upper = max(r[f"{base}_ratio_interval"][1] for r in rows)
        return (f"moe-ep/{base} <= {RATIO_TARGET}: {'met' if worst <= RATIO_TARGET else 'MISSED'} "
                f"(worst median {worst}, highest interval bound {upper})")

    print(f"target: {verdict('core', worst_core)}; {verdict('typed', worst_typed)}")
    print(f"linear: per-service time x{shape['moe_ep_per_service_growth']} from {shape['from_services']} to "
          f"{shape['to_services']} services (core x{shape['core_per_service_growth']}, typed "
          f"x{shape['typed_per_service_growth']}): {'met' if linear else 'MISSED'}; relative to the bare SDK's own "
          f"growth x{shape['growth_over_core']}")
    load = os.getloadavg()
    print(f"load average after the fleet runs: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1/5/15 min)")
    return {"rows": rows, "scaling": shape, "ratio_target": RATIO_TARGET,
            "core_ratio_target_met": worst_core <= RATIO_TARGET, "typed_ratio_target_met": worst_typed <= RATIO_TARGET,
            "ratios": {
                "core": "moe-ep time / the same registrations through bare pulumi.CustomResource/ComponentResource "
                        "subclasses (the issue's metric)",
                "typed": "moe-ep time / the same registrations through the provider SDKs' generated classes "
                         "(hand-written pulumi-kubernetes)",
            },
            "linear_tolerance": LINEAR_TOLERANCE, "linear": linear, "load_average": [round(x, 2) for x in load]}


def run_blast_radius(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    rows = blast_radius.measure(root / planning.PROGRAM, _service(planning.stack_file(root, args.blast_stack)), args.blast_stack)
    print(f"\nUpdate blast radius of day-2 changes to the {args.blast_stack} stack")
    print(_table(
        ["change", "vLLM pod templates", "vLLM pods restarted", "objects", "which objects"],
        [[r["change"], r["pod_templates_changed"], r["pods_restarted"], r["objects_changed"], ", ".join(r["objects"])]
         for r in rows],
    ))
    # A LeaderWorkerSet also rolls its groups on a change outside the pod templates (its revision:
    # the whole leaderWorkerTemplate and networkConfig): pods restarted counts those too.
    offenders = [r["change"] for r in rows if not r["serving"] and (r["pod_templates_changed"] or r["pods_restarted"])]
    print(f"target: 0 pod templates and 0 pods restarted for every change not about serving: "
          f"{'met' if not offenders else 'MISSED: ' + '; '.join(offenders)}")
    return {"rows": rows, "target_met": not offenders}


def run_blast_radius_live(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    stack_file = planning.stack_file(root, args.blast_stack)
    with blast_radius_live.plane_at(args.blast_plane_dir, args.blast_port_offset):
        rows = blast_radius_live.measure(stack_file, chain=args.blast_chain)
    how = ("each on top of the one before" if args.blast_chain else
           "each on the base, which is restored after it (an autoscaler keeps the units it added: without metrics it "
           "does not scale in)")
    print(f"\nUpdate blast radius, live: day-2 changes to the {args.blast_stack} stack applied with pulumi up on a local "
          f"control plane ({args.blast_plane_dir.name}), {how};\nvLLM pods whose UID changed, added and removed "
          "(replayed / live)")
    shown = [r for r in rows if r["kind"] != "restore" or not r["agree"]]
    print(_table(
        ["change", "pods restarted", "added", "removed", "agree", "s"],
        [[r["change"], f"{r['replayed_pods_restarted']} / {r['live_pods_restarted']}", f"{r['replayed_added']} / {r['live_added']}",
          f"{r['replayed_removed']} / {r['live_removed']}", "yes" if r["agree"] else "NO", r["seconds"]] for r in shown],
    ))
    restores = [r for r in rows if r["kind"] == "restore"]
    if restores:
        print(f"restoring the base after each change: {sum(r['agree'] for r in restores)} of {len(restores)} agree")
    restarting = [r["change"] for r in rows if r["kind"] == "change" and not r["serving"] and r["live_pods_restarted"]]
    print(f"target: 0 vLLM pods restarted live by every change not about serving: "
          f"{'met' if not restarting else 'MISSED: ' + '; '.join(restarting)}")
    disagreeing = [r["change"] for r in rows if not r["agree"]]
    print(f"live and replay agree on every step: {'yes' if not disagreeing else 'FAILED: ' + '; '.join(disagreeing)}")
    return {"rows": rows, "chain": args.blast_chain, "target_met": not restarting, "failed": bool(disagreeing),
            "seconds": round(sum(r["seconds"] for r in rows), 1)}


LIVE_METRICS = (
    ("up_s", "pulumi up / kubectl apply"),
    ("bound_s", "every pod bound (from the start)"),
    ("preview_s", "no-change preview / kubectl diff"),
    ("day2_s", "day-2 change (router max_replicas)"),
    ("destroy_s", "destroy / kubectl delete"),
)


def _stop_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)  # so the plane is stopped by the finally below


def run_live(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        with tempfile.TemporaryDirectory(prefix="moe-ep-live-") as directory:
            for index, nodes in enumerate(args.live_nodes):
                rows.append(live.measure_in_child(nodes, Path(directory), args.live_plane_dir, args.live_port_offset, index))
                print(f"  live {nodes} nodes: done", file=sys.stderr, flush=True)
    finally:
        live.plane_down(args.live_plane_dir, args.live_port_offset)
        signal.signal(signal.SIGTERM, previous)
    print(f"\nLive on a local control plane ({args.live_plane_dir.name}, restarted per size with that fleet): a Kimi K2 "
          f"wide-EP stack (decode units of {live.DECODE_NODES} nodes DP 32, prefill units of {live.PREFILL_NODES} "
          "nodes TP 8 DP 2) filling the fleet\n"
          "  moe-ep  = pulumi up / preview / up / destroy (CLI 3.274.0, pulumi-kubernetes 4.25.0, file backend)\n"
          "  kubectl = its `moe-ep render` manifests: apply --server-side / diff --server-side / apply / delete\n"
          f"  no ckpt = moe-ep with {live.SKIP_CHECKPOINTS}=true: the state written once at the end, not after every step\n"
          "  one run per size, the three in rotating order; bound = every pod bound to a node, from the start")
    table = []
    for r in rows:
        for key, label in LIVE_METRICS:
            first = key == LIVE_METRICS[0][0]
            table.append([r["gpus"] if first else "", r["kubernetes_objects"] if first else "", r["pods"] if first else "",
                          label, r["moe_ep"][key], r["kubectl"][key], r["ratios"][key], r["moe_ep_no_checkpoints"][key]])
    print(_table(["GPUs", "objects", "pods", "step", "moe-ep s", "kubectl s", "moe-ep/kubectl", "no ckpt s"], table))
    first, last = rows[0], rows[-1]
    growth = {}
    for key, _ in LIVE_METRICS:
        growth[key] = {which: round(last[which][key] / first[which][key], 2)
                       for which in ("moe_ep", "kubectl", "moe_ep_no_checkpoints")}
    print(f"growth from {first['gpus']} to {last['gpus']} GPUs (x{last['gpus'] // first['gpus']}), moe-ep / kubectl / no ckpt: "
          + "; ".join(f"{key.removesuffix('_s')} x{g['moe_ep']} / x{g['kubectl']} / x{g['moe_ep_no_checkpoints']}"
                      for key, g in growth.items()))
    print("state after up (what the file backend rewrites after every step): "
          + ", ".join(f"{r['gpus']} GPUs {r['moe_ep']['state_kb']} KB" for r in rows))
    print(f"CPU seconds by process during each moe-ep step at {last['gpus']} GPUs (2 cores: wall time is at least half the sum):")
    for key, label in LIVE_METRICS:
        if key in last["moe_ep"]["cpu"]:
            print(f"  {label}: " + ", ".join(f"{group} {cpu}" for group, cpu in last["moe_ep"]["cpu"][key].items()))
    at_target = next((r for r in rows if r["gpus"] == live.TARGET_GPUS), None)
    verdict = {}
    if at_target is None:
        print(f"targets: not judged (no {live.TARGET_GPUS}-GPU size measured)")
    else:
        verdict = {"up_within_ratio": at_target["ratios"]["up_s"] <= live.UP_RATIO_TARGET,
                   "bound_within_ratio": at_target["ratios"]["bound_s"] <= live.UP_RATIO_TARGET,
                   "preview_under_seconds": at_target["moe_ep"]["preview_s"] < live.PREVIEW_TARGET_SECONDS}
        print(f"targets at {live.TARGET_GPUS} GPUs: up <= {live.UP_RATIO_TARGET}x kubectl apply: "
              f"{'met' if verdict['up_within_ratio'] else 'MISSED'} (x{at_target['ratios']['up_s']}; until every pod is "
              f"bound x{at_target['ratios']['bound_s']}); no-change preview < {live.PREVIEW_TARGET_SECONDS:.0f} s: "
              f"{'met' if verdict['preview_under_seconds'] else 'MISSED'} ({at_target['moe_ep']['preview_s']} s)")
    load = os.getloadavg()
    print(f"load average after the live runs: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1/5/15 min)")
    return {"rows": rows, "growth": growth, "targets": verdict, "up_ratio_target": live.UP_RATIO_TARGET,
            "preview_target_seconds": live.PREVIEW_TARGET_SECONDS, "load_average": [round(x, 2) for x in load]}


BENCHMARKS = {"preview": run_preview, "fleet": run_fleet, "blast-radius": run_blast_radius,
              "blast-radius-live": run_blast_radius_live, "live": run_live}


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["fleet-child"]:
        stack_file, services, runs = Path(argv[1]), int(argv[2]), int(argv[3])
        print(json.dumps(fleet.measure(_service(stack_file), services, runs)))
        return 0
    if argv[:1] == ["live-child"]:
        print(json.dumps(live.child(int(argv[1]), Path(argv[2]), int(argv[3]))))
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append", help="Run only these (repeatable).")
    parser.add_argument("--runs", type=int, default=7, help="In-process preview builds per stack. Default 7.")
    parser.add_argument("--command-runs", type=int, default=3, help="`moe-ep preview` subprocess runs per stack. Default 3.")
    parser.add_argument("--fleet-sizes", type=_sizes, default=[1, 10, 50, 100], help="Default 1,10,50,100.")
    parser.add_argument("--fleet-runs", type=int, default=9,
                        help="Rounds per fleet size, at least (small sizes get more). Default 9: the fewest whose "
                             "median's 95%% interval leaves out the two extreme rounds.")
    parser.add_argument("--fleet-stack", default="prod", help="The service every fleet member copies. Default prod.")
    parser.add_argument("--blast-stack", default="prod", help="The stack the day-2 changes edit. Default prod.")
    parser.add_argument("--blast-plane-dir", type=Path, default=blast_radius_live.PLANE_DIR,
                        help="Folder of the live blast radius's own control plane. Default .e2e-blast.")
    parser.add_argument("--blast-port-offset", type=int, default=blast_radius_live.PORT_OFFSET,
                        help="Added to every port of that plane. Default 2000.")
    parser.add_argument("--blast-chain", action="store_true",
                        help="Live blast radius: apply the changes one on top of the other instead of restoring the "
                             "base after each (half the pulumi up runs).")
    parser.add_argument("--live-nodes", type=_sizes, default=[8, 32, 64],
                        help=f"Fleet sizes of the live section, in 8-GPU nodes (multiples of {live.NODES_STEP}). "
                             "Default 8,32,64 (64 to 512 GPUs).")
    parser.add_argument("--live-plane-dir", type=Path, default=live.PLANE_DIR,
                        help="Folder of the live section's own control plane. Default .e2e-scale.")
    parser.add_argument("--live-port-offset", type=int, default=live.PORT_OFFSET,
                        help="Added to every port of that plane. Default 1000.")
    parser.add_argument("--out", type=Path, default=Path("out/bench.json"), help="JSON report. Default out/bench.json.")
    args = parser.parse_args(argv)
    root = planning.project_root()
    report: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine()}
    for name in args.only or list(BENCHMARKS):
        report[name] = BENCHMARKS[name](root, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nreport: {args.out}")
    failed = [name for name, section in report.items() if isinstance(section, dict) and section.get("failed")]
    if failed:
        print(f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
