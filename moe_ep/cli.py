"""The ``moe-ep`` command: plan, render and check a stack without a cluster or the Pulumi CLI, and,
after ``pulumi up``, see the live service (``status``) and send it a request (``smoke``).

Exit codes: 0 clean; 1 the check failed (a mandatory policy is violated, no layout fits, a unit is
not ready, the service gave no answer); 2 bad input (the message names the file, the key path, the
value and what was expected; nothing is written) or a cluster that cannot be reached; anything
else is a bug.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import traceback
from pathlib import Path

from components import catalog, sizing
from components.spec import GpuSpec, ModelSpec, PoolSpec, StackError

from . import analyze, manifests, plan as planning, schemas, sizing_advice, smoke, status
from .cluster import ClusterError, connect

EXIT_OK, EXIT_FAIL, EXIT_INPUT, EXIT_BUG = 0, 1, 2, 70


class InputError(Exception):
    """Bad command-line input that argparse cannot see (a missing stack, an unusable --out)."""


def _source(args: argparse.Namespace, project: Path) -> tuple[Path, str]:
    if args.config:
        path = Path(args.config)
        return path, planning.stack_name(path)
    path = planning.stack_file(project, args.stack)
    if not path.is_file():
        known = sorted(planning.stack_name(p) for p in (project / "stacks").glob("Pulumi.*.yaml"))
        raise InputError(f"{path}: no such stack file; --stack takes one of: {', '.join(known) or '(none)'}")
    return path, args.stack


def _plan(args: argparse.Namespace) -> planning.Plan:
    project = planning.project_root()
    source, stack = _source(args, project)
    crds = schemas.crd_dir(args.crd_dir)
    if crds is not None and not crds.is_dir():
        raise InputError(f"--crd-dir {crds}: not a directory of CRD manifests")
    return planning.build(source, project, stack, crd_dir=crds, preview=getattr(args, "first_preview", False))


def _print_human(plan: planning.Plan) -> None:
    data = planning.to_json(plan)
    spec = plan.spec
    print(f"moe-ep preview: stack {plan.stack} ({plan.source})")
    print(f"service {spec.name} in namespace {spec.namespace}: {spec.model.id} ({spec.model.arch.name}, {spec.model.dtype}) "
          f"on {spec.gpu.info.name} x {spec.gpu.per_node} per node, image {spec.image}")
    print()
    print("Pools:")
    for role, pool in data["pools"].items():
        if pool is None:
            print(f"  {role:8} (none: decode-only)")
            continue
        ep = pool["expert_parallel_size"]
        print(f"  {role:8} {pool['replicas']} unit(s) x {pool['nodes_per_replica']} node(s) x {pool['gpus_per_node']} GPUs"
              f" = {pool['replicas'] * pool['gpus']} GPUs; TP {pool['tensor_parallel_size']} DP {pool['data_parallel_size']}"
              f" EP {ep if ep else '-'}")
    print(f"  GPUs: {data['gpus']['initial']} initial, {data['gpus']['max']} at most")
    print()
    cluster = data["cluster"]
    if cluster["context"]:
        print(f"Cluster: kubeconfig context {cluster['context']} (kubernetes:context)")
    else:
        print("Cluster: no kubernetes:context in the stack file: `pulumi up` deploys to whatever context is current")
    print("  must already serve (read before anything is created; a missing one fails the preview):")
    print(f"  CRDs: {', '.join(cluster['crds'])}")
    if cluster["nodes"]:
        print(f"  nodes: {', '.join(cluster['nodes'])}")
    print()
    print("Sizing (per GPU; estimates from components/sizing.py):")
    for role, size in data["sizing"].items():
        if size is None:
            continue
        memory, cost = size["memory_per_gpu_gb"], size["cost"]
        print(f"  {role:8} {'fits' if size['fits'] else 'DOES NOT FIT'}: weights {memory['weights']:.1f} GB + reserve "
              f"{memory['reserve']:.1f} GB of {memory['budget']:.1f} GB; headroom for KV {memory['kv_cache']:.1f} GB = "
              f"{size['kv_tokens_per_dp_rank']:,} tokens per DP rank (one {size['max_model_len']:,}-token sequence: "
              f"margin {size['margin_gb']:.1f} GB); ${cost['per_hour']:.2f}/h")
    print()
    print("Resources (what `pulumi up` would create):")
    resources = plan.run.resources
    children: dict[str, list] = {}
    for r in resources:
        children.setdefault(r.parent, []).append(r)

    def tree(parent: str, depth: int) -> None:
        for r in sorted(children.get(parent, []), key=lambda r: (r.type, r.name)):
            meta = r.inputs.get("metadata") if r.custom else None
            where = f" ({meta['namespace']})" if isinstance(meta, dict) and meta.get("namespace") else ""
            print(f"  {'  ' * depth}+ {r.kind} {r.name}{where}")
            tree(r.urn, depth + 1)

    known = {r.urn for r in resources}
    for root in sorted({r.parent for r in resources} - known):
        tree(root, 0)
    print(f"  {len(data['resources'])} resources, {len(plan.objects)} Kubernetes objects")
    print()
    violations = data["policy"]["violations"]
    print(f"Policies: {len(violations)} violation(s)")
    for v in violations:
        print(f"  [{v['enforcement']}] {v['policy']}: {v['resource']}: {v['message']}")
    for line in _schema_lines(plan):
        print(line)
    if data["outputs"]:
        print()
        print("Outputs:")
        for key, value in data["outputs"].items():
            print(f"  {key}: {value}")


def _verdict(plan: planning.Plan) -> int:
    return EXIT_FAIL if plan.mandatory_violations or plan.schema_problems else EXIT_OK


def cmd_preview(args: argparse.Namespace) -> int:
    plan = _plan(args)
    if args.json:
        print(json.dumps(planning.to_json(plan), indent=2, sort_keys=False))
    else:
        _print_human(plan)
    return _verdict(plan)


def cmd_policy_config(args: argparse.Namespace) -> int:
    """The stack's enforcement levels as a `pulumi preview --policy-pack-config` file."""
    project = planning.project_root()
    source, _ = _source(args, project)
    config, _spec = planning.load(source)
    levels = analyze.enforcement_levels(config, str(source))
    print(json.dumps({rule: {"enforcementLevel": level} for rule, level in sorted(levels.items())}, indent=2))
    return EXIT_OK


def _live(args: argparse.Namespace) -> tuple[planning.Plan, status.Inventory]:
    """The stack (planned offline, without a CRD check: the cluster is what is checked here)."""
    project = planning.project_root()
    source, stack = _source(args, project)
    plan = planning.build(source, project, stack)
    return plan, status.inventory(plan)


def cmd_status(args: argparse.Namespace) -> int:
    _plan, inv = _live(args)
    cluster = connect(args.kubeconfig, args.context, inv.context)
    view = status.summarize(inv, status.read(cluster, inv))
    if args.json:
        print(json.dumps({"context": cluster.context, "server": cluster.server, **view}, indent=2))
    else:
        print(status.render(view, cluster.context, cluster.server))
    return EXIT_OK if view["ready"] else EXIT_FAIL


def cmd_smoke(args: argparse.Namespace) -> int:
    plan, inv = _live(args)
    key = None
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        if not key:
            raise InputError(f"--api-key-env {args.api_key_env}: that environment variable is not set or empty")
    cluster = None if args.url and key else connect(args.kubeconfig, args.context, inv.context)
    request = smoke.Request(prompt=args.prompt, max_tokens=args.max_tokens, timeout_s=args.timeout)
    result = smoke.run(plan.spec, inv, cluster, request, url=args.url, api_key=key)
    print(smoke.render(result))
    return EXIT_OK if result.ok else EXIT_FAIL


def _check_out(out: Path) -> None:
    """``--out`` must be a directory, or creatable as one, that this user can write: checked
    before anything is planned or written."""
    existing = out
    try:
        while not existing.exists():
            if existing.is_symlink():
                raise InputError(f"--out {out}: {existing} is a symbolic link that leads nowhere")
            existing = existing.parent
        is_dir = existing.is_dir()
    except OSError as error:  # a looping link, a folder on the way this user cannot enter
        raise InputError(f"--out {out}: {error.strerror or error}") from None
    if not is_dir:
        raise InputError(f"--out {out}: exists and is not a directory" if existing == out else f"--out {out}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"--out {out}: {existing} is not writable")


def cmd_render(args: argparse.Namespace) -> int:
    out = Path(args.out)
    _check_out(out)
    plan = _plan(args)
    try:
        written = manifests.write(plan.objects, out)
    except OSError as error:  # what the check cannot foresee: a full disk, a race with another writer
        raise InputError(f"--out {out}: cannot write the manifests: {error}") from None
    print(f"wrote {len(written)} manifests for stack {plan.stack} to {out}")
    for line in _schema_lines(plan):
        print(line, file=sys.stderr)
    return _verdict(plan)


def _schema_lines(plan: planning.Plan) -> list[str]:
    if plan.crd_dir is None:
        return [f"custom resources not checked against CRDs: no --crd-dir and no ${schemas.CRD_DIR_ENV}"]
    if not plan.schema_problems:
        return [f"custom resources valid against the CRDs in {plan.crd_dir}"]
    return [f"custom resource invalid against {plan.crd_dir}: {p}" for p in plan.schema_problems]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number > 0") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text}: expected a whole number > 0")
    return value


def _stack_file_int(model: type, field: str):
    """An argparse type for a whole number within the bounds the stack file gives ``model.field``:
    ``size`` answers for layouts a stack file can then declare."""
    bounds = {name: getattr(m, name) for m in model.model_fields[field].metadata for name in ("ge", "le") if hasattr(m, name)}
    low, high = bounds["ge"], bounds["le"]

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number from {low:,} to {high:,} (as in a stack file)")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number > 0") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text}: expected a finite number > 0")
    return value


def _utilization(text: str) -> float:
    value = _positive_float(text)
    if value > 0.98:
        raise argparse.ArgumentTypeError(f"{text}: expected a fraction in (0, 0.98]")
    return value


def _not_finite(value: object, path: str = "") -> str | None:
    """The key path of the first infinity or NaN in ``value`` (JSON has no spelling for them)."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for key, item in items:
        found = _not_finite(item, f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}".lstrip("."))
        if found is not None:
            return found
    return None


def cmd_size(args: argparse.Namespace) -> int:
    traffic = (args.rate, args.input_len, args.output_len)
    if any(v is not None for v in traffic) and not all(v is not None for v in traffic):
        raise InputError("--rate, --input-len and --output-len go together: give all three or none")
    profile = (args.prefill_tps_per_gpu, args.decode_tps_per_gpu)
    if any(v is not None for v in profile) and not all(v is not None for v in profile):
        raise InputError("--prefill-tps-per-gpu and --decode-tps-per-gpu go together: give both or neither")
    if args.rate is not None and args.input_len + args.output_len > args.max_model_len:
        raise InputError(f"--input-len {args.input_len} + --output-len {args.output_len} exceeds --max-model-len "
                         f"{args.max_model_len}: a request's prompt and output must fit in the context")
    per_node = args.gpus_per_node or catalog.GPUS[args.gpu].gpus_per_node
    try:
        advice = sizing_advice.advise(
            catalog.ARCHITECTURES[args.model], catalog.GPUS[args.gpu], per_node, args.dtype,
            sizing.Workload(args.max_model_len, args.gpu_memory_utilization, args.kv_cache_dtype),
            max_nodes=args.max_nodes,
            demand=sizing.Demand(*traffic) if args.rate is not None else None,
            profile=sizing.Profile(*profile) if args.prefill_tps_per_gpu is not None else None,
            price=args.price_per_hour,
        )
    except OverflowError as error:
        raise InputError(f"the arguments are so far out of range that the estimate overflows ({error}): expected "
                         "realistic --rate, --input-len, --output-len, tokens/s per GPU and --price-per-hour") from None
    figure = _not_finite(advice)
    if figure is not None:
        raise InputError(f"the arguments are so far out of range that the estimate's {figure} is not a finite number: "
                         "expected realistic --rate, --input-len, --output-len, tokens/s per GPU and --price-per-hour")
    if args.json:
        print(json.dumps(advice, indent=2))
    else:
        print(sizing_advice.render(advice))
    return EXIT_OK if advice["fits"] else EXIT_FAIL


def _size_parser(sub: argparse._SubParsersAction) -> None:
    size = sub.add_parser(
        "size", help="how many GPUs and which TP/DP/EP a model needs (no stack file)",
        description="Answers how many GPUs and which TP/DP/EP a model needs on a GPU type, and what it costs. "
                    "Exit 0: a layout fits within --max-nodes; 1: none does; 2: bad arguments.",
    )
    size.add_argument("--model", required=True, choices=sorted(catalog.ARCHITECTURES), help="catalog architecture")
    size.add_argument("--gpu", required=True, choices=sorted(catalog.GPUS), help="catalog GPU product")
    size.add_argument("--gpus-per-node", type=_stack_file_int(GpuSpec, "per_node"), help="default: the product's standard server (8)")
    size.add_argument("--dtype", choices=("fp8", "bf16", "int4"), default="fp8", help="weight dtype (default fp8)")
    size.add_argument("--kv-cache-dtype", choices=("auto", "bf16", "fp8"), default="auto", help="default auto")
    size.add_argument("--max-model-len", type=_stack_file_int(ModelSpec, "max_model_len"), default=32768, help="context length (default 32768)")
    size.add_argument("--gpu-memory-utilization", type=_utilization, default=0.9, help="default 0.9")
    size.add_argument("--max-nodes", type=_stack_file_int(PoolSpec, "nodes_per_replica"), default=8, help="largest unit to consider (default 8 nodes)")
    size.add_argument("--rate", type=_positive_float, help="requests per second to serve")
    size.add_argument("--input-len", type=_positive_int, help="mean prompt tokens per request")
    size.add_argument("--output-len", type=_positive_int, help="mean output tokens per request")
    size.add_argument("--prefill-tps-per-gpu", type=_positive_float, help="measured prefill tokens/s per GPU (instead of the roofline)")
    size.add_argument("--decode-tps-per-gpu", type=_positive_float, help="measured decode tokens/s per GPU (instead of the roofline)")
    size.add_argument("--price-per-hour", type=_positive_float, help="USD per GPU-hour (default: the catalog's ballpark)")
    size.add_argument("--json", action="store_true", help="one JSON object")
    size.set_defaults(func=cmd_size)


def _stack_options(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--stack", help="read stacks/Pulumi.NAME.yaml")
    which.add_argument("--config", help="read any stack file of that form")
    parser.add_argument("--crd-dir", help="CRD manifests to validate custom resources against (default: $MOE_EP_CRD_DIR)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="moe-ep", description=__doc__.split("\n")[0])
    sub = top.add_subparsers(dest="command", required=True)
    preview = sub.add_parser("preview", help="what `pulumi up` would create, policy results and sizing")
    _stack_options(preview)
    preview.add_argument("--json", action="store_true", help="one JSON object (see DESIGN.md)")
    preview.add_argument("--first-preview", action="store_true",
                         help="as a new stack's first `pulumi preview`: what providers compute (the API key) is unknown, "
                              "and the policy results are the ones `pulumi preview --policy-pack policies` gives it")
    preview.set_defaults(func=cmd_preview)
    render = sub.add_parser("render", help="write the Kubernetes manifests, one file per object")
    _stack_options(render)
    render.add_argument("--out", required=True, help="directory to write NNN-<kind>-<name>.yaml into")
    render.set_defaults(func=cmd_render)
    policy = sub.add_parser("policy-config", help="the stack's policy enforcement levels, for `pulumi preview --policy-pack-config`")
    which = policy.add_mutually_exclusive_group(required=True)
    which.add_argument("--stack", help="read stacks/Pulumi.NAME.yaml")
    which.add_argument("--config", help="read any stack file of that form")
    policy.set_defaults(func=cmd_policy_config)
    _size_parser(sub)
    _live_parsers(sub)
    return top


def _live_parsers(sub: argparse._SubParsersAction) -> None:
    def cluster_options(parser: argparse.ArgumentParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--stack", help="read stacks/Pulumi.NAME.yaml")
        which.add_argument("--config", help="read any stack file of that form")
        parser.add_argument("--kubeconfig", help="default: $KUBECONFIG, else ~/.kube/config")
        parser.add_argument("--context", help="default: the stack's kubernetes:context, else the current context")

    state = sub.add_parser(
        "status", help="every unit of the deployed service: pods, nodes, readiness, restarts, autoscaling",
        description="Reads the live cluster. Exit 0: every unit ready; 1: some unit is not (the reasons are listed); "
                    "2: bad input or the cluster cannot be reached.")
    cluster_options(state)
    state.add_argument("--json", action="store_true", help="one JSON object")
    state.set_defaults(func=cmd_status)
    check = sub.add_parser(
        "smoke", help="one real chat request through the router, with TTFT and tokens/s",
        description="Reaches the router through the API server's port-forward (or --url), reads the API key from the "
                    "stack's Secret, lists the models, streams one chat completion and checks that a request without "
                    "the key gets 401. Exit 0: a real answer; 1: no answer (the reason is printed); 2: bad input or "
                    "the cluster cannot be reached.")
    cluster_options(check)
    check.add_argument("--url", help="the router's base URL (default: port-forward to a ready router pod)")
    check.add_argument("--api-key-env", help="read the API key from this environment variable instead of the Secret")
    check.add_argument("--prompt", default=smoke.DEFAULT_PROMPT, help="the user message (default: %(default)r)")
    check.add_argument("--max-tokens", type=_positive_int, default=32, help="default 32")
    check.add_argument("--timeout", type=_positive_float, default=60.0, help="seconds per request (default 60)")
    check.set_defaults(func=cmd_smoke)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except StackError as error:
        print(f"moe-ep: bad stack file\n{error}", file=sys.stderr)
        return EXIT_INPUT
    except BrokenPipeError:
        return EXIT_OK
    except InputError as error:
        print(f"moe-ep: {error}", file=sys.stderr)
        return EXIT_INPUT
    except ClusterError as error:
        print(f"moe-ep: {error}", file=sys.stderr)
        return EXIT_INPUT
    except schemas.CrdError as error:
        print(f"moe-ep: bad CRD folder\n{error}", file=sys.stderr)
        return EXIT_INPUT
    except Exception:  # noqa: BLE001 - a bug: say so, with the trace, and never exit 1 or 2
        traceback.print_exc()
        print("moe-ep: internal error (a bug in moe-ep; please report it with the trace above)", file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
