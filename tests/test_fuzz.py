"""Fuzzing the real CLI with hypothesis-generated stack files.

Every run of ``moe-ep preview``/``render`` exits 0, 1 or 2, never with a traceback; every exit-2
message names a key path that exists in the file up to its last key (which may be the missing
one); nothing is written on exit 2. Examples per test come from the hypothesis profile
(tests/conftest.py: ``HYPOTHESIS_PROFILE=ci`` runs 1,000 of each).

Two generators: mutations of the real stacks (dropped keys, unknown keys, values of the wrong
type, catalog swaps, random TP/DP/EP/EPLB layouts, policy overrides), many of which are valid and
run the whole program and policy pack; and raw text (any bytes, YAML-looking noise with tabs,
anchors and aliases, deep nesting).
"""

from __future__ import annotations

import ast
import contextlib
import copy
import datetime
import io
import json
import re
import tempfile
import typing
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, example, given, settings, strategies as st
from pydantic import BaseModel

from components import catalog, vllm
from components.spec import ServiceSpec
from moe_ep import cli
from policies.rules import RULES_BY_NAME

ROOT = Path(__file__).resolve().parent.parent
SERVICE, POLICY = "moe-ep:service", "moe-ep:policy"
STACKS = {p.name: yaml.safe_load(p.read_text()) for p in sorted((ROOT / "stacks").glob("Pulumi.*.yaml"))}

# `<file>: <key path> = <value>: expected ...`, one line per problem (components/spec.py Problem.render).
# A path starts at the file, `config` or a config key (`ns:name`) and walks mappings (`.key`, or
# `['key']` for keys with dots, spaces, ...) and lists (`[i]`).
_QUOTED = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""
_STEP = re.compile(rf"\.(?P<key>[^\s.\[\]=]+)|\[(?P<index>\d+)\]|\[(?P<quoted>{_QUOTED})\]")
_PATH = re.compile(rf"(?P<head>config|\(file\)|[^\s.\[\]=:]+:[^\s.\[\]=]+)(?P<tail>(?:{_STEP.pattern})*) = ")

_FUZZ = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], deadline=None)


# --- running the CLI -----------------------------------------------------------------------------


def run_cli(text: str | bytes, command: str) -> tuple[int, str, str, Path]:
    """Write ``text`` as a stack file and run the real entry point on it, in process."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "Pulumi.fuzz.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        out = Path(folder) / "render"
        argv = ["preview", "--config", str(path), "--json"] if command == "preview" else \
            ["render", "--config", str(path), "--out", str(out)]
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = cli.main(argv)
        if code == 2:
            assert not out.exists(), f"exit 2 but {out} was created"
        elif command == "render" and code in (0, 1):
            assert out.is_dir() and any(out.iterdir()), "exit 0/1 from render but no manifests written"
        return code, stdout.getvalue(), stderr.getvalue(), path


def check_outcome(code: int, out: str, err: str, path: Path, command: str, document: Any = None) -> None:
    """The contract every run keeps; ``document`` (the parsed file) enables the key-path walk."""
    assert code in (0, 1, 2), f"exit {code}\n{err[-3000:]}"
    assert "Traceback" not in err + out, err[-3000:]
    if code != 2:
        if command == "preview":
            view = json.loads(out, parse_constant=_not_json)
            assert view["project"] == "moe-ep" and set(view["pools"]) == {"prefill", "decode"}
        return
    assert out == "", "exit 2 prints nothing on stdout"
    header, *lines = err.splitlines()
    assert header == "moe-ep: bad stack file", err
    assert lines, "an exit-2 message names at least one problem"
    for line in lines:
        assert line.startswith(f"{path}: "), f"problem line without the file: {line!r}"
        match = _PATH.match(line, len(f"{path}: "))
        assert match, f"problem line without a key path: {line!r}"
        if document is not None:
            assert_path_in(document, match["head"], match["tail"], line)


def assert_path_in(document: Any, head: str, tail: str, line: str) -> None:
    """Every step of the path but the last exists in the file (the last may be the missing key)."""
    if head in ("config", "(file)"):
        assert tail == "", line
        return
    node = document["config"]
    steps = [(m["key"] if m["quoted"] is None else ast.literal_eval(m["quoted"]), m["index"]) for m in _STEP.finditer(tail)]
    assert head in node or not steps, f"{head} is not in the file: {line!r}"
    node = node.get(head)
    for key, index in steps[:-1]:
        if index:
            assert isinstance(node, list) and int(index) < len(node), f"[{index}] does not exist: {line!r}"
            node = node[int(index)]
        else:
            found = [k for k in node if str(k) == key] if isinstance(node, dict) else []
            assert found, f"{key!r} does not exist in the file: {line!r}"
            node = node[found[0]]


# --- structured: mutations of the real stacks ----------------------------------------------------

_WILD_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.integers(-3, 20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.text(alphabet=st.characters(min_codepoint=0x80, max_codepoint=0x2FFFF, exclude_categories=("Cs",)), max_size=10),
    st.integers(1000, 20_000).map(lambda n: "x" * n),
    st.dates(),
    st.binary(max_size=8),
    st.sampled_from(["", "0", "-1", "1.5", "25%", "100%", "yes", "null", "~", "8Gi", "eth0", "h20", "deepseek-v3"]),
)
WILD = st.recursive(_WILD_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
KEY_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,15}", fullmatch=True) | st.sampled_from(
    ["TP_SIZE", "DP_SIZE", "EP_SIZE", "replicas", "eplb", "enabled", "mode", "karpenter", "existing"]
)

IMAGES = ["vllm/vllm-openai:v0.33.0", "vllm/vllm-openai:latest", "vllm/vllm-openai", "vllm/vllm-openai:v0.8.0",
          "vllm/vllm-openai@sha256:" + "a" * 64, "registry.local/vllm:v0.33.0"]
# Known keys with plausible values: they keep many examples valid, deep into the engine and pack.
SETTINGS: list[tuple[tuple[str, ...], Any]] = [
    (("image",), st.sampled_from(IMAGES)),
    (("model", "architecture"), st.sampled_from(sorted(catalog.ARCHITECTURES))),
    (("model", "dtype"), st.sampled_from(["fp8", "bf16", "int4"])),
    (("model", "kv_cache_dtype"), st.sampled_from(["auto", "bf16", "fp8"])),
    (("model", "max_model_len"), st.sampled_from([256, 4096, 32768, 131072, 4_194_304])),
    (("gpu", "product"), st.sampled_from(sorted(catalog.GPUS))),
    (("gpu", "per_node"), st.sampled_from([1, 2, 4, 8, 16])),
    (("gpu", "price_per_hour"), st.floats(0.01, 100)),
    (("router", "mode"), st.sampled_from(["llm-d", "round-robin"])),
    (("router", "service_type"), st.sampled_from(["ClusterIP", "LoadBalancer"])),
    (("unit", "guard"), st.booleans()),
    (("unit", "max_surge"), st.sampled_from([0, 1, "25%"])),
    (("unit", "start_barrier"), st.booleans()),
    (("unit", "startup_minutes"), st.integers(1, 240)),
    (("api_key", "length"), st.integers(32, 128)),
    (("network", "policies"), st.booleans()),
    (("monitoring", "enabled"), st.booleans()),
    (("monitoring", "labels"), st.dictionaries(st.sampled_from(["release", "team"]), st.sampled_from(["kps", "llm"]))),
    (("node_pool",), st.sampled_from([STACKS["Pulumi.staging.yaml"]["config"][SERVICE]["node_pool"],
                                      STACKS["Pulumi.prod.yaml"]["config"][SERVICE]["node_pool"]])),
]
POOL_SETTINGS: list[tuple[str, Any]] = [
    ("replicas", st.integers(0, 4)),
    ("all2all_backend", st.sampled_from(vllm.ALL2ALL_BACKENDS)),
    ("enable_dbo", st.booleans()),
    ("mtp", st.builds(dict, num_speculative_tokens=st.integers(1, 8))),
    ("gpu_memory_utilization", st.floats(0.05, 0.98)),
    ("max_num_seqs", st.integers(1, 1024)),
    ("enable_prefix_caching", st.booleans()),
    ("max_unavailable_units", st.integers(1, 4)),
    ("resources", st.builds(dict, shm_size=st.sampled_from(["1Gi", "32Gi", "64Gi"]))),
    ("autoscaling", st.builds(dict, engine=st.sampled_from(["hpa", "keda"]), min_replicas=st.integers(0, 3),
                              max_replicas=st.integers(1, 8))),
    ("extra_args", st.lists(st.sampled_from(["--enforce-eager", "--max-logprobs", "20", "--seed=1"]), max_size=3)),
]


def model_paths(model: type[BaseModel], prefix: tuple = ()) -> list[tuple]:
    """Every key the stack schema knows, nested sections included (so new fields are fuzzed too)."""
    found = []
    for name, field in model.model_fields.items():
        found.append(prefix + (name,))
        for inner in (field.annotation, *typing.get_args(field.annotation)):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                found.extend(model_paths(inner, prefix + (name,)))
    return found


KNOWN_KEYS = model_paths(ServiceSpec)
# Edges of every numeric and string type: zero, negatives, beyond int64 and float range, NaN.
EXTREMES = st.sampled_from([0, -1, 1, 2**31, 2**63, 10**400, float("inf"), float("-inf"), float("nan"), 1e308, 0.5,
                            "", " ", "x" * 300, "0", "1"])


def key_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a mapping key or list item under ``node``."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.append(prefix + (key,))
            found.extend(key_paths(value, prefix + (key,)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.append(prefix + (index,))
            found.extend(key_paths(value, prefix + (index,)))
    return found


def container_at(root: Any, path: tuple) -> Any:
    for step in path:
        root = root[step]
    return root


def set_in(root: dict, path: tuple, value: Any) -> None:
    """Set ``path`` under ``root``, replacing whatever non-mapping stands in the way."""
    for step in path[:-1]:
        if not isinstance(root.get(step), dict):
            root[step] = {}
        root = root[step]
    root[path[-1]] = copy.deepcopy(value)  # never share (and later mutate) a piece of STACKS


def layout(draw, per_node: int, architecture: str) -> dict[str, Any]:
    """A pool's TP/DP/nodes/EP/EPLB: mostly arithmetic vLLM accepts, sometimes not."""
    nodes = draw(st.integers(1, 4))
    divisors = [d for d in (1, 2, 4, 8, 16) if per_node % d == 0]
    tp = draw(st.sampled_from(divisors) | st.integers(1, 16)) if draw(st.booleans()) else draw(st.sampled_from(divisors))
    gpus = nodes * per_node
    dp = gpus // tp if gpus % tp == 0 and draw(st.integers(0, 4)) else draw(st.integers(1, 64))
    pool: dict[str, Any] = {"nodes_per_replica": nodes}
    spelled = draw(st.sampled_from(["long", "alias"]))
    pool["tensor_parallel_size" if spelled == "long" else "TP_SIZE"] = tp
    pool["data_parallel_size" if spelled == "long" else "DP_SIZE"] = dp
    pool["expert_parallel"] = draw(st.booleans())
    if draw(st.integers(0, 3)) == 0:
        pool["EP_SIZE"] = draw(st.sampled_from([tp * dp, max(1, tp * dp // 2)]))
    if draw(st.booleans()):
        experts, ep = catalog.ARCHITECTURES[architecture].routed_experts, tp * dp
        even = (-experts) % ep
        pool["eplb"] = {"num_redundant_experts": draw(st.sampled_from([even, even + ep, 0, draw(st.integers(0, 40))]))}
        if draw(st.integers(0, 5)) == 0:
            pool["eplb"]["enabled"] = draw(st.booleans())
    return pool


@st.composite
def mutated_stacks(draw) -> dict[str, Any]:
    document = copy.deepcopy(STACKS[draw(st.sampled_from(sorted(STACKS)))])
    service = document["config"][SERVICE]
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(
            ["setting", "setting", "pool-setting", "layout", "layout", "known-key", "known-key", "decode-only", "policy",
             "drop", "unknown-key", "wrong-value", "foreign-key"]
        ))
        service = document["config"].get(SERVICE)
        if kind == "setting" and isinstance(service, dict):
            path, values = draw(st.sampled_from(SETTINGS))
            set_in(service, path, draw(values))
        elif kind in ("pool-setting", "layout") and isinstance(service, dict):
            role = draw(st.sampled_from(["prefill", "decode"]))
            if kind == "layout":
                gpu = service.get("gpu") if isinstance(service.get("gpu"), dict) else {}
                per_node = gpu.get("per_node", 8) if isinstance(gpu.get("per_node"), int) else 8
                model = service.get("model") if isinstance(service.get("model"), dict) else {}
                architecture = model.get("architecture")
                known = isinstance(architecture, str) and architecture in catalog.ARCHITECTURES
                pool = layout(draw, per_node, architecture if known else "deepseek-v3")
                service[role] = {"replicas": 1, **pool}
            else:
                name, values = draw(st.sampled_from(POOL_SETTINGS))
                set_in(service, (role, name), draw(values))
        elif kind == "known-key" and isinstance(service, dict):
            set_in(service, draw(st.sampled_from(KNOWN_KEYS)), draw(st.one_of(EXTREMES, EXTREMES, WILD)))
        elif kind == "decode-only" and isinstance(service, dict):
            service.pop("prefill", None)
        elif kind == "policy":
            rules = st.sampled_from(sorted(RULES_BY_NAME)) | KEY_NAMES
            levels = st.sampled_from(["advisory", "mandatory", "disabled"]) | WILD
            document["config"][POLICY] = {"enforcement": draw(st.dictionaries(rules, levels, max_size=3))}
        elif kind == "drop":
            paths = key_paths(document["config"])
            if paths:
                path = draw(st.sampled_from(paths))
                del container_at(document["config"], path[:-1])[path[-1]]
        elif kind == "unknown-key":
            holders = [()] + [p for p in key_paths(document["config"]) if isinstance(container_at(document["config"], p), dict)]
            holder = container_at(document["config"], draw(st.sampled_from(holders)))
            key = draw(KEY_NAMES.map(lambda k: "moe-ep:" + k) if holder is document["config"] else KEY_NAMES)
            holder[key] = draw(WILD)
        elif kind == "wrong-value":
            paths = key_paths(document["config"])
            if paths:
                path = draw(st.sampled_from(paths))
                container_at(document["config"], path[:-1])[path[-1]] = draw(WILD)
        elif kind == "foreign-key":
            # Other namespaces' keys (aws:region, ...) sit beside ours in a real stack file.
            document["config"][draw(st.sampled_from(["aws:region", "kubernetes:context", "pulumi:tags"]))] = draw(WILD)
    return document


OUTCOMES: Counter[str] = Counter()


def _stack_document(name: str) -> dict[str, Any]:
    return copy.deepcopy(STACKS[f"Pulumi.{name}.yaml"])


def _latest_image() -> dict[str, Any]:
    document = _stack_document("prod")
    document["config"]["moe-ep:service"]["image"] = "vllm/vllm-openai:latest"
    return document


# One known input per outcome, so the three-outcome check below never rests on chance alone.
@_FUZZ
@example(document=_stack_document("prod"), command="preview")
@example(document=_latest_image(), command="preview")
@example(document={"config": {"moe-ep:service": {"name": "Bad_Name"}}}, command="render")
@given(document=mutated_stacks(), command=st.sampled_from(["preview", "preview", "preview", "render"]))
def fuzz_mutated_stacks(document: dict[str, Any], command: str) -> None:
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    code, out, err, path = run_cli(text, command)
    OUTCOMES[code] += 1
    event(f"exit {code}")  # the distribution: pytest --hypothesis-show-statistics
    check_outcome(code, out, err, path, command, yaml.safe_load(text))


def test_mutated_stacks_exit_0_1_or_2_and_name_the_key():
    OUTCOMES.clear()
    fuzz_mutated_stacks()
    # The generator is only useful if it reaches all three outcomes: valid stacks, policy
    # violations and bad input.
    assert {0, 1, 2} <= set(OUTCOMES), OUTCOMES


# --- raw: text that is barely (or not) a stack file ----------------------------------------------

_TOKENS = st.sampled_from([
    "config:", "moe-ep:service:", "moe-ep:policy:", "  ", "\t", "\n", "- ", ": ", "? ", "&a ", "*a", "&b ", "*b",
    "[", "]", "{", "}", ",", "'", '"', "#", "|", ">", "!!binary ", "!!python/object ", "!!set ", "%YAML 1.1\n",
    "---\n", "...\n", "name", "decode", "1e999", "0x1F", ".nan", "2024-01-01", "~", "yes", "\\u0000", "\x00", "\ufeff",
])


def alias_bomb(levels: int, width: int) -> str:
    """Anchors that each reference the previous one ``width`` times: width**levels leaves expanded."""
    lines = ["x0: &x0 [lol]"]
    lines += [f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return "\n".join(lines)


@st.composite
def raw_stacks(draw) -> str | bytes:
    kind = draw(st.sampled_from(["bytes", "text", "tokens", "tokens", "nested", "bomb"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "text":
        return draw(st.text(max_size=200))
    if kind == "tokens":
        return "".join(draw(st.lists(_TOKENS | st.text(max_size=5), max_size=40)))
    if kind == "nested":
        depth = draw(st.integers(1, 3000))
        opener, closer = draw(st.sampled_from([("[", "]"), ("{a: ", "}"), ("- ", "")]))
        if not closer:  # block style: indentation grows quadratically, so fewer levels
            inner = "".join(f"\n{' ' * (2 * i)}- " for i in range(min(depth, 300))) + "1"
        else:
            inner = opener * depth + "1" + closer * depth
        return f"config:\n  moe-ep:service: {inner}\n" if draw(st.booleans()) else inner
    # Bounded to ~10^5 expanded leaves so that code which does walk the expansion stays quick.
    levels, width = draw(st.integers(1, 6)), draw(st.integers(2, 6))
    while width**levels > 100_000:
        levels -= 1
    where = draw(st.sampled_from([f"moe-ep:service: *x{levels}", f"moe-ep:policy: *x{levels}",
                                  f"aws:tags: *x{levels}", f"moe-ep:bomb: *x{levels}"]))
    return f"{alias_bomb(levels, width)}\nconfig:\n  {where}\n"


@_FUZZ
@given(text=raw_stacks())
def test_raw_text_exits_2_naming_a_key(text):
    code, out, err, path = run_cli(text, "preview")
    event(f"exit {code}")
    check_outcome(code, out, err, path, "preview")
    assert code == 2


# --- the `size` command's arguments ---------------------------------------------------------------

def _whole(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(min_value=low, max_value=high).map(str)


def _real(low: float, high: float) -> st.SearchStrategy[str]:
    return st.floats(min_value=low, max_value=high).map(str)


# A realistic value per option, and wild text any option may get instead.
SIZE_OPTIONS = {
    "--gpus-per-node": _whole(1, 16), "--max-model-len": _whole(256, 131_072), "--max-nodes": _whole(1, 16),
    "--gpu-memory-utilization": _real(0.5, 0.98), "--price-per-hour": _real(0.5, 20.0),
    "--rate": _real(0.01, 100.0), "--input-len": _whole(1, 8000), "--output-len": _whole(1, 4000),
    "--prefill-tps-per-gpu": _real(10.0, 50_000.0), "--decode-tps-per-gpu": _real(10.0, 50_000.0),
}
SIZE_GROUPS = (("--rate", "--input-len", "--output-len"), ("--prefill-tps-per-gpu", "--decode-tps-per-gpu"))
_WILD = st.one_of(
    _whole(-10, 10**60),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e308", "1e-308", "5e-324", "0", "-0", "0x10", "1_000", " 8", "", "nan", "inf", "8.0"]),
    st.text(max_size=8),
)


@st.composite
def size_arguments(draw) -> list[str]:
    argv = ["size", "--model", draw(st.sampled_from(sorted(catalog.ARCHITECTURES))),
            "--gpu", draw(st.sampled_from(sorted(catalog.GPUS)))]
    options = draw(st.lists(st.sampled_from([o for o in SIZE_OPTIONS if not any(o in g for g in SIZE_GROUPS)]),
                            unique=True, max_size=3))
    for group in SIZE_GROUPS:  # options meant together: mostly all or none, sometimes a part
        options += draw(st.sampled_from([group, group, (), (), group[:1]]))
    for option in options:
        # Realistic three times in four, so that many runs reach the estimate.
        argv += [option, draw(st.one_of(SIZE_OPTIONS[option], SIZE_OPTIONS[option], SIZE_OPTIONS[option], _WILD))]
    return argv + (["--json"] if draw(st.booleans()) else [])


@_FUZZ
@example(argv=["size", "--model", "kimi-k2", "--gpu", "h200", "--gpus-per-node", "1" + "0" * 40])
@example(argv=["size", "--model", "deepseek-v3", "--gpu", "h20", "--rate", "1e308", "--input-len", "1000", "--output-len", "1000"])
@example(argv=["size", "--model", "deepseek-v3", "--gpu", "h20", "--price-per-hour", "1e308", "--json"])
@example(argv=["size", "--model", "deepseek-v3", "--gpu", "a100-80gb", "--rate", "5e-324", "--input-len", "1", "--output-len", "1"])
# inf tokens/s over inf tokens/s per unit is NaN units: found by CI's 1,000 examples.
@example(argv=["size", "--model", "deepseek-v3", "--gpu", "a100-80gb", "--rate", "1e308", "--input-len", "1", "--output-len", "2",
               "--prefill-tps-per-gpu", "10.0", "--decode-tps-per-gpu", "1e308"])
@given(argv=size_arguments())
def test_size_arguments_exit_0_1_or_2_never_a_trace(argv):
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = cli.main(argv)
        except SystemExit as stop:  # argparse rejects a value: usage, then exit 2
            code = stop.code
    out, err = stdout.getvalue(), stderr.getvalue()
    event(f"exit {code}")
    assert code in (0, 1, 2), f"exit {code}\n{err[-3000:]}"
    assert "Traceback" not in err + out, err[-3000:]
    if code == 2:
        assert out == "" and re.search(r"--[a-z-]+", err.splitlines()[-1]), err
    elif "--json" in argv:
        json.loads(out, parse_constant=_not_json)


def _not_json(constant: str) -> None:
    raise AssertionError(f"{constant} in the JSON: no JSON parser outside Python reads it")


# --- what the fuzzers found: each was an exit 70 or a message without a usable key path ---------

DEV = (ROOT / "stacks" / "Pulumi.dev.yaml").read_text()


def dev_with(section: str) -> str:
    """The dev stack with ``section`` (YAML indented under ``moe-ep:service``) appended."""
    return DEV + "".join(f"    {line}\n" for line in section.splitlines())


def dev_set(path: tuple, value: Any) -> str:
    """The dev stack with ``moe-ep:service.<path>`` set to ``value``."""
    document = yaml.safe_load(DEV)
    set_in(document["config"][SERVICE], path, value)
    return yaml.safe_dump(document, sort_keys=False)


BOMB = alias_bomb(9, 9)  # 9**9 (387 million) leaves once expanded

REGRESSIONS = {
    # PyYAML turns an unquoted date into a date, which json.dumps (the engine's config) rejected;
    # Pulumi reads it as the string it is.
    "date in another namespace": (DEV + "  aws:region: 2000-01-01\n", 0, None),
    "date where a string goes": (DEV.replace("id: Qwen/Qwen3-30B-A3B", "id: 2024-01-01"), 0, None),
    "explicit binary tag": (DEV + "  aws:blob: !!binary aGVsbG8=\n", 2, "aws:blob = b'hello'"),
    "explicit set tag": (DEV + "  aws:members: !!set {a, b}\n", 2, "aws:members = {"),
    "level of the wrong type": (DEV + "  moe-ep:policy: {enforcement: {autoscaler-bounds: []}}\n", 2,
                                "moe-ep:policy.enforcement.autoscaler-bounds = []"),
    # YAML errors without a `problem` printed a second line without the file or key path.
    "control character": ("\x1f", 2, "(file) = "),
    "deep nesting": ("config: " + "[" * 3000 + "]" * 3000, 2, "(file) = "),
    # Composing it hit the recursion limit inside generators, whose clean-up printed "Exception
    # ignored in sys.unraisablehook" before the message, now and then: depth is read from events first.
    # The document's mapping, 99 flow mappings, then a list: 101 levels.
    "nesting one over the limit": ("config: " + "{a: " * 99 + "[1]" + "}" * 99, 2, "(file) = "),
    "alias bomb": (f"{BOMB}\nconfig:\n  moe-ep:service: {{name: *x9}}\n", 2, "(file) = "),
    "alias bomb in another namespace": (f"{BOMB}\n{DEV}  aws:tags: *x9\n", 2, "(file) = "),
    "alias inside its own anchor": (DEV + "  aws:tags: &loop [*loop]\n", 2, "(file) = "),
    # pydantic's locations: union members (`max_surge.int`), dict keys as list indices (`[1]`) and
    # its `[key]` marker.
    "union of the wrong type": (dev_set(("unit", "max_surge"), [1]), 2,
                                "moe-ep:service.unit.max_surge = [1]: expected a non-negative whole number"),
    "integer key": (dev_with("api_key: {keepers: {1: x}}"), 2, "moe-ep:service.api_key.keepers.1 = 1"),
    "dotted key": (dev_with("monitoring: {labels: {app.kubernetes.io/part-of: 7}}"), 2,
                   "moe-ep:service.monitoring.labels['app.kubernetes.io/part-of'] = 7"),
    "empty key": (dev_with("monitoring: {labels: {'': 7}}"), 2, "moe-ep:service.monitoring.labels[''] = 7"),
    "key ending in a newline": (DEV + '  aws:tags: {"a\\n": !!binary aGk=}\n', 2, "aws:tags['a\\n'] = b'hi'"),
    # Numbers JSON or float64 cannot carry: OverflowError in protobuf and in sizing, inf in --json.
    "integer beyond float64": (dev_with("node_pool: {provisioner: karpenter, karpenter: {node_class: {name: gpu}, "
                                        "gpu_limit: " + "9" * 400 + "}}"), 2, "moe-ep:service.node_pool.karpenter.gpu_limit = 999"),
    "huge max_num_seqs": (dev_set(("decode", "max_num_seqs"), 10**30), 2, "moe-ep:service.decode.max_num_seqs = 1000"),
    "infinite price": (dev_set(("gpu", "price_per_hour"), float("inf")), 2,
                       "moe-ep:service.gpu.price_per_hour = inf: expected Input should be a finite number"),
}


def test_the_nesting_limit_is_100_levels():
    over = run_cli(REGRESSIONS["nesting one over the limit"][0], "preview")[2]
    assert over.endswith("expected YAML nested at most 100 levels deep [yaml]\n"), over
    at_limit = run_cli("config: " + "{a: " * 98 + "[1]" + "}" * 98, "preview")[2]
    assert "levels deep" not in at_limit and "moe-ep:service = (missing)" in at_limit, at_limit


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_fuzzer_findings_exit_cleanly(name):
    text, expected_code, expected_line = REGRESSIONS[name]
    code, out, err, path = run_cli(text, "preview")
    check_outcome(code, out, err, path, "preview")
    assert code == expected_code, err
    if expected_line is not None:
        assert f"{path}: {expected_line}" in err, err
        assert len(err) < 2000, "a wrong value is quoted, not reproduced"
