"""The router's Envoy bootstrap checked as Envoy loads it, without an Envoy binary: every stack's
`<name>-router` ConfigMap (`envoy.yaml`), in both router modes, and the example program's, through
e2e/tools/envoy-config-check (Envoy's API from go-control-plane/envoy: unknown fields and wrong
types refused, Any types resolved, protoc-gen-validate rules, deprecated fields warned about).

The checker is a tool `make tools` builds into .e2e/bin; a missing one fails the test, never skips.
"""

from __future__ import annotations

import subprocess

import pytest
import yaml

from components import router
from moe_ep import engine, manifests

from .conftest import ROOT, STACKS, planned

pytestmark = pytest.mark.e2e

CHECKER = ROOT / ".e2e" / "bin" / "envoy-config-check"
EXAMPLE = ROOT / "examples" / "shared-namespace" / "__main__.py"


@pytest.fixture(scope="module")
def checker() -> str:
    if not CHECKER.exists():
        pytest.fail(f"{CHECKER.relative_to(ROOT)} is missing: `make tools` builds it (e2e/tools/envoy-config-check)")
    return str(CHECKER)


def check(checker: str, files: list) -> subprocess.CompletedProcess:
    return subprocess.run([checker, *map(str, files)], capture_output=True, text=True, timeout=60)


def envoy_configs(objects: list[dict]) -> dict[str, str]:
    return {o["metadata"]["name"]: o["data"]["envoy.yaml"] for o in objects
            if o["kind"] == "ConfigMap" and "envoy.yaml" in (o.get("data") or {})}


def rendered() -> dict[str, str]:
    """File name -> envoy.yaml: each stack's ConfigMap in its own mode, disaggregated stacks also in
    round-robin (a mode their spec allows; llm-d needs a prefill pool), and the example program's."""
    configs, modes = {}, set()
    for stack in STACKS:
        plan = planned(stack)
        spec = plan.spec
        [(name, config)] = envoy_configs(plan.objects).items()
        assert name == router.names(spec)["router"]
        assert config == router.envoy_config(spec)
        configs[f"{stack}-{spec.router_mode}.yaml"] = config
        modes.add(spec.router_mode)
        if spec.disaggregated and spec.router_mode == "llm-d":
            other = spec.model_copy(update={"router": spec.router.model_copy(update={"mode": "round-robin"})})
            configs[f"{stack}-round-robin.yaml"] = router.envoy_config(other)
    assert modes == {"llm-d", "round-robin"}, modes
    run = engine.run_program(EXAMPLE, {}, "example", project="moe-ep-shared-namespace")
    example = envoy_configs(manifests.manifests(run.resources))
    assert sorted(example) == ["chat-router", "coder-router"]
    configs |= {f"example-{name}.yaml": config for name, config in example.items()}
    return configs


def test_every_rendered_envoy_config_loads(checker, tmp_path):
    configs = rendered()
    assert {"prod-llm-d.yaml", "staging-llm-d.yaml", "dev-round-robin.yaml", "prod-round-robin.yaml"} <= set(configs)
    files = []
    for name, config in configs.items():
        (tmp_path / name).write_text(config)
        files.append(tmp_path / name)
    result = check(checker, files)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for f in files:
        assert any(line.startswith(f"{f}: valid (envoy.config.bootstrap.v3.Bootstrap") for line in lines), result.stdout
    # Envoy logs every deprecated field it loads: none in ours (dns_refresh_rate was, until 1.33).
    assert not [line for line in lines if ": warning: " in line], result.stdout


def test_a_broken_config_fails_naming_every_path(checker, tmp_path):
    config = yaml.safe_load(router.envoy_config(planned("prod").spec))
    listeners, clusters = config["static_resources"]["listeners"], config["static_resources"]["clusters"]
    http = listeners[1]
    hcm = http["filter_chains"][0]["filters"][0]["typed_config"]
    ext_proc = hcm["http_filters"][0]["typed_config"]
    assert ext_proc["@type"].endswith("ExternalProcessor")
    clusters[0]["connect_timout"] = "10s"                                  # unknown field
    http["per_connection_buffer_limit_bytes"] = "lots"                     # wrong type
    ext_proc["processing_mode"]["request_body"] = "FULL_DUPLEX_STREAMED"   # unknown, inside two Anys
    hcm["merge_slashes"] = "yes please"                                    # wrong type, inside an Any
    clusters[1]["lb_policy"] = "ROUND_ROBBIN"                              # no such enum value
    config["admin"]["address"]["socket_address"]["port_value"] = 70000     # a validate rule (lte 65535)
    clusters[1]["dns_refresh_rate"] = "5s"                                 # deprecated: a warning only
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(config, sort_keys=False))

    result = check(checker, [broken])
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    hcm_path = "static_resources.listeners[1].filter_chains[0].filters[0].typed_config"
    for path, message in [
        ("static_resources.clusters[0].connect_timout", 'unknown field "connect_timout"'),
        ("static_resources.listeners[1].per_connection_buffer_limit_bytes", '"lots"'),
        (f"{hcm_path}.http_filters[0].typed_config.processing_mode.request_body", 'unknown field "request_body"'),
        (f"{hcm_path}.merge_slashes", '"yes please"'),
        ("static_resources.clusters[1].lb_policy", '"ROUND_ROBBIN"'),
        ("admin.address.socket_address.port_value", "less than or equal to 65535"),
    ]:
        assert any(f": {path}: " in line and message in line for line in out.splitlines()), (path, out)
    assert "invalid: 6 error(s)" in out, out
    assert ": warning: static_resources.clusters[1].dns_refresh_rate: deprecated" in out, out

    # Each line names the YAML line the field is on.
    text = broken.read_text().splitlines()
    for line in out.splitlines():
        if ": unknown field " in line:
            number, field = int(line.split(":")[1]), line.rsplit('"', 2)[1]
            assert text[number - 1].lstrip().startswith(f"{field}:"), line
