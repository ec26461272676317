"""Conformance helpers around the *installed* vLLM CLI (vLLM 0.33.0, CPU-only).

This module contains no tests; test modules import these functions to check
that the ``vllm serve`` command lines moe-ep generates are accepted by the real
vLLM argument parser and by everything ``vllm serve`` checks before it starts
an engine (which would need a GPU and a model).

Requirements (see ``scripts/install-vllm.sh``): ``torch==2.13.0`` (CPU),
``vllm==0.33.0 --no-deps`` and the pinned "light" dependencies needed to import
``vllm.entrypoints.cli.serve``. ``VLLM_TARGET_DEVICE=cpu`` is set here if unset,
before anything from vLLM is imported.

Cost (2-core machine): first call to :func:`serve_parser` 6-14 s (the import
of ``vllm.entrypoints.cli.serve`` dominates; building the parser is ~20 ms);
then :func:`parse_serve` ~0.4-1 ms and :func:`engine_args` ~0.5-1.5 ms per
call. :func:`vllm_metric_names` parses source with :mod:`ast` and imports
nothing from vLLM (~1.5-3.5 s, cached).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import functools
import importlib.util
import io
import os
import pathlib
import typing
from unittest import mock

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")

VLLM_VERSION = "0.33.0"

# prometheus_client metric classes and the vLLM attributes that alias them
# (e.g. ``self._counter_cls = prometheus_client.Counter`` in
# vllm/v1/metrics/loggers.py, swapped for Ray wrappers under Ray).
_KIND_BY_CALLEE = {
    "Counter": "counter",
    "_counter_cls": "counter",
    "Gauge": "gauge",
    "_gauge_cls": "gauge",
    "Histogram": "histogram",
    "_histogram_cls": "histogram",
    # vllm/v1/kv_offload/base.py: metadata that the offloading connector turns
    # into prometheus metrics.
    "OffloadingCounterMetadata": "counter",
    "OffloadingGaugeMetadata": "gauge",
    "OffloadingHistogramMetadata": "histogram",
}


class VllmCliError(ValueError):
    """``vllm serve`` would reject the command line (argparse error message)."""


# --------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------


@functools.cache
def _cli() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser, object]:
    """Build ``(top_parser, serve_subparser, serve_cmd)`` like ``vllm`` does.

    Mirrors vllm/entrypoints/cli/main.py ``main()``: a top-level
    ``FlexibleArgumentParser`` with ``add_subparsers(dest="subparser")`` into
    which ``ServeSubcommand().subparser_init`` registers ``serve`` (which calls
    ``make_arg_parser`` from vllm/entrypoints/common/cli_args.py). Only the
    serve subcommand is registered. ``cli_env_setup()`` (sets
    VLLM_WORKER_MULTIPROC_METHOD=spawn) and logging setup are skipped: they
    do not affect parsing.
    """
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.entrypoints.common.startup import VLLM_SUBCMD_PARSER_EPILOG
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(
        prog="vllm",
        description="vLLM CLI",
        epilog=VLLM_SUBCMD_PARSER_EPILOG.format(subcmd="[subcommand]"),
    )
    subparsers = parser.add_subparsers(required=False, dest="subparser")
    cmd = ServeSubcommand()
    sub = cmd.subparser_init(subparsers)
    sub.set_defaults(dispatch_function=cmd.cmd)
    return parser, sub, cmd


def serve_parser() -> argparse.ArgumentParser:
    """Return the cached top-level ``vllm`` parser with ``serve`` registered.

    Parse with ``serve_parser().parse_args(["serve", MODEL, ...])``: the
    ``FlexibleArgumentParser.parse_args`` pre-processing (``--model`` moved to
    the positional ``model_tag``, ``--config`` YAML expansion, ``_``/``-``
    normalisation, dotted JSON flags like ``--eplb-config.window_size 1000``)
    only happens at the top level when ``args[0] == "serve"``, exactly as for
    the ``vllm`` console script.
    """
    return _cli()[0]


def serve_subparser() -> argparse.ArgumentParser:
    """Return the ``serve`` sub-parser itself (for introspecting its actions)."""
    return _cli()[1]


def serve_flags() -> dict[str, argparse.Action]:
    """Map every option string of ``vllm serve`` (e.g. ``"-tp"``) to its action."""
    return {
        opt: action
        for action in serve_subparser()._actions
        for opt in action.option_strings
    }


def _parse_args(argv: list[str]) -> argparse.Namespace:
    """Run the top-level parse on ``argv`` (which must start ``vllm serve``)."""
    argv = [str(a) for a in argv]
    if argv[:2] != ["vllm", "serve"]:
        raise ValueError(f"argv must start with ['vllm', 'serve'], got {argv[:2]}")
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(err):
            ns = serve_parser().parse_args(argv[1:])
    except SystemExit as e:  # argparse error (exit 2) or --help/--version (0)
        raise VllmCliError(err.getvalue().strip() or f"exit {e.code}") from None
    if ns.subparser != "serve":
        raise VllmCliError(f"not a serve command: {argv}")
    return ns


def serve_dispatch(ns: argparse.Namespace) -> tuple[str, argparse.Namespace]:
    """Dry-run ``ServeSubcommand.cmd`` on a copy of ``ns``; return the launcher.

    ``cmd`` (vllm/entrypoints/cli/serve.py) copies ``model_tag`` to ``model``,
    rejects ``--headless`` with ``--api-server-count > 0``, rejects more than
    one DP load-balancing mode, defaults ``api_server_count`` and then calls a
    launcher. The launchers are patched out, so this needs no GPU. Returns
    ``(launcher, namespace_as_passed_to_it)`` where launcher is one of
    ``"grpc"``, ``"dp_supervisor"``, ``"headless"``, ``"multi_api_server"``,
    ``"api_server"``. Not thread-safe (patches module globals).
    """
    import vllm.entrypoints.cli.serve as serve_mod

    ns = copy.copy(ns)
    if getattr(ns, "grpc", False):
        # cmd() dispatches to serve_grpc before any other check.
        if ns.model_tag is not None:
            ns.model = ns.model_tag
        return "grpc", ns
    called: list[str] = []

    def rec(name):
        def _f(args, *a, **k):
            called.append(name)

        return _f

    class _UVLoop:
        @staticmethod
        def run(_coro):
            return None

    with (
        mock.patch.object(serve_mod, "run_dp_supervisor", rec("dp_supervisor")),
        mock.patch.object(serve_mod, "run_headless", rec("headless")),
        mock.patch.object(serve_mod, "run_multi_api_server", rec("multi_api_server")),
        mock.patch.object(serve_mod, "run_server", rec("api_server")),
        mock.patch.object(serve_mod, "uvloop", _UVLoop),
    ):
        serve_mod.ServeSubcommand.cmd(ns)
    (launcher,) = called
    if launcher == "headless" and ns.data_parallel_hybrid_lb:
        # run_headless(): raises after create_engine_config (needs a model).
        raise ValueError("data_parallel_hybrid_lb is not applicable in headless mode")
    return launcher, ns


def parse_serve(argv: list[str]) -> argparse.Namespace:
    """Parse and validate a full ``vllm serve`` argv (``["vllm", "serve", ...]``).

    Steps, as the ``vllm`` console script runs them before any engine starts:
    1. top-level ``parse_args(argv[1:])`` (unknown flags, bad choices, bad
       types and invalid JSON configs -- ``--kv-transfer-config``,
       ``--eplb-config``, ``--compilation-config`` are validated into vLLM's
       pydantic config dataclasses here -- raise :class:`VllmCliError`);
    2. ``ServeSubcommand.validate(args)`` = ``validate_parsed_serve_args``
       (raises ``TypeError``/``ValueError``);
    3. the pre-launch checks of ``ServeSubcommand.cmd`` (:func:`serve_dispatch`).

    Returns the namespace as handed to the launcher (``model`` set from the
    positional model, ``api_server_count`` defaulted).
    """
    ns = _parse_args(argv)
    _cli()[2].validate(ns)
    _launcher, ns = serve_dispatch(ns)
    return ns


def _literal_values(tp) -> set[str]:
    """Flatten a (nested) ``typing.Literal`` into its set of values."""
    out: set[str] = set()
    for a in typing.get_args(tp):
        if typing.get_origin(a) is typing.Literal or typing.get_args(a):
            out |= _literal_values(a)
        else:
            out.add(a)
    return out


def check_speculative_config(spec: dict | None) -> None:
    """Check a ``--speculative-config`` dict without a target model.

    vLLM keeps it a plain dict until ``create_engine_config`` builds
    ``SpeculativeConfig`` (needs the target ``ModelConfig``). Here: keys must
    be ``SpeculativeConfig`` fields (``-`` allowed for ``_``), ``method`` must
    be in the ``SpeculativeMethod`` Literal (vllm/config/speculative.py),
    ``num_speculative_tokens`` a positive int.
    """
    if spec is None:
        return
    import dataclasses

    from vllm.config.speculative import SpeculativeConfig, SpeculativeMethod

    fields = {f.name for f in dataclasses.fields(SpeculativeConfig)}
    spec = {k.replace("-", "_"): v for k, v in spec.items()}
    if unknown := sorted(set(spec) - fields):
        raise ValueError(f"unknown --speculative-config keys: {unknown}")
    method = spec.get("method")
    if method is not None and method not in _literal_values(SpeculativeMethod):
        raise ValueError(f"unknown speculative method {method!r}")
    n = spec.get("num_speculative_tokens")
    if n is not None and (
        isinstance(n, bool) or not isinstance(n, int) or n <= 0
    ):
        raise ValueError(f"num_speculative_tokens must be a positive int, got {n!r}")


def engine_args(argv: list[str]):
    """Return ``AsyncEngineArgs.from_cli_args`` for a ``vllm serve`` argv.

    Runs :func:`parse_serve` first. Only constructs the dataclass (no
    ``create_engine_config``: that needs a model and a device). JSON config
    flags are already config objects at this point (``KVTransferConfig``,
    ``EPLBConfig``, ``CompilationConfig``...; a bad ``kv_role`` is rejected by
    ``KVTransferConfig.__post_init__`` during parsing). ``speculative_config``
    stays a dict and is checked by :func:`check_speculative_config`.
    """
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.entrypoints.common.cli_args import propagate_flash_late_interaction

    ns = parse_serve(argv)
    ea = AsyncEngineArgs.from_cli_args(ns)
    propagate_flash_late_interaction(ns, ea)
    check_speculative_config(ea.speculative_config)
    return ea


def vllm_env_vars() -> set[str]:
    """Names of the environment variables vLLM reads (``vllm.envs.environment_variables``)."""
    from vllm import envs

    return set(envs.environment_variables)


def unknown_vllm_env_vars(env: typing.Mapping[str, str]) -> list[str]:
    """``VLLM_*`` names in ``env`` that vLLM does not know.

    ``Platform.validate_environ`` (vllm/platforms/interface.py) logs a warning
    for each at engine-config time, or raises with
    ``--fail-on-environ-validation``.
    """
    known = vllm_env_vars()
    return sorted(k for k in env if k.startswith("VLLM_") and k not in known)


# --------------------------------------------------------------------------
# Prometheus metric names (static, via ast)
# --------------------------------------------------------------------------


def vllm_package_dir() -> pathlib.Path:
    """Directory of the installed ``vllm`` package (found without importing it)."""
    spec = importlib.util.find_spec("vllm")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("vllm is not installed")
    return pathlib.Path(next(iter(spec.submodule_search_locations)))


def _callee(node: ast.Call) -> str | None:
    f = node.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute):
        return f.attr
    return None


def _str_consts(tree: ast.AST) -> dict[str, list[str]]:
    """Names (plain, ``Class.attr`` and bare ``attr``) bound to ``vllm:*`` strings."""
    out: dict[str, list[str]] = {}

    def add(key, val):
        out.setdefault(key, []).append(val)

    def visit(node, cls=None):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, child.name)
                continue
            if isinstance(child, (ast.Assign, ast.AnnAssign)):
                v = child.value
                if (
                    isinstance(v, ast.Constant)
                    and isinstance(v.value, str)
                    and v.value.startswith("vllm:")
                ):
                    targets = child.targets if isinstance(child, ast.Assign) else [child.target]
                    for t in targets:
                        if isinstance(t, ast.Name):
                            add(t.id, v.value)
                            if cls:
                                add(f"{cls}.{t.id}", v.value)
            visit(child, cls)

    visit(tree)
    return out


def _metric_name_node(call: ast.Call, kind_callee: str) -> ast.AST | None:
    for kw in call.keywords:
        if kw.arg == "name":
            return kw.value
    if call.args and not kind_callee.startswith("Offloading"):
        return call.args[0]
    return None


def vllm_metric_sources(root: str | os.PathLike | None = None) -> dict[str, tuple[str, str, int]]:
    """Map each ``vllm:*`` metric name to ``(kind, relative_path, line)``.

    Scans every ``*.py`` under the installed vllm package (skipping
    ``benchmarks/``) with :mod:`ast`. A metric is recognised where a
    prometheus_client ``Counter``/``Gauge``/``Histogram`` (or vLLM's
    ``_counter_cls``/``_gauge_cls``/``_histogram_cls`` aliases, or the KV
    offloading ``Offloading{Counter,Gauge,Histogram}Metadata``) is created
    with a name that is (a) a string literal, (b) a name/``Class.ATTR``
    bound to a ``"vllm:..."`` literal anywhere in vllm, or (c) the loop
    variable of a comprehension/for over a list of ``("vllm:...", doc)``
    tuples. For Offloading*Metadata the name is the dict key it is stored
    under. Names built at run time (f-strings) are not found.
    """
    root = pathlib.Path(root) if root else vllm_package_dir()
    trees: dict[pathlib.Path, ast.AST] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] == "benchmarks":
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if "vllm:" not in text and "Offloading" not in text:
            continue
        try:
            trees[path] = ast.parse(text)
        except SyntaxError:
            continue
    consts: dict[str, list[str]] = {}
    for tree in trees.values():
        for k, v in _str_consts(tree).items():
            consts.setdefault(k, []).extend(v)

    def resolve(node, scope_consts) -> list[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.Name):
            # Other files' constants only for CONSTANT_CASE names (imports).
            if node.id in scope_consts:
                return scope_consts[node.id]
            return consts.get(node.id, []) if node.id.isupper() else []
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            return consts.get(f"{node.value.id}.{node.attr}", [])
        return []

    found: dict[str, tuple[str, str, int]] = {}
    for path, tree in trees.items():
        rel = str(path.relative_to(root))
        local = _str_consts(tree)
        # (c) loop variables over lists of ("vllm:...", ...) tuples.
        loopvars: dict[str, list[str]] = {}
        lists: dict[str, list[str]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.List):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        for elt in node.value.elts:
                            if (
                                isinstance(elt, ast.Tuple)
                                and elt.elts
                                and isinstance(elt.elts[0], ast.Constant)
                                and str(elt.elts[0].value).startswith("vllm:")
                            ):
                                lists.setdefault(t.id, []).append(elt.elts[0].value)
        for node in ast.walk(tree):
            gens = []
            if isinstance(node, ast.comprehension):
                gens = [(node.target, node.iter)]
            elif isinstance(node, ast.For):
                gens = [(node.target, node.iter)]
            for target, it in gens:
                if (
                    isinstance(it, ast.Name)
                    and it.id in lists
                    and isinstance(target, ast.Tuple)
                    and target.elts
                    and isinstance(target.elts[0], ast.Name)
                ):
                    loopvars.setdefault(target.elts[0].id, []).extend(lists[it.id])
        scope = {**local, **loopvars}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                callee = _callee(node)
                kind = _KIND_BY_CALLEE.get(callee or "")
                if not kind or callee.startswith("Offloading"):
                    continue
                name_node = _metric_name_node(node, callee)
                for name in resolve(name_node, scope) if name_node is not None else []:
                    if name.startswith("vllm:"):
                        found.setdefault(name, (kind, rel, node.lineno))
            elif isinstance(node, ast.Dict):
                for k, v in zip(node.keys, node.values):
                    if isinstance(v, ast.Call) and (_callee(v) or "").startswith(
                        "Offloading"
                    ):
                        kind = _KIND_BY_CALLEE.get(_callee(v) or "")
                        if kind and k is not None:
                            for name in resolve(k, scope):
                                if name.startswith("vllm:"):
                                    found.setdefault(name, (kind, rel, k.lineno))
            elif isinstance(node, ast.Assign) and isinstance(
                node.targets[0], ast.Subscript
            ):
                v = node.value
                if isinstance(v, ast.Call) and (_callee(v) or "").startswith(
                    "Offloading"
                ):
                    kind = _KIND_BY_CALLEE.get(_callee(v) or "")
                    for name in resolve(node.targets[0].slice, scope):
                        if kind and name.startswith("vllm:"):
                            found.setdefault(name, (kind, rel, node.lineno))
    return dict(sorted(found.items()))


@functools.cache
def vllm_metric_names() -> dict[str, str]:
    """Map vLLM's Prometheus metric names to ``"counter"|"gauge"|"histogram"``.

    Names are as written in the vLLM source (see :func:`vllm_metric_sources`).
    What Prometheus scrapes differs: prometheus_client strips a trailing
    ``_total`` from a Counter's name and exposes ``<name>_total`` (plus
    ``<name>_created`` unless created-series are disabled); a Histogram is
    exposed as ``<name>_bucket``/``<name>_sum``/``<name>_count`` (+
    ``_created``); a Gauge as ``<name>``. Use :func:`exposed_series` for that.
    Most metrics only appear when their feature is on (spec decode, NIXL,
    KV offloading, LoRA, ...).
    """
    return {k: v[0] for k, v in vllm_metric_sources().items()}


def exposed_series(name: str, kind: str) -> set[str]:
    """Sample names prometheus_client exposes for a metric (without ``_created``)."""
    if kind == "counter":
        return {name.removesuffix("_total") + "_total"}
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return {name}
