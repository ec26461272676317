"""The API key's dynamic provider, run as the Pulumi CLI runs it: `python -m pulumi.dynamic`, in a
directory outside the project, given the serialized provider the program registered."""

from __future__ import annotations

import re
import subprocess
import sys

import grpc
from google.protobuf import struct_pb2
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from components import api_key

from .conftest import planned

DIFF_NONE, DIFF_SOME = provider_pb2.DiffResponse.DIFF_NONE, provider_pb2.DiffResponse.DIFF_SOME


def _struct(value: dict) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


def test_the_key_is_drawn_once_and_replaced_only_by_length_or_keepers(tmp_path):
    key = next(r for r in planned("dev").run.resources if r.type == api_key.KEY_TYPE)
    assert len(key.inputs["__provider"]) < 100, "the provider is pickled by reference, holding no state"
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.dynamic"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        port = int(re.match(r"\d+", proc.stdout.readline().strip()).group(0))
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = provider_pb2_grpc.ResourceProviderStub(channel)
            news = {**key.inputs, "keepers": {"rotated": "2026-11"}}

            def create() -> dict:
                return dict(stub.Create(provider_pb2.CreateRequest(urn=key.urn, properties=_struct(news)), timeout=60).properties)

            first, second = create(), create()
            assert len(first["result"]) == 48 and set(first["result"]) <= set(api_key.ALPHABET)
            assert first["result"] != second["result"]
            assert {k: first[k] for k in ("length", "keepers")} == {"length": 48, "keepers": {"rotated": "2026-11"}}

            def diff(**changed) -> provider_pb2.DiffResponse:
                request = provider_pb2.DiffRequest(id="x", urn=key.urn, olds=_struct(first), news=_struct({**news, **changed}))
                return stub.Diff(request, timeout=60)

            assert diff().changes == DIFF_NONE
            assert list(diff(keepers={"rotated": "2027-01"}).replaces) == ["keepers"]
            assert list(diff(length=64).replaces) == ["length"]
            updated = stub.Update(provider_pb2.UpdateRequest(id="x", urn=key.urn, olds=_struct(first), news=_struct(news)), timeout=60)
            assert updated.properties["result"] == first["result"]
    finally:
        proc.kill()
        proc.wait()


def test_no_keepers_and_empty_keepers_are_the_same_and_a_new_provider_keeps_the_key():
    olds = {"length": 48.0, "keepers": None, "result": "k", "__provider": "a"}
    provider = api_key._KeyProvider()  # noqa: SLF001 - the provider is private to the module
    unchanged = provider.diff("x", olds, {"length": 48.0, "keepers": {}, "__provider": "a"})
    assert (unchanged.changes, unchanged.replaces) == (False, [])
    moved = provider.diff("x", olds, {"length": 48.0, "__provider": "b"})
    assert (moved.changes, moved.replaces) == (True, [])
