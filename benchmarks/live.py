"""The live section: a wide-EP stack that fills a fleet of fake 8-GPU nodes, deployed with the real
``pulumi up`` on a local control plane of its own, against the plainest alternative: the same
manifests (``moe-ep render``) applied by the built kubectl with ``--server-side``.

Per size (a fleet of ``nodes`` H20 141GB nodes and two CPU nodes for the router), in a fresh
interpreter (``python -m benchmarks live-child NODES DIR INDEX``) whose environment points e2e/plane.py
and e2e/deploy.py at the benchmark's plane (``MOE_EP_PLANE_DIR``, ``MOE_EP_PLANE_PORT_OFFSET``,
``MOE_EP_FLEET``): the plane is restarted with that fleet, then

- moe-ep: ``pulumi up`` (wall time; and until every pod is bound, from the same start), a
  no-change ``pulumi preview``, a one-line day-2 change (the router autoscaler's ``max_replicas``)
  with ``pulumi up``, and ``pulumi destroy``, through e2e/deploy.py's stack (file backend);
- the same with ``PULUMI_SKIP_CHECKPOINTS=true``, to show what the per-step state writes cost;
- kubectl: ``apply --server-side -f DIR`` (and until every pod is bound), ``diff --server-side``
  with no change, ``apply`` of the day-2 stack's manifests, and ``delete -f`` of everything but
  the Nodes, whose labels and taint are released by applying them empty under the same field
  manager (as the stack's NodePatch does on destroy; deleting them would delete the fleet).

The three run one after the other on the same plane, the order rotating from size to size; each
step also records CPU seconds by process (``CpuSampler``). The caller (``benchmarks.__main__``)
stops the plane at the end, also on failure.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
PLANE_SCRIPT = ROOT / "e2e" / "plane.py"
PLANE_DIR = ROOT / ".e2e-scale"
PORT_OFFSET = 1000
"""The benchmark's plane: its own folder and ports, beside the tests' plane (.e2e, offset 0)."""

GPUS_PER_NODE = 8
DECODE_NODES = 4
"""Nodes per decode unit: Kimi K2, TP 1, DP 32, EP 32."""
PREFILL_NODES = 2
"""Nodes per prefill unit: TP 8, DP 2, EP 16 (`moe-ep size --model kimi-k2 --gpu h20-141gb`)."""
NODES_STEP = 2 * DECODE_NODES
"""A fleet is whole steps of one decode unit and two prefill units (half the nodes each)."""
CPU_NODES = 2
GPU_GROUP = "gpu-h20"
NAMESPACE = "llm-scale"
FIELD_MANAGER = "moe-ep-yardstick"
ROUTER_MAX = 6
"""The day-2 change: the router's autoscaler ceiling, ROUTER_MAX -> ROUTER_MAX + 1 (one line)."""
UP_RATIO_TARGET = 2.0
PREVIEW_TARGET_SECONDS = 10.0
TARGET_GPUS = 512
BOUND_TIMEOUT = 600.0


def stack_name(nodes: int) -> str:
    return f"scale-{nodes * GPUS_PER_NODE}"


def node_names(nodes: int) -> list[str]:
    """What e2e/plane.py names the fleet's GPU nodes."""
    return [f"{GPU_GROUP}-{i:02d}" for i in range(1, nodes + 1)]


def fleet(nodes: int) -> dict[str, Any]:
    """A fleet file (the form of e2e/fleet.yaml): ``nodes`` 8-GPU H20 141GB nodes with GPU Feature
    Discovery labels, GPU and RDMA capacity and no taint (the stack taints them), and CPU nodes."""
    if nodes < NODES_STEP or nodes % NODES_STEP:
        raise ValueError(f"nodes: a multiple of {NODES_STEP} (one decode unit of {DECODE_NODES} and two prefill "
                         f"units of {PREFILL_NODES}), not {nodes}")
    return {"groups": [
        {"name": "cpu", "count": CPU_NODES, "labels": {"node-role.moe-ep.io/cpu": "true"},
         "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"}},
        {"name": GPU_GROUP, "count": nodes,
         "labels": {"nvidia.com/gpu.product": "NVIDIA-H20-141GB", "nvidia.com/gpu.count": str(GPUS_PER_NODE),
                    "nvidia.com/gpu.memory": "143771", "nvidia.com/gpu.family": "hopper",
                    "nvidia.com/gpu.present": "true"},
         "capacity": {"cpu": "192", "memory": "2Ti", "pods": "110", "nvidia.com/gpu": str(GPUS_PER_NODE),
                      "rdma/rdma_shared_device_a": "1000"}},
    ]}


def service(nodes: int, router_max: int = ROUTER_MAX) -> dict[str, Any]:
    """Kimi K2 with wide EP filling ``nodes`` nodes exactly: half of them in decode units of 4 nodes
    (DP 32, EP 32, EPLB), half in prefill units of 2 (TP 8, DP 2, EP 16), NIXL KV transfer, on
    the nodes labelled and tainted in place (provisioner existing) with RDMA."""
    fleet(nodes)  # the same check
    return {
        "name": "kimi-k2", "namespace": NAMESPACE, "image": "vllm/vllm-openai:v0.33.0",
        "model": {"id": "moonshotai/Kimi-K2-Instruct", "architecture": "kimi-k2", "dtype": "fp8",
                  "max_model_len": 32768},
        "gpu": {"product": "h20-141gb", "per_node": GPUS_PER_NODE},
        "prefill": {"replicas": nodes // 2 // PREFILL_NODES, "nodes_per_replica": PREFILL_NODES,
                    "tensor_parallel_size": 8, "data_parallel_size": PREFILL_NODES, "expert_parallel": True},
        "decode": {"replicas": nodes // 2 // DECODE_NODES, "nodes_per_replica": DECODE_NODES,
                   "tensor_parallel_size": 1, "data_parallel_size": DECODE_NODES * GPUS_PER_NODE,
                   "expert_parallel": True, "eplb": {"num_redundant_experts": 0}},
        "kv_transfer": {"connector": "NixlConnector"},
        "unit": {"guard": True, "comm_interface": "eth0"},
        "router": {"max_replicas": router_max},
        "node_pool": {"provisioner": "existing", "existing": {"nodes": node_names(nodes)},
                      "rdma": {"resource_name": "rdma/rdma_shared_device_a", "per_pod": 1}},
    }


def stack(nodes: int, router_max: int = ROUTER_MAX) -> dict[str, Any]:
    # The context deploy.py sets anyway: the local plane's.
    return {"config": {"kubernetes:context": "moe-ep-local", "moe-ep:service": service(nodes, router_max)}}


def write_inputs(directory: Path, nodes: int) -> dict[str, Path]:
    """The fleet file, the stack file and its day-2 variant (same stack name, another folder)."""
    name = stack_name(nodes)
    paths = {"fleet": directory / f"fleet-{name}.yaml", "stack": directory / "base" / f"Pulumi.{name}.yaml",
             "day2": directory / "day2" / f"Pulumi.{name}.yaml"}
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    paths["fleet"].write_text(yaml.safe_dump(fleet(nodes), sort_keys=False))
    paths["stack"].write_text(yaml.safe_dump(stack(nodes), sort_keys=False))
    paths["day2"].write_text(yaml.safe_dump(stack(nodes, ROUTER_MAX + 1), sort_keys=False))
    return paths


def expected_pods(manifests: list[dict[str, Any]]) -> int:
    """Pods the rendered objects make: every LeaderWorkerSet's units x their size, every
    Deployment's replicas."""
    pods = 0
    for obj in manifests:
        spec = obj.get("spec") or {}
        if obj["kind"] == "LeaderWorkerSet":
            pods += spec.get("replicas", 1) * spec["leaderWorkerTemplate"].get("size", 1)
        elif obj["kind"] == "Deployment":
            pods += spec.get("replicas", 1)
    return pods


def plane_env(plane_dir: Path, port_offset: int, fleet_file: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "MOE_EP_PLANE_DIR": str(plane_dir), "MOE_EP_PLANE_PORT_OFFSET": str(port_offset)}
    if fleet_file is not None:
        env["MOE_EP_FLEET"] = str(fleet_file)
    return env


def plane_down(plane_dir: Path, port_offset: int) -> None:
    """Stop the benchmark's plane (only it: e2e/plane.py stops the processes its folder's pid files
    name, and only if their command line holds that folder)."""
    subprocess.run([sys.executable, str(PLANE_SCRIPT), "down"], env=plane_env(plane_dir, port_offset), cwd=ROOT,
                   capture_output=True, text=True, check=False)


def measure_in_child(nodes: int, directory: Path, plane_dir: Path, port_offset: int, index: int = 0) -> dict[str, Any]:
    """One size in a fresh interpreter whose environment points plane.py and deploy.py at the
    benchmark's plane; the child prints one JSON line, its progress goes to stderr."""
    paths = write_inputs(directory, nodes)
    done = subprocess.run([sys.executable, "-m", "benchmarks", "live-child", str(nodes), str(directory), str(index)],
                          env=plane_env(plane_dir, port_offset, paths["fleet"]), cwd=ROOT,
                          stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"live benchmark at {nodes} nodes failed (exit {done.returncode}); "
                           f"logs in {plane_dir / 'logs'}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the child ---------------------------------------------------------------------------------

class Api:
    """GETs against the plane's API server as its admin (no kubectl process per poll)."""

    def __init__(self, plane: Any):
        self.base = plane.API
        self.context = ssl.create_default_context(cafile=str(plane.PKI / "ca.crt"))
        self.context.load_cert_chain(plane.PKI / "admin.crt", plane.PKI / "admin.key")

    def get(self, path: str, accept: str = "application/json") -> dict[str, Any] | None:
        request = urllib.request.Request(self.base + path, headers={"Accept": accept})
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

    def pods(self, namespace: str) -> tuple[int, int]:
        """(pods, pods bound to a node) in ``namespace``, from the server's table (small answers)."""
        table = self.get(f"/api/v1/namespaces/{namespace}/pods?includeObject=None",
                         accept="application/json;as=Table;v=v1;g=meta.k8s.io")
        if table is None:
            return 0, 0
        node = [c["name"] for c in table["columnDefinitions"]].index("Node")
        rows = table["rows"]
        return len(rows), sum(1 for r in rows if r["cells"][node] not in ("<none>", "", None))

    def gone(self, namespace: str) -> bool:
        return self.get(f"/api/v1/namespaces/{namespace}") is None


class BoundWatch:
    """Polls, from ``start``, until ``expected`` pods of the namespace are bound; ``seconds()`` is
    the time from ``start`` to the first poll that saw them all."""

    INTERVAL = 0.25

    def __init__(self, api: Api, namespace: str, expected: int):
        self.api, self.namespace, self.expected = api, namespace, expected
        self.found: float | None = None
        self.last = (0, 0)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> float:
        self.started = time.perf_counter()
        self.thread.start()
        return self.started

    def _run(self) -> None:
        deadline = self.started + BOUND_TIMEOUT
        while time.perf_counter() < deadline:
            try:
                self.last = self.api.pods(self.namespace)
            except (OSError, urllib.error.URLError, ssl.SSLError, ValueError):
                pass
            if self.last[1] >= self.expected:
                self.found = time.perf_counter()
                return
            time.sleep(self.INTERVAL)

    def seconds(self) -> float:
        self.thread.join(BOUND_TIMEOUT)
        if self.found is None:
            raise RuntimeError(f"{self.namespace}: {self.last[1]} of {self.expected} pods bound "
                               f"({self.last[0]} exist) after {BOUND_TIMEOUT:.0f} s")
        return self.found - self.started


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PLANE_GROUP = "control plane"
GROUPS = {"pulumi": "pulumi CLI (engine)", "pulumi-resource-kubernetes": "kubernetes provider",
          "pulumi-resource-pulumi-python": "dynamic provider (API key)", "kubectl": "kubectl"}


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds so far) of a process, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _group(pid: int) -> str:
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return "other"
    name = Path(argv0).name or "other"  # empty: caught in the middle of exec
    if name.startswith("python"):  # what the dynamic-provider plugin runs: python -m pulumi.dynamic
        return GROUPS["pulumi-resource-pulumi-python"]
    return GROUPS.get(name, name)


class CpuSampler:
    """CPU seconds by process while an operation runs: this process (the inline program, the
    Automation API, the pod poller), each descendant it starts (the CLI, its provider plugins,
    kubectl), grouped by program, and the control plane's components. Descendants are read from
    /proc every 0.2 s, so up to that much of a process's last slice before it exits is missed."""

    INTERVAL = 0.2

    def __init__(self, plane_pids: list[int]):
        self.plane_pids = plane_pids
        self.seen: dict[int, tuple[str, float, float]] = {}  # pid -> (group, first, last CPU seconds)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _descendants(self) -> list[int]:
        parents: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                found = _stat(int(entry.name))
                if found:
                    parents.setdefault(found[0], []).append(int(entry.name))
        out, todo = [], [os.getpid()]
        while todo:
            children = parents.get(todo.pop(), [])
            out.extend(children)
            todo.extend(children)
        return out

    def _sample(self, pids: list[int], new_from_zero: bool) -> None:
        for pid in pids:
            found = _stat(pid)
            if found is None:
                continue
            if pid in self.seen:
                group, first, _ = self.seen[pid]
                self.seen[pid] = (group, first, found[1])
            else:
                group = PLANE_GROUP if pid in self.plane_pids else _group(pid)
                self.seen[pid] = (group, 0.0 if new_from_zero else found[1], found[1])

    def _run(self) -> None:
        while not self.stop_event.wait(self.INTERVAL):
            self._sample(self._descendants(), True)
            self._sample(self.plane_pids, False)

    def start(self) -> None:
        self.self_start = os.times()
        self._sample(self._descendants(), False)  # what runs already counts from now
        self._sample(self.plane_pids, False)
        self.thread.start()

    def stop(self) -> dict[str, float]:
        self.stop_event.set()
        self.thread.join()
        self._sample(self._descendants(), True)
        self._sample(self.plane_pids, False)
        own = os.times()
        groups = {"this process (program, Automation API)":
                  own.user + own.system - self.self_start.user - self.self_start.system}
        for group, first, last in self.seen.values():
            groups[group] = groups.get(group, 0.0) + last - first
        return {g: round(v, 1) for g, v in sorted(groups.items(), key=lambda kv: -kv[1]) if v >= 0.05}


def _progress(message: str) -> None:
    print(f"  live: {message}", file=sys.stderr, flush=True)


def _wait_gone(api: Api, namespace: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not api.gone(namespace):
        if time.monotonic() > deadline:
            raise RuntimeError(f"namespace {namespace} still there {timeout:.0f} s after the delete")
        time.sleep(0.5)


def _changes(summary: dict[str, int]) -> dict[str, int]:
    """What an operation changes: reads (the CRDs and nodes the stack looks up) change nothing."""
    return {op: n for op, n in summary.items() if op not in ("same", "read") and n}


def _timed(plane_pids: list[int], action, watch: BoundWatch | None = None) -> tuple[float, dict[str, float], Any]:
    """Wall seconds, CPU seconds by process group, and the result of ``action()``."""
    sampler = CpuSampler(plane_pids)
    sampler.start()
    start = watch.start() if watch else time.perf_counter()
    result = action()
    seconds = time.perf_counter() - start
    return seconds, sampler.stop(), result


SKIP_CHECKPOINTS = "PULUMI_SKIP_CHECKPOINTS"
"""The CLI then writes the state once at the end instead of after every step (unsafe: a crash
mid-update loses what was done); the benchmark runs moe-ep once more with it, to show what the
file backend's per-step checkpoints cost."""


def run_moe_ep(deploy: Any, api: Api, paths: dict[str, Path], expected: int, log, plane_pids: list[int],
               skip_checkpoints: bool = False) -> dict[str, Any]:
    if skip_checkpoints:
        os.environ[SKIP_CHECKPOINTS] = "true"  # the CLI inherits this process's environment
    try:
        return _run_moe_ep(deploy, api, paths, expected, log, plane_pids)
    finally:
        os.environ.pop(SKIP_CHECKPOINTS, None)


def _run_moe_ep(deploy: Any, api: Api, paths: dict[str, Path], expected: int, log, plane_pids: list[int]) -> dict[str, Any]:
    prog = deploy.program(str(paths["stack"]))
    selected, _ = deploy.stack(prog)  # builds nothing when cached; creates the stack (untimed)
    row: dict[str, Any] = {"cpu": {}, "changes": {}}
    watch = BoundWatch(api, NAMESPACE, expected)
    row["up_s"], row["cpu"]["up_s"], up = _timed(plane_pids, lambda: selected.up(color="never", on_output=log), watch)
    row["bound_s"] = watch.seconds()
    row["changes"]["up_s"] = _changes(up.summary.resource_changes or {})
    # What the file backend rewrites after every step.
    row["state_kb"] = round(len(json.dumps(selected.export_stack().deployment)) / 1024)
    _progress(f"pulumi up {row['up_s']:.1f} s, bound {row['bound_s']:.1f} s")

    row["preview_s"], row["cpu"]["preview_s"], preview = _timed(
        plane_pids, lambda: selected.preview(color="never", on_output=log))
    row["changes"]["preview_s"] = _changes(preview.change_summary)
    if row["changes"]["preview_s"]:
        raise RuntimeError(f"pulumi preview right after up is not empty: {row['changes']['preview_s']}")

    changed, _ = deploy.stack(deploy.program(str(paths["day2"])))  # the same stack, its file edited
    row["day2_s"], row["cpu"]["day2_s"], day2 = _timed(plane_pids, lambda: changed.up(color="never", on_output=log))
    row["changes"]["day2_s"] = _changes(day2.summary.resource_changes or {})
    if row["changes"]["day2_s"] != {"update": 1}:
        raise RuntimeError(f"the day-2 change made {row['changes']['day2_s']}, not one update")

    row["destroy_s"], row["cpu"]["destroy_s"], _ = _timed(plane_pids, lambda: changed.destroy(color="never", on_output=log))
    _wait_gone(api, NAMESPACE)
    deploy.forget(changed, prog)
    _progress(f"preview {row['preview_s']:.1f} s, day-2 {row['day2_s']:.1f} s, destroy {row['destroy_s']:.1f} s")
    return row


def run_kubectl(plane: Any, api: Api, rendered: dict[str, Path], nodes: int, expected: int, log,
                plane_pids: list[int]) -> dict[str, Any]:
    def kubectl(*args: str, input_text: str | None = None) -> None:
        done = plane.kubectl(*args, input_text=input_text, check=False)
        log(f"kubectl {' '.join(args[:3])}: exit {done.returncode}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        # diff exits 1 when something differs: a no-change diff must exit 0 like the rest.
        if done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-2000:]}")

    ssa = ("--server-side", f"--field-manager={FIELD_MANAGER}")
    objects = sorted(p for p in rendered["day2"].glob("*.yaml") if yaml.safe_load(p.read_text())["kind"] != "Node")
    released = "\n---\n".join(json.dumps({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}})
                              for n in node_names(nodes))

    def delete() -> None:
        kubectl("delete", "--wait=true", *[a for p in objects for a in ("-f", str(p))])
        kubectl("apply", *ssa, "-f", "-", input_text=released)

    row: dict[str, Any] = {"cpu": {}}
    watch = BoundWatch(api, NAMESPACE, expected)
    row["up_s"], row["cpu"]["up_s"], _ = _timed(plane_pids, lambda: kubectl("apply", *ssa, "-f", str(rendered["stack"])), watch)
    row["bound_s"] = watch.seconds()
    _progress(f"kubectl apply {row['up_s']:.1f} s, bound {row['bound_s']:.1f} s")
    row["preview_s"], row["cpu"]["preview_s"], _ = _timed(plane_pids, lambda: kubectl("diff", *ssa, "-f", str(rendered["stack"])))
    row["day2_s"], row["cpu"]["day2_s"], _ = _timed(plane_pids, lambda: kubectl("apply", *ssa, "-f", str(rendered["day2"])))
    row["destroy_s"], row["cpu"]["destroy_s"], _ = _timed(plane_pids, delete)
    _wait_gone(api, NAMESPACE)
    _progress(f"diff {row['preview_s']:.1f} s, day-2 {row['day2_s']:.1f} s, delete {row['destroy_s']:.1f} s")
    return row


def _node_patches_gone(plane: Any, nodes: int) -> None:
    """Both paths leave the fleet as the plane posted it: no label, taint or annotation of theirs."""
    listed = json.loads(plane.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    ours = [n["metadata"]["name"] for n in listed
            if n["metadata"]["name"] in set(node_names(nodes))
            and ("moe-ep.io/pool" in n["metadata"].get("labels", {}) or n["spec"].get("taints"))]
    if ours:
        raise RuntimeError(f"nodes still labelled or tainted after the delete: {', '.join(ours[:5])}")


METRICS = ("up_s", "bound_s", "preview_s", "day2_s", "destroy_s")


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 2)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def child(nodes: int, directory: Path, index: int = 0) -> dict[str, Any]:
    """One size, in this interpreter, on the plane the environment names (see the module)."""
    sys.path.insert(0, str(ROOT / "e2e"))
    import deploy  # noqa: PLC0415 - e2e/deploy.py and e2e/plane.py read the plane's env on import
    import plane  # noqa: PLC0415

    name = stack_name(nodes)
    paths = {"stack": directory / "base" / f"Pulumi.{name}.yaml", "day2": directory / "day2" / f"Pulumi.{name}.yaml"}
    logs = plane.LOGS
    start = time.perf_counter()
    plane.down(quiet=True)
    plane.up()
    plane_up = time.perf_counter() - start
    # Discovery, cached under ~/.kube/cache for kubectl and the provider alike, read once before
    # either is timed: the first client against a new API server would pay some 5 s for it.
    plane.kubectl("api-resources")
    logs.mkdir(parents=True, exist_ok=True)
    log_file = (logs / f"bench-{name}.log").open("w")

    def log(line: str) -> None:
        log_file.write(line + "\n")

    rendered = {}
    render_s = 0.0
    for key in ("stack", "day2"):
        rendered[key] = directory / f"rendered-{key}-{name}"
        shutil.rmtree(rendered[key], ignore_errors=True)
        start = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "moe-ep"), "render", "--config", str(paths[key]),
                        "--out", str(rendered[key])], check=True, capture_output=True, text=True, cwd=ROOT)
        if key == "stack":
            render_s = time.perf_counter() - start
    manifests = [yaml.safe_load(p.read_text()) for p in sorted(rendered["stack"].glob("*.yaml"))]
    expected = expected_pods(manifests)
    api = Api(plane)
    row: dict[str, Any] = {"nodes": nodes, "gpus": nodes * GPUS_PER_NODE, "kubernetes_objects": len(manifests),
                           "pods": expected, "plane_up_s": round(plane_up, 1), "render_s": round(render_s, 2)}
    plane_pids = [pid for pid in (plane._pid(c) for c in plane.COMPONENTS) if pid is not None]
    runs = {
        "moe_ep": lambda: run_moe_ep(deploy, api, paths, expected, log, plane_pids),
        "moe_ep_no_checkpoints": lambda: run_moe_ep(deploy, api, paths, expected, log, plane_pids, skip_checkpoints=True),
        "kubectl": lambda: run_kubectl(plane, api, rendered, nodes, expected, log, plane_pids),
    }
    # The order rotates from size to size (``index``), so none always runs on the freshest plane.
    names = list(runs)
    shift = index % len(names)
    results = {}
    for which in names[shift:] + names[:shift]:
        _progress(f"{which} at {nodes} nodes")
        results[which] = runs[which]()
        _node_patches_gone(plane, nodes)
    log_file.close()
    row["order"] = list(results)
    for which, values in results.items():
        row[which] = _rounded(values)
    row["ratios"] = {k: round(results["moe_ep"][k] / results["kubectl"][k], 2) for k in METRICS}
    return row
