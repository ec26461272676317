"""The local control plane for the end-to-end tests: started if it is not up (and then stopped at
the end of the session), never skipped: a missing tool or a component that does not start fails."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .live import ROOT, control_plane, deploy

PLANE = ROOT / "e2e" / "plane.py"


def _plane(action: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PLANE), action], capture_output=True, text=True, cwd=ROOT)


@pytest.fixture(scope="session")
def plane():
    started = not control_plane.healthy()
    if started:
        result = _plane("up")
        if result.returncode != 0:
            pytest.fail(f"the local control plane did not start:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    yield
    if started:
        _plane("down")


@pytest.fixture(scope="module")
def deployed(plane, request):
    """Every program of ``request.module.PROGRAMS`` brought up once, side by side; destroyed at the end."""
    names = request.module.PROGRAMS
    logs = {name: deploy("up", name).stdout for name in names}
    yield logs
    for name in names:
        deploy("destroy", name, check=False)
