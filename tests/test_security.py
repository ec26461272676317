"""Security: checkov over every stack (LWS pod templates as shadow Deployments), the skips it
accepts, Pod Security labels on the namespace, and pods that meet the level they must."""

from __future__ import annotations

import copy
import re
from collections import defaultdict

import pytest
import yaml

from components import ServiceSpec, namespace, scanning
from components.node_pool import security_tier
from components.placement import RESTRICTED_CONTAINER, device_container
from moe_ep import engine, manifests
from moe_ep import plan as planning

from . import checkov_scan
from .conftest import ROOT, objects_of, planned

SKIP_VALUE = re.compile(r"^(CKV2?_K8S_\d+)=([^=]+)$")
ROUTER_COMPONENTS = ("router", "scheduler")
# Pod Security Standards (v1.31): capabilities `baseline` allows to add, volumes `restricted` allows.
BASELINE_CAPABILITIES = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
                         "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}


@pytest.fixture(scope="module")
def checkov():
    binary = checkov_scan.checkov_binary()
    if binary is None:
        pytest.fail(checkov_scan.INSTALL_HINT)
    return binary


def skips_of(obj: dict) -> dict[str, str]:
    annotations = obj["metadata"].get("annotations") or {}
    return {k: v for k, v in annotations.items() if k.startswith(scanning.SKIP_ANNOTATION_PREFIX)}


def scanned_ids(obj: dict) -> list[str]:
    """checkov's resource ids for an object: itself, or the shadow Deployments of an LWS."""
    meta = obj["metadata"]
    if obj["kind"] == "LeaderWorkerSet":
        return [f"Deployment.{meta['namespace']}.{s['metadata']['name']}" for s in checkov_scan.shadow_deployments([obj])]
    return [f"{obj['kind']}.{meta.get('namespace', 'default')}.{meta['name']}"]


# --- checkov ----------------------------------------------------------------------------------


def test_checkov_passes_every_stack_and_every_skip_is_needed(stack, checkov, tmp_path):
    objects = planned(stack).objects
    result = checkov_scan.scan(objects, tmp_path / "as-rendered", checkov)
    assert result.failed == (), "\n".join(f"{f.check} {f.resource}: {f.reason}" for f in result.failed)
    assert result.passed and result.skipped
    # The shadows were scanned: checkov saw every LWS pod template.
    shadows = {i for o in objects_of(planned(stack), "LeaderWorkerSet") for i in scanned_ids(o)}
    assert shadows <= {f.resource for f in result.passed}

    # Without the annotations every skipped check must fail on the object that carries the skip.
    bare = copy.deepcopy(objects)
    for obj in bare:
        for key in skips_of(obj):
            del obj["metadata"]["annotations"][key]
    unskipped = checkov_scan.scan(bare, tmp_path / "without-skips", checkov)
    failing = defaultdict(set)
    for finding in unskipped.failed:
        failing[finding.resource].add(finding.check)
    for obj in objects:
        for key, value in skips_of(obj).items():
            check = value.split("=")[0]
            assert any(check in failing[i] for i in scanned_ids(obj)), f"{obj['kind']}/{obj['metadata']['name']} {key}: {check} passes without the skip"
    print(f"\ncheckov {stack}: {len(result.passed)} passed, {len(result.failed)} failed, {len(result.skipped)} skipped in {result.seconds:.1f} s")


def test_every_skip_is_an_annotation_with_a_check_id_and_a_reason(stack):
    for obj in planned(stack).objects:
        for key, value in skips_of(obj).items():
            assert re.fullmatch(r"checkov\.io/skip\d+", key), key
            match = SKIP_VALUE.match(value)
            assert match and match.group(2).strip(), f"{obj['kind']}/{obj['metadata']['name']} {key}: {value!r}"
            assert (match.group(1), match.group(2)) in {row for rows in scanning.CHECKOV_SKIPS.values() for row in rows}
        for template in _pod_templates(obj):
            assert not skips_of(template), "skips live on the object, not in its pod templates"


def test_the_skip_table_reasons_survive_checkovs_parser():
    for rows in scanning.CHECKOV_SKIPS.values():
        for check, reason in rows:
            assert re.fullmatch(r"CKV_K8S_\d+", check) and reason and "=" not in reason


def test_skip_annotations_are_numbered_in_table_order():
    assert scanning.skip_annotations("image", "scheduler") == {
        "checkov.io/skip1": "CKV_K8S_43=tags pinned, digests per registry",
        "checkov.io/skip2": f"CKV_K8S_38={scanning.CHECKOV_SKIPS['scheduler'][0][1]}",
    }


@pytest.mark.parametrize(("security_context", "size", "expected"), [
    (RESTRICTED_CONTAINER, 1, ("image", "vllm")),
    (RESTRICTED_CONTAINER, 2, ("image", "vllm", "vllm-headless-ranks")),
    (device_container(("IPC_LOCK",)), 1, ("image", "vllm", "vllm-rdma")),
    (device_container(("IPC_LOCK",), privileged=True), 2, ("image", "vllm", "vllm-headless-ranks", "vllm-privileged")),
])
def test_a_unit_takes_only_the_skips_its_pods_need(security_context, size, expected):
    assert scanning.unit_skip_kinds(security_context, size) == expected


def test_shadow_deployments_carry_the_pod_templates_and_only_the_skips():
    lws = objects_of(planned("staging"), "LeaderWorkerSet")
    shadows = checkov_scan.shadow_deployments(lws)
    templates = [t for o in lws for t in _pod_templates(o)]
    assert [s["spec"]["template"] for s in shadows] == templates and len(shadows) == 3  # prefill: 1, decode: leader + worker
    decode = next(o for o in lws if o["metadata"]["name"] == "deepseek-r1-decode")
    leader, worker = (s for s in shadows if s["metadata"]["name"].startswith("deepseek-r1-decode"))
    assert (leader["metadata"]["name"], worker["metadata"]["name"]) == ("deepseek-r1-decode-leader", "deepseek-r1-decode-worker")
    assert leader["metadata"]["annotations"] == skips_of(decode) != {}
    assert "moe-ep.io/architecture" not in leader["metadata"]["annotations"]


def test_a_missing_checkov_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv(checkov_scan.CHECKOV_ENV, str(tmp_path / "nope"))
    assert checkov_scan.checkov_binary() is None and "make install-checkov" in checkov_scan.INSTALL_HINT


# --- Pod Security ------------------------------------------------------------------------------


def _pod_templates(obj: dict) -> list[dict]:
    if obj["kind"] == "LeaderWorkerSet":
        lwt = obj["spec"]["leaderWorkerTemplate"]
        return [lwt[k] for k in ("leaderTemplate", "workerTemplate") if k in lwt]
    if obj["kind"] == "Deployment":
        return [obj["spec"]["template"]]
    return []


def pod_security_violations(pod: dict, level: str) -> list[str]:
    """What the Pod Security Standard ``level`` (baseline or restricted, v1.31) rejects in a pod spec."""
    found = []
    containers = pod.get("initContainers", []) + pod["containers"]
    pod_context = pod.get("securityContext") or {}
    if any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")):
        found.append("host namespaces")
    for volume in pod.get("volumes", []):
        kind = next(k for k in volume if k != "name")
        if kind == "hostPath" or (level == "restricted" and kind not in RESTRICTED_VOLUMES):
            found.append(f"volume {volume['name']}: {kind}")
    for c in containers:
        sc, name = c.get("securityContext") or {}, c["name"]
        added = set((sc.get("capabilities") or {}).get("add") or [])
        seccomp = (sc.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
        if sc.get("privileged"):
            found.append(f"{name}: privileged")
        if added - BASELINE_CAPABILITIES:
            found.append(f"{name}: adds {sorted(added - BASELINE_CAPABILITIES)}")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            found.append(f"{name}: hostPort")
        if seccomp == "Unconfined":
            found.append(f"{name}: seccomp Unconfined")
        if level != "restricted":
            continue
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []) or added - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: capabilities")
        if sc.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is not True or sc.get("runAsUser", pod_context.get("runAsUser")) == 0:
            found.append(f"{name}: may run as root")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccomp {seccomp}")
    return found


def namespace_of(stack: str) -> dict:
    [ns] = objects_of(planned(stack), "Namespace")
    return ns


def test_the_namespace_carries_pod_security_labels(stack):
    spec = planned(stack).spec
    labels = namespace_of(stack)["metadata"]["labels"]
    rdma = any(security_tier(spec, role) != "restricted" for role in spec.pools())
    assert namespace_of(stack)["metadata"]["name"] == spec.namespace
    assert labels["pod-security.kubernetes.io/enforce"] == ("privileged" if rdma else "baseline")
    assert labels["pod-security.kubernetes.io/warn"] == labels["pod-security.kubernetes.io/audit"] == "restricted"
    for mode in ("enforce", "warn", "audit"):
        assert labels[f"pod-security.kubernetes.io/{mode}-version"] == "v1.31"


def test_rdma_stacks_enforce_privileged_and_dev_baseline():
    assert [namespace_of(s)["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] for s in ("dev", "staging", "prod")] == [
        "baseline", "privileged", "privileged"]


def test_the_enforced_level_is_the_least_that_admits_every_pod(stack):
    level = namespace_of(stack)["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
    baseline = {o["metadata"]["name"]: v for o in planned(stack).objects for t in _pod_templates(o)
                if (v := pod_security_violations(t["spec"], "baseline"))}
    # privileged admits everything, so it is only right when some pod needs more than baseline.
    assert bool(baseline) == (level == "privileged"), baseline


def test_router_pods_meet_restricted(stack):
    routers = [o for o in objects_of(planned(stack), "Deployment")
               if o["metadata"]["labels"]["app.kubernetes.io/component"] in ROUTER_COMPONENTS]
    assert routers
    for obj in routers:
        assert pod_security_violations(obj["spec"]["template"]["spec"], "restricted") == [], obj["metadata"]["name"]


def test_the_restricted_check_catches_what_restricted_forbids():
    router = next(o for o in objects_of(planned("prod"), "Deployment") if o["metadata"]["name"] == "deepseek-r1-router")
    pod = copy.deepcopy(router["spec"]["template"]["spec"])
    pod["containers"][0]["securityContext"]["runAsUser"] = 0
    pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    found = pod_security_violations(pod, "restricted")
    assert any("root" in f for f in found) and any("hostPath" in f for f in found)
    rdma_pod = _pod_templates(objects_of(planned("prod"), "LeaderWorkerSet")[0])[0]["spec"]
    assert any("IPC_LOCK" in f for f in pod_security_violations(rdma_pod, "baseline"))


def test_create_namespace_false_leaves_the_namespace_to_its_owner(tmp_path):
    doc = yaml.safe_load((ROOT / "stacks/Pulumi.dev.yaml").read_text())
    assert ServiceSpec.model_validate(doc["config"]["moe-ep:service"]).create_namespace is True
    doc["config"]["moe-ep:service"]["create_namespace"] = False
    (tmp_path / "Pulumi.shared.yaml").write_text(yaml.safe_dump(doc))
    plan = planning.build(tmp_path / "Pulumi.shared.yaml", ROOT, "shared")
    assert not objects_of(plan, "Namespace") and objects_of(plan, "LeaderWorkerSet")
    assert not plan.run.of_type("moe-ep:index:ServiceNamespace")
    # The labels the owner must set are the ones this service would have set.
    assert namespace.namespace_labels(plan.spec) == namespace_of("dev")["metadata"]["labels"]


def test_the_shared_namespace_example_creates_its_namespace_once():
    run = engine.run_program(ROOT / "examples/shared-namespace/__main__.py", {}, "example", project="moe-ep-shared-namespace")
    namespaces = [m for m in manifests.manifests(run.resources) if m["kind"] == "Namespace"]
    assert [n["metadata"]["name"] for n in namespaces] == ["team-llm"]
    [ns_urn] = [r.urn for r in run.resources if r.type == "kubernetes:core/v1:Namespace"]
    [coder] = [r for r in run.resources if r.type == "moe-ep:index:MoEEPService" and r.name == "coder"]
    assert ns_urn in coder.dependencies, "the second service waits for the namespace the first creates"
    assert not [r for r in run.resources if r.type == "moe-ep:index:ServiceNamespace" and r.parent == coder.urn]
