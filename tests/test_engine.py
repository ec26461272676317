"""The offline engine's own policies: the cyclic garbage collector pauses while a program runs
and is back as the caller had it afterwards, whether the program succeeds or raises."""

from __future__ import annotations

import gc

import pytest

from moe_ep import engine

PROGRAM = """
import gc
import pulumi

pulumi.export("collecting", gc.isenabled())
if pulumi.Config("test").get_bool("fail"):
    raise RuntimeError("the program failed")
"""


@pytest.fixture
def program(tmp_path):
    path = tmp_path / "__main__.py"
    path.write_text(PROGRAM)
    return path


def test_collection_pauses_during_a_run_and_resumes_after(program):
    assert gc.isenabled()
    run = engine.run_program(program, {}, "test")
    assert run.outputs == {"collecting": False}
    assert gc.isenabled()


def test_collection_resumes_after_a_failed_run(program):
    with pytest.raises(Exception, match="the program failed"):
        engine.run_program(program, {"test:fail": "true"}, "test")
    assert gc.isenabled()


def test_a_caller_that_disabled_collection_keeps_it_disabled(program):
    gc.disable()
    try:
        engine.run_program(program, {}, "test")
        assert not gc.isenabled()
    finally:
        gc.enable()
