"""The policy pack through the real CLI: `pulumi preview --policy-pack policies` on the local plane
(issue 22). Every preview here is a stack's first (a copy of the stack file under a name of its
own, no state, removed afterwards), so the API key is still unknown, as on a new stack.

- every stack of stacks/ previews clean (no mandatory violation);
- every held-in broken stack (tests/fixtures/policy) fails the preview naming its rule, or, for an
  advisory rule, passes with the rule named;
- a `--policy-pack-config` file from `moe-ep policy-config` changes levels as `moe-ep preview`
  says it does;
- the CLI and the offline engine's preview mode (`plan.build(..., preview=True)`) report the same
  violations, message for message, on all of them.

The CLI previews run two at a time (the machine has two cores); the offline plans in process.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from moe_ep import cli
from moe_ep import plan as planning

from .live import ROOT, policy_preview

pytestmark = pytest.mark.e2e

STACKS = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))
BROKEN_DIR = ROOT / "tests" / "fixtures" / "policy"
BROKEN: dict[str, str] = yaml.safe_load((BROKEN_DIR / "expected.yaml").read_text())
"""Held-in broken stack file -> the rule that stops it."""

LEVELS = {"image-pinned": "advisory", "vllm-version-known": "disabled"}
"""Levels a stack sets for the `:latest` image's two rules (both mandatory by default)."""


def _tag(file_name: str) -> str:
    return file_name.removeprefix("Pulumi.").removesuffix(".yaml")


def _copy(source: Path, folder: Path, tag: str) -> Path:
    """``source`` as stack ``policy-TAG``: a name no other test uses, so its preview is its first."""
    target = folder / f"Pulumi.policy-{tag}.yaml"
    shutil.copyfile(source, target)
    return target


def _leveled(folder: Path, tag: str) -> Path:
    """The `:latest` stack with `moe-ep:policy` levels for its two rules."""
    document = yaml.safe_load((BROKEN_DIR / "Pulumi.latest-image.yaml").read_text())
    document["config"]["moe-ep:policy"] = {"enforcement": LEVELS}
    target = folder / f"Pulumi.policy-{tag}.yaml"
    target.write_text(yaml.safe_dump(document, sort_keys=False))
    return target


def _moe_ep(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(list(argv))
    return code, out.getvalue()


@pytest.fixture(scope="module")
def previews(plane, tmp_path_factory):
    """Every CLI preview this module checks, by case: (stack file, its CLI result)."""
    folder = tmp_path_factory.mktemp("policy-cli")
    cases = {f"stack:{name}": (_copy(ROOT / "stacks" / f"Pulumi.{name}.yaml", folder, name), None) for name in STACKS}
    cases |= {f"broken:{name}": (_copy(BROKEN_DIR / name, folder, _tag(name)), None) for name in BROKEN}
    leveled = _leveled(folder, "leveled-config")
    code, config = _moe_ep("policy-config", "--config", str(leveled))
    assert code == 0, config
    config_file = folder / "policy-config.json"
    config_file.write_text(config)
    cases["leveled+config"] = (leveled, config_file)
    cases["leveled"] = (_leveled(folder, "leveled"), None)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {case: pool.submit(policy_preview, str(path), str(cfg) if cfg else None)
                   for case, (path, cfg) in cases.items()}
        return {case: (cases[case][0], future.result()) for case, future in futures.items()}


def offline(stack_file: Path, stack: str | None = None) -> list[dict]:
    """The offline engine's preview-mode violations for a stack file."""
    return planning.build(stack_file, stack=stack, preview=True).violations


def keyed(violations: list[dict]) -> list[tuple]:
    return sorted((v["policy"], v["enforcement"], v["resource"], v["message"]) for v in violations)


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_previews_clean_with_the_policy_pack(previews, stack):
    path, result = previews[f"stack:{stack}"]
    mandatory = [v for v in result["violations"] if v["enforcement"] == "mandatory"]
    assert result["returncode"] == 0 and result["succeeded"], f"{stack}: {mandatory}\n{result['output'][-3000:]}"
    # Not even advisories: a rule that could not run on an unknown value would show here.
    assert result["violations"] == [] == offline(path), result["output"][-3000:]


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_stack_fails_its_first_preview_naming_the_rule(previews, name):
    path, result = previews[f"broken:{name}"]
    rule = BROKEN[name]
    found = [v for v in result["violations"] if v["policy"] == rule]
    assert found, f"{name}: {rule} not reported by the CLI: {result['violations']}\n{result['output'][-3000:]}"
    assert rule in result["output"]
    mandatory = [v for v in result["violations"] if v["enforcement"] == "mandatory"]
    if mandatory:
        assert result["returncode"] == 1 and not result["succeeded"]
        assert "error: preview failed" in result["output"]
    else:  # an advisory rule (uneven-expert-split) warns and lets the preview through
        assert result["returncode"] == 0 and result["succeeded"], result["output"][-3000:]
    assert not [v for v in result["violations"] if "can't run policy" in v["message"]], result["violations"]


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_the_cli_and_the_offline_preview_report_the_same_violations(previews, name):
    path, result = previews[f"broken:{name}"]
    assert keyed(result["violations"]) == keyed(offline(path))


def test_a_policy_pack_config_from_moe_ep_policy_config_sets_the_levels_moe_ep_preview_shows(previews):
    path, configured = previews["leveled+config"]
    _, unconfigured = previews["leveled"]
    code, out = _moe_ep("preview", "--config", str(path), "--json")
    said = json.loads(out)["policy"]["violations"]
    # What the offline command says: image-pinned only advises, vllm-version-known is off: exit 0.
    assert code == 0
    assert {(v["policy"], v["enforcement"]) for v in said} == {("image-pinned", "advisory")}
    # The CLI given the file does the same.
    assert configured["returncode"] == 0 and configured["succeeded"], configured["output"][-3000:]
    assert keyed(configured["violations"]) == keyed(said) == keyed(offline(path))
    assert "[advisory]  image-pinned" in configured["output"] and "vllm-version-known" not in configured["output"]
    # Without the file the CLI applies the pack's defaults (the stack's `moe-ep:policy` key is the
    # offline command's; the CLI reads levels only from --policy-pack-config): both rules stop it.
    assert unconfigured["returncode"] == 1
    assert {(v["policy"], v["enforcement"]) for v in unconfigured["violations"]} == {
        ("image-pinned", "mandatory"), ("vllm-version-known", "mandatory")}
