"""checkov over rendered manifests, offline, with the pod templates of LeaderWorkerSets in view.

checkov is blind to custom resources, so every LWS pod template is also written as a scan-only
shadow Deployment that carries the LWS's checkov skip annotations (the skips live on the real
object; see components/scanning.py).

checkov runs from its own virtualenv (``make install-checkov``): its pins (packaging<24,
networkx<2.7, cachetools<6) cannot be installed beside pulumi's (packaging>=26) and vLLM's.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.scanning import SKIP_ANNOTATION_PREFIX
from moe_ep import manifests

ROOT = Path(__file__).resolve().parent.parent
CHECKOV_ENV = "MOE_EP_CHECKOV"
DEFAULT_CHECKOV = ROOT / ".venv" / "checkov" / "bin" / "checkov"
INSTALL_HINT = f"checkov is not installed: run `make install-checkov` (or set {CHECKOV_ENV} to a checkov 3.3.30 binary)"
# No Bridgecrew/Prisma API: no key, no ID mapping download, no PyPI update check.
OFFLINE_ENV = {"BC_SKIP_MAPPING": "TRUE", "CKV_SKIP_PACKAGE_UPDATE_CHECK": "TRUE"}
_API_ENV = ("BC_API_KEY", "PRISMA_API_URL", "BC_API_URL")
_TEMPLATES = ("leaderTemplate", "workerTemplate")


def shadow_deployments(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One Deployment per LeaderWorkerSet pod template, named ``<lws>-leader|worker``, with the
    same pod template and the LWS's checkov skip annotations. Pure; for scanning only."""
    shadows = []
    for lws in objects:
        if lws["kind"] != "LeaderWorkerSet":
            continue
        meta = lws["metadata"]
        skips = {k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith(SKIP_ANNOTATION_PREFIX)}
        for key in _TEMPLATES:
            template = lws["spec"]["leaderWorkerTemplate"].get(key)
            if template is None:
                continue
            metadata = {"name": f"{meta['name']}-{key.removesuffix('Template')}", "namespace": meta["namespace"]}
            if skips:
                metadata["annotations"] = skips
            shadows.append({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": metadata,
                "spec": {"replicas": 1, "selector": {"matchLabels": template["metadata"]["labels"]}, "template": template},
            })
    return shadows


@dataclass(frozen=True)
class Finding:
    check: str
    resource: str  # checkov's id: Kind.namespace.name
    reason: str  # suppress comment for a skip, the check's name otherwise


@dataclass(frozen=True)
class Scan:
    passed: tuple[Finding, ...]
    failed: tuple[Finding, ...]
    skipped: tuple[Finding, ...]
    seconds: float


def checkov_binary() -> Path | None:
    path = Path(os.environ.get(CHECKOV_ENV) or DEFAULT_CHECKOV)
    return path if path.is_file() else None


def _findings(rows: list[dict[str, Any]], skipped: bool) -> tuple[Finding, ...]:
    return tuple(
        Finding(r["check_id"], r["resource"], (r.get("suppress_comment") if skipped else r.get("check_name")) or "")
        for r in rows
    )


def scan(objects: list[dict[str, Any]], folder: Path, binary: Path) -> Scan:
    """Write ``objects`` and their shadow Deployments into ``folder`` and run checkov on it."""
    manifests.write(objects + shadow_deployments(objects), folder)
    env = {k: v for k, v in os.environ.items() if k not in _API_ENV} | OFFLINE_ENV
    start = time.perf_counter()
    result = subprocess.run(
        [str(binary), "--directory", str(folder), "--framework", "kubernetes", "--skip-download",
         "--output", "json", "--compact"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    seconds = time.perf_counter() - start
    # Exit 1 means "checks failed"; anything else but 0 is a crash.
    if result.returncode not in (0, 1):
        raise RuntimeError(f"checkov exited {result.returncode}: {result.stderr[-2000:]}")
    report = json.loads(result.stdout)
    if isinstance(report, list):  # one report per framework; only kubernetes was asked for
        [report] = [r for r in report if r.get("check_type") == "kubernetes"]
    results = report.get("results") or {}
    if not results:  # checkov found nothing to scan: that is no scan at all
        raise RuntimeError(f"checkov scanned nothing in {folder}: {result.stdout[-2000:]}")
    return Scan(
        passed=_findings(results.get("passed_checks", []), False),
        failed=_findings(results.get("failed_checks", []), False),
        skipped=_findings(results.get("skipped_checks", []), True),
        seconds=seconds,
    )
