"""Every stack end to end: the real program under mocks, the JSON contract, manifests."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import kubernetes_validate
import pytest
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError, latest_version, major_minor

from moe_ep import cli, engine, manifests, schemas

from .conftest import ROOT, STACKS, objects_of, planned


def preview_json(stack: str, capsys) -> dict:
    assert cli.main(["preview", "--stack", stack, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_three_stacks_exist():
    assert {"dev", "staging", "prod"} <= set(STACKS)


def test_preview_json_has_the_design_fields(stack, capsys):
    data = preview_json(stack, capsys)
    for key in ("project", "stack", "service", "pools", "gpus", "commands", "resources", "policy", "sizing"):
        assert key in data, key
    assert data["project"] == "moe-ep" and data["stack"] == stack
    assert set(data["pools"]) == {"prefill", "decode"}
    for role, pool in data["pools"].items():
        if pool is None:
            continue
        assert set(pool) >= {"replicas", "nodes_per_replica", "gpus_per_node", "tensor_parallel_size",
                             "data_parallel_size", "expert_parallel_size", "gpus", "autoscaling"}
        assert all(isinstance(pool[k], int) for k in ("replicas", "nodes_per_replica", "gpus", "tensor_parallel_size"))
        assert data["commands"][role]["leader"][:2] == ["vllm", "serve"]
    assert isinstance(data["gpus"]["initial"], int) and data["gpus"]["max"] >= data["gpus"]["initial"]
    for row in data["resources"]:
        assert set(row) >= {"type", "name", "kind", "namespace", "parent"}
    assert isinstance(data["policy"]["violations"], list)


def test_prod_is_the_pai_eas_default(capsys):
    data = preview_json("prod", capsys)
    assert data["pools"]["decode"]["expert_parallel_size"] == 8
    assert data["pools"]["decode"]["data_parallel_size"] == 8
    assert data["pools"]["prefill"]["tensor_parallel_size"] == 8
    assert data["pools"]["prefill"]["replicas"] == data["pools"]["decode"]["replicas"] == 1
    leader = data["commands"]["decode"]["leader"]
    assert "--enable-expert-parallel" in leader
    kv = json.loads(leader[leader.index("--kv-transfer-config") + 1])
    assert kv["kv_connector"] == "NixlConnector"


def test_staging_decode_spans_two_nodes(capsys):
    data = preview_json("staging", capsys)
    decode = data["pools"]["decode"]
    assert decode["nodes_per_replica"] == 2 and decode["gpus"] == 16
    assert decode["data_parallel_size"] == 16 and decode["expert_parallel_size"] == 16
    assert data["commands"]["decode"]["worker"] is not None


def test_dev_is_decode_only(capsys):
    data = preview_json("dev", capsys)
    # DESIGN.md's keys stay: a pool the stack does not have is null everywhere.
    assert data["pools"]["prefill"] is None and data["commands"]["prefill"] is None and data["sizing"]["prefill"] is None
    assert data["commands"]["decode"]["leader"][:2] == ["vllm", "serve"] and data["sizing"]["decode"]["fits"] is True


def test_every_stack_registers_a_unit_per_pool(stack):
    plan = planned(stack)
    units = plan.run.of_type("moe-ep:index:DistributedUnit")
    assert len(units) == len(plan.spec.pools())
    lws = objects_of(plan, "LeaderWorkerSet")
    assert sorted(o["metadata"]["name"] for o in lws) == sorted(f"{plan.spec.name}-{r}" for r in plan.spec.pools())
    for obj in lws:
        assert isinstance(obj["spec"]["replicas"], int) and isinstance(obj["spec"]["leaderWorkerTemplate"]["size"], int)


def test_every_child_is_parented(stack):
    plan = planned(stack)
    urns = {r.urn for r in plan.run.resources}
    for r in plan.run.resources:
        if r.type != "moe-ep:index:MoEEPService":
            assert r.parent in urns, f"{r.type} {r.name} is not parented inside the service"


def test_render_is_byte_identical(stack, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    assert cli.main(["render", "--stack", stack, "--out", str(first)]) == 0
    assert cli.main(["render", "--stack", stack, "--out", str(second)]) == 0
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir()) and names
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert names[0].startswith("001-")


# The oldest Kubernetes we support and the newest kubernetes-validate bundles.
KUBERNETES_VERSIONS = ("1.31", major_minor(latest_version()))


def builtin_problems(objects: list[dict], version: str) -> list[str]:
    """Every built-in object strictly against ``version``'s schema; a kind with no schema is a problem."""
    problems = []
    for obj in objects:
        if schemas.is_custom(obj):
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except (ValidationError, SchemaNotFoundError) as error:
            problems.append(f"{obj['kind']}/{obj['metadata'].get('name')}: {error}")
    return problems


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_builtin_kinds_are_strictly_valid(stack, version):
    assert builtin_problems(planned(stack).objects, version) == []


def test_the_newest_bundled_version_is_newer_than_the_oldest_supported():
    oldest, newest = (tuple(map(int, v.split("."))) for v in KUBERNETES_VERSIONS)
    assert newest >= (1, 37) > oldest  # kubernetes-validate 1.37.0 bundles up to 1.37


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_a_builtin_kind_without_a_schema_fails(version):
    widget = {"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert builtin_problems([widget], version) and "Widget" in builtin_problems([widget], version)[0]
    typo = json.loads(json.dumps(objects_of(planned("dev"), "Deployment")[0]))
    typo["spec"]["replicaz"] = 2
    assert any("replicaz" in p for p in builtin_problems([typo], version))


def test_custom_resources_match_their_crds(stack, crd_dir):
    assert schemas.validate_custom_resources(planned(stack).objects, crd_dir) == []


def test_crd_validation_catches_an_unknown_field(crd_dir):
    obj = json.loads(json.dumps(objects_of(planned("prod"), "LeaderWorkerSet")[0]))
    obj["spec"]["leaderWorkerTemplate"]["sise"] = 2
    problems = schemas.validate_custom_resources([obj], crd_dir)
    assert any("sise" in p.message for p in problems)


def test_crd_validation_fails_a_kind_without_a_crd(crd_dir):
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}}
    assert "no CRD" in schemas.validate_custom_resources([obj], crd_dir)[0].message


LWS_CRD = "leaderworkerset.x-k8s.io_leaderworkersets.yaml"


def test_crd_files_of_groups_the_stack_does_not_use_are_not_parsed(crd_dir, tmp_path):
    (tmp_path / LWS_CRD).write_bytes((crd_dir / LWS_CRD).read_bytes())
    (tmp_path / "example.com_widgets.yaml").write_text("group: example.com\n: : [\n")
    lws = objects_of(planned("prod"), "LeaderWorkerSet")
    assert lws and schemas.validate_custom_resources(lws, tmp_path) == []
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}}
    with pytest.raises(schemas.CrdError, match=r"example.com_widgets.yaml: not valid YAML at line 2, column 1: did not find expected key"):
        schemas.validate_custom_resources([widget], tmp_path)


def test_a_crd_root_schema_without_properties_still_rejects_unknown_fields(tmp_path):
    # The API server prunes what a structural schema does not list; strict validation says so.
    (tmp_path / "widgets.yaml").write_text(
        "kind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\n"
        "spec: {group: example.com, names: {kind: Widget}, versions: [{name: v1, schema: {openAPIV3Schema: {type: object}}}]}\n")
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"typo": 1}}
    problems = schemas.validate_custom_resources([widget], tmp_path)
    assert [p.message for p in problems] == ["(root): Additional properties are not allowed ('spec' was unexpected)"]


@pytest.mark.parametrize(("content", "message"), [
    (b"\xff\xfe leaderworkerset.x-k8s.io", "bad.yaml: not UTF-8 text"),
    (b"group: leaderworkerset.x-k8s.io\n: : [\n", "bad.yaml: not valid YAML at line 2, column 1: did not find expected key"),
    (b"kind: CustomResourceDefinition\nmetadata: {name: lws}\nspec: {group: leaderworkerset.x-k8s.io, names: {}}\n",
     "bad.yaml: CustomResourceDefinition lws: spec.names.kind is missing or not a string"),
    (b"kind: CustomResourceDefinition\nmetadata: {name: lws}\n"
     b"spec: {group: leaderworkerset.x-k8s.io, names: {kind: LeaderWorkerSet}, versions: [{name: v1}]}\n",
     "bad.yaml: CustomResourceDefinition lws: spec.versions[0].schema.openAPIV3Schema is missing or not a mapping"),
])
def test_a_bad_crd_folder_is_bad_input_and_nothing_is_written(content, message, tmp_path, capsys):
    crds = tmp_path / "crds"
    crds.mkdir()
    (crds / "bad.yaml").write_bytes(content)
    out = tmp_path / "out"
    assert cli.main(["render", "--stack", "prod", "--crd-dir", str(crds), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bad CRD folder" in err and message in err and "Traceback" not in err
    assert not out.exists()


def test_an_out_folder_that_cannot_be_a_directory_is_bad_input(tmp_path, capsys, monkeypatch):
    file, dangling, loop = tmp_path / "a-file", tmp_path / "dangling", tmp_path / "loop"
    file.write_text("x")
    dangling.symlink_to(tmp_path / "gone" / "dir")
    loop.symlink_to(loop)
    cases = [
        (file, f"--out {file}: exists and is not a directory"),
        (file / "manifests", f"--out {file / 'manifests'}: {file} is not a directory"),
        (dangling, f"--out {dangling}: {dangling} is a symbolic link that leads nowhere"),
        (loop / "x", f"--out {loop / 'x'}: {loop} is a symbolic link that leads nowhere"),
    ]
    for out, message in cases:
        assert cli.main(["render", "--stack", "dev", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert file.read_text() == "x" and sorted(tmp_path.iterdir()) == [file, dangling, loop]
    # CI runs as root, which may write anywhere: the unwritable case is the check's own answer.
    monkeypatch.setattr(cli.os, "access", lambda path, mode: False)
    assert cli.main(["render", "--stack", "dev", "--out", str(tmp_path / "new")]) == 2
    assert f"{tmp_path} is not writable" in capsys.readouterr().err and not (tmp_path / "new").exists()


def test_integers_survive_the_mock_runtime():
    lws = objects_of(planned("staging"), "LeaderWorkerSet")[0]
    text = manifests.dump(lws)
    assert "size: 2\n" in text and "replicas: 1\n" in text
    assert not re.search(r":\s+-?\d+\.0$", text, re.M), "a float leaked into the manifest"


def test_console_script_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "moe_ep.cli", "preview", "--stack", "dev"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "LeaderWorkerSet qwen3-30b-decode" in result.stdout


def test_the_example_program_composes_the_library():
    run = engine.run_program(ROOT / "examples/shared-namespace/__main__.py", {}, "example", project="moe-ep-shared-namespace")
    services = run.of_type("moe-ep:index:MoEEPService")
    assert sorted(s.name for s in services) == ["chat", "coder"]
    lws = [m for m in manifests.manifests(run.resources) if m["kind"] == "LeaderWorkerSet"]
    assert sorted(m["metadata"]["name"] for m in lws) == ["chat-decode", "chat-prefill", "coder-decode"]
    assert {m["metadata"]["namespace"] for m in lws} == {"team-llm"}
    assert [s["service"] for s in run.outputs["services"]] == ["chat", "coder"]


@pytest.mark.parametrize("missing", ["nope"])
def test_unknown_stack_is_bad_input(missing, capsys):
    assert cli.main(["preview", "--stack", missing]) == 2
    assert "dev" in capsys.readouterr().err
