"""Blast radius, live (issue 22): the day-2 changes of benchmarks/blast_radius.py applied with
`pulumi up` to the stack `make bench` edits, on the local plane; the vLLM pods whose UID changed,
that were added or removed are the ones the replay predicts.

To stay within about 4 minutes (a `pulumi up` is 10-20 s here) the changes are chained, each on
top of the one before (11 `pulumi up` runs instead of 25), and two are left to `make bench`, which
runs all twelve each on the base and restores it after: "dashboard folder", whose one object (the
dashboard ConfigMap) "alert thresholds" changes too, and "router replicas", whose one object is
the router's HPA (a Deployment's: no unit, no vLLM pod; HPA edits on units stay covered)."""

from __future__ import annotations

import pytest

from benchmarks import blast_radius, blast_radius_live

from .live import ROOT

pytestmark = pytest.mark.e2e

STACK = "prod"
"""`python -m benchmarks --blast-stack`'s default: the only stack the changes are written for
(an existing node pool, both pools autoscaled)."""
PREFILL_MIN = "HPA bounds (prefill min 1->2, max 3->4, target 4->8)"
LEFT_TO_THE_BENCHMARK = ("dashboard folder (moe-ep->llm)", "router replicas (2..6 -> 3..10)")
CHANGES = tuple(c for c in blast_radius.CHANGES if c.name not in LEFT_TO_THE_BENCHMARK)


def test_every_day2_change_restarts_the_pods_the_replay_predicts(plane):
    assert len(CHANGES) == len(blast_radius.CHANGES) - len(LEFT_TO_THE_BENCHMARK)
    rows = blast_radius_live.measure(ROOT / "stacks" / f"Pulumi.{STACK}.yaml", CHANGES, chain=True)
    assert [r["change"] for r in rows[1:]] == [c.name for c in CHANGES]
    assert all(r["agree"] for r in rows), [r for r in rows if not r["agree"]]
    base, changes = rows[0], {r["change"]: r for r in rows[1:]}
    assert (base["live_added"], base["live_pods_restarted"]) == (2, 0), base  # one prefill and one decode unit
    for change in CHANGES:
        row = changes[change.name]
        if change.serving:
            assert row["live_pods_restarted"] >= 1, row
        else:
            assert row["live_pods_restarted"] == 0, row
        # Scaling adds only the unit its autoscaler's new minimum asks for; nothing else adds or removes pods.
        assert (row["live_added"], row["live_removed"]) == ((1, 0) if change.name == PREFILL_MIN else (0, 0)), row
    # Both pools roll on a new image: the decode unit and, since the minimum went to 2, both prefill units.
    assert changes["control: image from a mirror registry"]["live_pods_restarted"] == 3
