"""Run a Pulumi program offline: the real program under the SDK's mock runtime.

No Pulumi CLI, no provider plugins, no cluster. Every registration is recorded (type, name,
parent, inputs, options) so the caller can render manifests and run the policy pack on exactly
what ``pulumi up`` would send to the providers.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import runpy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks, settings

from components import api_key

PROJECT = "moe-ep"
STACK_TYPE = "pulumi:pulumi:Stack"


@dataclass(frozen=True)
class Registration:
    """One resource the program registered, as the engine would receive it."""

    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    ignore_changes: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()
    protect: bool = False
    delete_before_replace: bool = False
    aliases: tuple[str, ...] = ()
    """Each alias sent with the registration, as compact JSON of its wire form."""
    version: str = ""
    """The provider plugin version the registration asks for ("" for a component or none)."""
    additional_secret_outputs: tuple[str, ...] = ()
    """Outputs the engine must keep secret in the state beyond those with secret inputs (sorted)."""
    read_id: str = ""
    """For a read (``Run.reads``): the id of the object read."""

    @property
    def kind(self) -> str:
        """A Kubernetes object's kind as its provider type names it (``NodePatch``), else the
        type's last part (a component's class, ``GeneratedKey``)."""
        return self.type.rsplit(":", 1)[-1]

    @property
    def parent_name(self) -> str:
        return self.parent.rsplit("::", 1)[-1] if self.parent else ""


@dataclass
class Run:
    """What one program run registered, and the stack's exports."""

    project: str
    stack: str
    resources: list[Registration] = field(default_factory=list)
    reads: list[Registration] = field(default_factory=list)
    """Objects the program reads from the cluster instead of managing (``KubernetesObject.read``)."""
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)

    def custom(self) -> list[Registration]:
        return [r for r in self.resources if r.custom]

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_]


def _invented(args: mocks.MockResourceArgs) -> dict[str, Any]:
    """Provider outputs a real provider would compute, invented deterministically."""
    state = dict(args.inputs)
    if args.typ == api_key.KEY_TYPE:
        length = int(state["length"])  # a wire number: a float
        seed = hashlib.sha256(f"moe-ep-mock:{args.name}".encode()).hexdigest()
        state["result"] = (seed * (length // len(seed) + 1))[:length]
    return state


class _Mocks(mocks.Mocks):
    def new_resource(self, args: mocks.MockResourceArgs):
        return f"{args.name}-id", _invented(args)

    def call(self, args: mocks.MockCallArgs):
        return {}


class _RecordingMonitor(mocks.MockMonitor):
    def __init__(self, run: Run):
        super().__init__(_Mocks())
        self.run = run

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != STACK_TYPE:
            inputs = pulumi.runtime.rpc.deserialize_properties(request.object, keep_unknowns=True)
            self.run.resources.append(Registration(
                urn=response.urn,
                type=request.type,
                name=request.name,
                parent=request.parent,
                custom=bool(request.custom),
                inputs=_plain(inputs),
                ignore_changes=tuple(request.ignoreChanges),
                dependencies=tuple(sorted(request.dependencies)),
                protect=bool(request.protect),
                delete_before_replace=bool(request.deleteBeforeReplace),
                aliases=tuple(_alias_text(alias) for alias in request.aliases),
                version=request.version,
                additional_secret_outputs=tuple(sorted(set(request.additionalSecretOutputs))),
            ))
        return response

    def ReadResource(self, request):
        response = super().ReadResource(request)
        self.run.reads.append(Registration(
            urn=response.urn, type=request.type, name=request.name, parent=request.parent, custom=True,
            inputs=_plain(pulumi.runtime.rpc.deserialize_properties(request.properties, keep_unknowns=True)),
            dependencies=tuple(sorted(request.dependencies)), version=request.version, read_id=request.id,
        ))
        return response


def _alias_text(alias: Any) -> str:
    return json.dumps(json_format.MessageToDict(alias), sort_keys=True, separators=(",", ":"))


_SECRET_SIG = pulumi.runtime.rpc._special_secret_sig  # noqa: SLF001 - the wire marker of a secret


def _plain(value: Any) -> Any:
    """Secrets unwrapped to their values, mappings as plain dicts (the wire form, decoded)."""
    if isinstance(value, dict):
        if value.get(pulumi.runtime.rpc._special_sig_key) == _SECRET_SIG:  # noqa: SLF001
            return _plain(value["value"])
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def run_program(program: Path, config: dict[str, Any], stack: str, project: str = PROJECT) -> Run:
    """Run ``program`` (a Pulumi ``__main__.py``) with ``config`` (``ns:key`` -> value) under
    mocks, and return everything it registered. Exceptions from the program propagate."""
    run = Run(project=project, stack=stack)
    settings.reset_options()
    pulumi.runtime.set_all_config(
        {key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()}, []
    )
    pulumi.runtime.set_mocks(_Mocks(), project=project, stack=stack, preview=False, monitor=_RecordingMonitor(run))
    program = program.resolve()

    async def _exports() -> None:
        # Under mocks the root stack finished before the program ran, so its exports are read here.
        for name, value in sorted(settings.get_root_resource().outputs.items()):
            output = pulumi.Output.from_input(value)
            run.outputs[name] = _plain(await output.future())
            if await output._is_secret:  # noqa: SLF001 - the SDK has no public accessor
                run.secret_outputs.add(name)

    @pulumi.runtime.test
    def _main():
        sys.path.insert(0, str(program.parent))
        try:
            runpy.run_path(str(program), run_name="__main__")
        finally:
            sys.path.remove(str(program.parent))
        return pulumi.Output.from_input(_exports())

    with _cyclic_collection_paused():
        try:
            _main()
        finally:
            # Nothing of the finished run stays reachable from the SDK's globals (its root stack,
            # outputs and monitor), so the first collection after the run frees all of it.
            settings.reset_options()
    return run


@contextlib.contextmanager
def _cyclic_collection_paused() -> Iterator[None]:
    """No cyclic garbage collection while a program runs; reference counting still frees
    everything acyclic. The SDK builds a web of futures, tasks and outputs per resource that lives
    until the run ends, so collections during the run find little and rescan an ever larger heap.
    Collecting the young generation every 10,000 allocations, a fleet's time per service grew
    x1.3 from 10 to 100 services (``make bench``); paused, x0.95-1.12 in three runs (the bare
    SDK under the same engine: x0.94-0.97), for a peak RSS of about 400 MB at 100 services
    either way. The run's cycles are collected once, after it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
