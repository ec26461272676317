"""Run a Pulumi program offline: the real program under the SDK's mock runtime.

No Pulumi CLI, no provider plugins, no cluster. Every registration is recorded (type, name,
parent, inputs, options) so the caller can render manifests and run the policy pack on exactly
what ``pulumi up`` would send to the providers.

Two modes. By default the run is what ``pulumi up`` sees: providers' results are invented
(deterministically), so every value is known. With ``preview=True`` it is what the engine knows
on a fresh stack's first ``pulumi preview``: nothing is created yet, so a resource's outputs are
its inputs and whatever a provider would compute (the generated API key, server-set fields such as
``status``) is unknown, as are the values built from it (the Secret's ``stringData``, the stack's
``api_key`` output). Unknowns are ``pulumi.output.Unknown`` in the recorded values; ``wire``
turns them into the engine's wire sentinel, which the policy SDK treats as unknown.
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
from pulumi.output import Unknown
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
    computed: dict[str, Any] = field(default_factory=dict, compare=False)
    """Outputs the engine has beyond the inputs: what the provider computed (the API key's
    ``result``; nothing in preview mode), or a component's registered outputs."""

    @property
    def outputs(self) -> dict[str, Any]:
        """The resource's outputs as the engine holds them (and sends to stack policies): a
        custom resource's inputs plus what its provider computed (the Kubernetes provider returns
        the object it was given); a component's registered outputs."""
        return {**self.inputs, **self.computed}

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
    preview: bool = False
    """Run as a fresh stack's first preview (see the module's docstring)."""

    @property
    def stack_urn(self) -> str:
        return f"urn:pulumi:{self.stack}::{self.project}::{STACK_TYPE}::{self.project}-{self.stack}"

    def stack_resource(self) -> Registration:
        """The root stack as the engine shows it to policies: no inputs, the exports as outputs."""
        return Registration(urn=self.stack_urn, type=STACK_TYPE, name=f"{self.project}-{self.stack}", parent="",
                            custom=False, inputs={}, computed=dict(self.outputs))

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
    def __init__(self, preview: bool = False):
        self.preview = preview

    def new_resource(self, args: mocks.MockResourceArgs):
        # In a first preview nothing is created: the engine has a resource's inputs as its
        # outputs, and an output no input carries (the key's `result`, `status`) is unknown.
        return f"{args.name}-id", dict(args.inputs) if self.preview else _invented(args)

    def call(self, args: mocks.MockCallArgs):
        return {}


class _RecordingMonitor(mocks.MockMonitor):
    def __init__(self, run: Run):
        super().__init__(_Mocks(run.preview))
        self.run = run
        self.by_urn: dict[str, Registration] = {}

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """The URN the engine gives: the parent's whole type chain (the SDK's mock keeps only the
        parent's own type), and nothing of the root stack's type."""
        if parent:
            chain = parent.split("::")[2]
            if chain != STACK_TYPE:
                type_ = f"{chain}${type_}"
        return f"urn:pulumi:{self.run.stack}::{self.run.project}::{type_}::{name}"

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != STACK_TYPE:
            inputs = pulumi.runtime.rpc.deserialize_properties(request.object, keep_unknowns=True)
            plain = _plain(inputs)
            # What the provider returned beyond the inputs (decoded only when there is any).
            beyond = set(response.object.keys()) - set(request.object.keys()) if request.custom else set()
            outputs = _plain(pulumi.runtime.rpc.deserialize_properties(response.object, keep_unknowns=True)) if beyond else {}
            registration = Registration(
                urn=response.urn,
                type=request.type,
                name=request.name,
                parent=request.parent,
                custom=bool(request.custom),
                inputs=plain,
                ignore_changes=tuple(request.ignoreChanges),
                dependencies=tuple(sorted(request.dependencies)),
                protect=bool(request.protect),
                delete_before_replace=bool(request.deleteBeforeReplace),
                aliases=tuple(_alias_text(alias) for alias in request.aliases),
                version=request.version,
                additional_secret_outputs=tuple(sorted(set(request.additionalSecretOutputs))),
                computed={k: v for k, v in outputs.items() if k in beyond},
            )
            self.run.resources.append(registration)
            self.by_urn[registration.urn] = registration
        return response

    def RegisterResourceOutputs(self, request):
        registration = self.by_urn.get(request.urn)
        if registration is not None:  # the root stack's exports are read after the run
            registration.computed.update(_from_wire(json_format.MessageToDict(request.outputs)))
        return super().RegisterResourceOutputs(request)

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


def _from_wire(value: Any) -> Any:
    """A wire value as JSON (nulls kept, as the engine keeps them) with secrets unwrapped and
    unknowns as ``Unknown``."""
    if value == pulumi.runtime.rpc.UNKNOWN:
        return Unknown()
    if isinstance(value, list):
        return [_from_wire(v) for v in value]
    if isinstance(value, dict):
        if value.get(pulumi.runtime.rpc._special_sig_key) == _SECRET_SIG:  # noqa: SLF001
            return _from_wire(value["value"])
        return {k: _from_wire(v) for k, v in value.items()}
    return value


def _plain(value: Any) -> Any:
    """Secrets unwrapped to their values, mappings as plain dicts (the wire form, decoded)."""
    if isinstance(value, dict):
        if value.get(pulumi.runtime.rpc._special_sig_key) == _SECRET_SIG:  # noqa: SLF001
            return _plain(value["value"])
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def wire(value: Any) -> Any:
    """A recorded value as the engine sends it to an analyzer: unknowns as the wire sentinel."""
    if isinstance(value, Unknown):
        return pulumi.runtime.rpc.UNKNOWN
    if isinstance(value, dict):
        return {k: wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [wire(v) for v in value]
    return value


def run_program(program: Path, config: dict[str, Any], stack: str, project: str = PROJECT, preview: bool = False) -> Run:
    """Run ``program`` (a Pulumi ``__main__.py``) with ``config`` (``ns:key`` -> value) under
    mocks, and return everything it registered. ``preview``: as a fresh stack's first preview
    (see the module's docstring). Exceptions from the program propagate."""
    run = Run(project=project, stack=stack, preview=preview)
    settings.reset_options()
    pulumi.runtime.set_all_config(
        {key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()}, []
    )
    pulumi.runtime.set_mocks(_Mocks(preview), project=project, stack=stack, preview=preview, monitor=_RecordingMonitor(run))
    program = program.resolve()

    async def _exports() -> None:
        # Under mocks the root stack finished before the program ran, so its exports are read here.
        for name, value in sorted(settings.get_root_resource().outputs.items()):
            output = pulumi.Output.from_input(value)
            run.outputs[name] = _plain(await output.future(with_unknowns=True))
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
