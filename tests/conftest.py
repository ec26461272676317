"""Shared fixtures: the project, its stacks, and each stack planned once per session."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import pytest
from hypothesis import settings

from moe_ep import plan as planning

# CI (HYPOTHESIS_PROFILE=ci, set by .ci/run) runs 1,000 examples per property and fuzz test; local
# runs keep hypothesis' default of 100. No deadline: fuzz examples run the whole program.
settings.register_profile("ci", max_examples=1000, deadline=None)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

ROOT = Path(__file__).resolve().parent.parent
STACKS = sorted(p.name.split(".")[1] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))
CRD_DIR = Path(os.environ.get("MOE_EP_CRD_DIR", ROOT.parent / "shared" / "crds"))


@cache
def planned(stack: str) -> planning.Plan:
    return planning.build(planning.stack_file(ROOT, stack), ROOT, stack)


@pytest.fixture(params=STACKS)
def stack(request) -> str:
    return request.param


@pytest.fixture
def crd_dir() -> Path:
    if not (CRD_DIR / "leaderworkerset.x-k8s.io_leaderworkersets.yaml").is_file():
        pytest.fail(f"CRD folder {CRD_DIR} is missing: set MOE_EP_CRD_DIR (CI points it at ../shared/crds)")
    return CRD_DIR


def objects_of(plan: planning.Plan, kind: str) -> list[dict]:
    return [o for o in plan.objects if o["kind"] == kind]
