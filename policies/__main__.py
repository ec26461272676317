"""The moe-ep policy pack: `pulumi preview --policy-pack policies` (see README)."""

import sys
from pathlib import Path

# The pack runs from its own folder; the rules read the components' catalog and argv knowledge.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policies.pack import NAME, policies  # noqa: E402

PolicyPack(NAME, policies(), EnforcementLevel.ADVISORY)
