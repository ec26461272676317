"""Deploy a stack (or the example program) to the local control plane with the built Pulumi CLI.

    python e2e/deploy.py up STACK          # pulumi up --yes; prints outputs and where units landed
    python e2e/deploy.py preview STACK     # pulumi preview --expect-no-changes
    python e2e/deploy.py preview STACK --policy-pack [--policy-pack-config FILE] [--json]
                                           # pulumi preview --policy-pack policies: fails on a
                                           # mandatory violation; a stack this creates is removed
    python e2e/deploy.py destroy STACK     # pulumi destroy --yes
    python e2e/deploy.py resources STACK   # the stack's Kubernetes objects, as JSON

STACK is a stack of stacks/ (dev, staging, prod), a stack file elsewhere (a path ending in
.yaml), or an example program's folder name under examples/ (shared-namespace).

The engine, the providers and the API server are the real ones; the program runs through the
Automation API's inline mode (the CLI is given the address of a language runtime served by the
Python SDK in this process), because the module proxy serves no build of pulumi-language-python.
The program file is the same `__main__.py` the CLI's language host would run.

Nothing is downloaded: the CLI finds its provider plugins on PATH (.e2e/bin) with an empty
PULUMI_HOME; state goes to a file backend under .e2e/state with a passphrase secrets provider.
Each stack's working copy of its project and stack file is under .e2e/work/STACK, so the
passphrase provider's salt is never written into the repository's stack files.

The policy pack (policies/, a Python pack) is started by the CLI through the language runtime its
PulumiPolicy.yaml names: the CLI looks up `pulumi-language-python` and calls its RunPlugin, which
runs `python -u -m pulumi.policy ENGINE policies/` (there is no ambient analyzer shim since
pulumi/pulumi#21684). e2e/tools/pulumi-language-python builds a host that serves just that, from
the pinned Pulumi SDK module. A preview with --policy-pack on a stack that has no state yet is
the stack's first preview (the API key is still unknown) and leaves no state behind, so it can be
repeated. --json prints one object: the policy events as `moe-ep preview --json` lists
violations ({policy, enforcement, resource, message}; the root stack is "(stack)"), whether the
preview succeeded, and the CLI's output.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from pulumi import automation as auto

from plane import BIN, CONTEXT, KUBECONFIG, STATE  # e2e/plane.py, beside this file
from policies.rules import RULES_BY_NAME  # the pack's rules: their descriptions prefix the CLI's messages

ROOT = Path(__file__).resolve().parent.parent
PASSPHRASE = "moe-ep-local-plane"
"""Only guards state on a throwaway local plane."""


@dataclass(frozen=True)
class Program:
    """A Pulumi program and, for a stack of stacks/, the stack file it reads."""

    name: str
    directory: Path
    stack_file: Path | None

    @property
    def project(self) -> str:
        return yaml.safe_load((self.directory / "Pulumi.yaml").read_text())["name"]


def program(name: str) -> Program:
    given = Path(name)
    if given.suffix == ".yaml" and given.is_file():  # any stack file: Pulumi.<stack>.yaml
        return Program(given.name.removeprefix("Pulumi.").removesuffix(".yaml"), ROOT, given.resolve())
    stack_file = ROOT / "stacks" / f"Pulumi.{name}.yaml"
    if stack_file.exists():
        return Program(name, ROOT, stack_file)
    example = ROOT / "examples" / name
    if (example / "Pulumi.yaml").exists():
        return Program(name, example, None)
    known = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))
    known += sorted(p.parent.name for p in (ROOT / "examples").glob("*/Pulumi.yaml"))
    raise SystemExit(f"deploy: no stack or example named {name!r} (known: {', '.join(known)})")


def environment() -> dict[str, str]:
    home = STATE / "pulumi-home"
    home.mkdir(parents=True, exist_ok=True)
    (STATE / "state").mkdir(parents=True, exist_ok=True)
    return {
        "PATH": f"{BIN}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PULUMI_HOME": str(home),
        "PULUMI_BACKEND_URL": f"file://{STATE / 'state'}",
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
        # The dynamic-provider plugin (the API key) runs `python -m pulumi.dynamic` with this Python.
        "PULUMI_PYTHON_CMD": sys.executable,
        "KUBECONFIG": str(KUBECONFIG),
    }


def _workdir(prog: Program) -> Path:
    """A working copy of the project file and stack file (the passphrase salt lands here)."""
    work = STATE / "work" / prog.name
    (work / "stacks").mkdir(parents=True, exist_ok=True)
    project = yaml.safe_load((prog.directory / "Pulumi.yaml").read_text())
    project["runtime"] = "python"  # the inline program needs no virtualenv or toolchain
    if prog.stack_file is not None:
        project["stackConfigDir"] = "stacks"
        target = work / "stacks" / prog.stack_file.name
        salt = yaml.safe_load(target.read_text()).get("encryptionsalt") if target.exists() else None
        config = yaml.safe_load(prog.stack_file.read_text())
        if salt:
            config["encryptionsalt"] = salt
        target.write_text(yaml.safe_dump(config, sort_keys=False))
    (work / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
    return work


DEPLOY_TOOLS = ("pulumi", "pulumi-kubernetes", "pulumi-language-python")
"""The folders of e2e/tools this needs: the CLI (with the dynamic-provider plugin), the provider,
and the language host that starts the policy pack."""

POLICY_PACK = ROOT / "policies"


def stack(prog: Program) -> tuple[auto.Stack, bool]:
    """The program's stack, selected or created; and whether this call created it."""
    if not KUBECONFIG.exists():
        raise SystemExit("deploy: the local control plane is not up (make cluster-up)")
    subprocess.run([str(ROOT / "e2e" / "tools" / "build"), *DEPLOY_TOOLS], check=True, stdout=sys.stderr)
    env = environment()
    main = prog.directory / "__main__.py"

    def run() -> None:
        runpy.run_path(str(main), run_name="__main__")

    workspace = auto.LocalWorkspaceOptions(
        work_dir=str(_workdir(prog)), pulumi_home=env["PULUMI_HOME"], env_vars=env, secrets_provider="passphrase",
        pulumi_command=auto.PulumiCommand(root=str(BIN.parent), skip_version_check=True))
    os.environ.update(env)  # the program's own provider processes inherit these too
    try:
        selected, created = auto.select_stack(prog.name, project_name=prog.project, program=run, opts=workspace), False
    except auto.StackNotFoundError:
        selected, created = auto.create_stack(prog.name, project_name=prog.project, program=run, opts=workspace), True
    # Every stack goes to the local plane's context, whatever context its file pins for real clusters.
    selected.set_config("kubernetes:context", auto.ConfigValue(CONTEXT))
    return selected, created


def forget(selected: auto.Stack, prog: Program) -> None:
    """Remove a stack that holds no resources, and its working copy."""
    selected.workspace.remove_stack(prog.name)
    shutil.rmtree(STATE / "work" / prog.name, ignore_errors=True)


def _violation(event: auto.PolicyEvent, stack_urn: str) -> dict:
    """A policy event as `moe-ep preview --json` lists a violation (the rule's own sentence)."""
    urn = event.resource_urn or stack_urn
    description = RULES_BY_NAME[event.policy_name].description if event.policy_name in RULES_BY_NAME else ""
    return {"policy": event.policy_name, "enforcement": event.enforcement_level,
            "resource": "(stack)" if urn == stack_urn else urn.rsplit("::", 1)[-1],
            "message": event.message.strip().removeprefix(description + "\n")}


def policy_preview(selected: auto.Stack, config: str | None, out) -> dict:
    """`pulumi preview --policy-pack policies [--policy-pack-config FILE]`: the policy events and
    whether the preview succeeded (it fails on a mandatory violation)."""
    events: list[auto.EngineEvent] = []
    succeeded = True
    try:
        selected.preview(on_output=out, on_event=events.append, color="never", policy_packs=[str(POLICY_PACK)],
                         policy_pack_configs=[str(Path(config).resolve())] if config else None)
    except auto.CommandError as error:
        succeeded = False
        out(str(error))
    project = selected.workspace.project_settings().name
    stack_urn = f"urn:pulumi:{selected.name}::{project}::pulumi:pulumi:Stack::{project}-{selected.name}"
    found = [_violation(e.policy_event, stack_urn) for e in events if e.policy_event]
    found.sort(key=lambda v: (v["enforcement"] != "mandatory", v["policy"], v["resource"], v["message"]))
    return {"stack": selected.name, "succeeded": succeeded, "violations": found}


def resources(selected: auto.Stack) -> list[dict]:
    """The Kubernetes objects in the stack's state: kind, namespace, name (sorted)."""
    state = selected.export_stack().deployment
    objects = []
    for resource in state.get("resources", []):
        # Reads (CRDs, patched nodes) are in the state as external: the stack does not own them.
        if not resource["type"].startswith("kubernetes:") or resource.get("external"):
            continue
        live = resource.get("outputs", {})
        metadata = live.get("metadata") or {}
        objects.append({"kind": live.get("kind", resource["type"].rsplit(":", 1)[-1]),
                        "namespace": metadata.get("namespace", ""), "name": metadata.get("name", "")})
    return sorted(objects, key=lambda o: (o["kind"], o["namespace"], o["name"]))


def placements(namespaces: list[str]) -> list[str]:
    """One line per vLLM pod: its LWS, group, worker index and node."""
    lines = []
    for namespace in namespaces:
        listed = subprocess.run(
            [str(BIN / "kubectl"), "--kubeconfig", str(KUBECONFIG), "get", "pods", "-n", namespace,
             "-l", "leaderworkerset.sigs.k8s.io/name", "-o", "json"], capture_output=True, text=True, check=True)
        for pod in sorted(json.loads(listed.stdout)["items"], key=lambda p: p["metadata"]["name"]):
            labels = pod["metadata"]["labels"]
            lines.append(f"  {namespace}/{labels['leaderworkerset.sigs.k8s.io/name']} unit "
                         f"{labels.get('leaderworkerset.sigs.k8s.io/group-index')} rank "
                         f"{labels.get('leaderworkerset.sigs.k8s.io/worker-index')}: {pod['metadata']['name']} "
                         f"on {pod['spec'].get('nodeName') or '(unscheduled)'}, {pod['status'].get('phase')}")
    return lines


class _Usage(argparse.ArgumentParser):
    def error(self, message: str):  # the module's usage is printed instead
        raise ValueError(message)


def _arguments(argv: list[str]) -> argparse.Namespace | None:
    parser = _Usage(prog="deploy.py", add_help=False)
    parser.add_argument("action", choices=("up", "preview", "destroy", "resources"))
    parser.add_argument("name")
    parser.add_argument("--policy-pack", action="store_true")
    parser.add_argument("--policy-pack-config")
    parser.add_argument("--json", action="store_true")
    try:
        args = parser.parse_args(argv)
    except ValueError:
        return None
    if (args.policy_pack_config or args.json) and not args.policy_pack or args.policy_pack and args.action != "preview":
        return None
    return args


def main(argv: list[str]) -> int:
    args = _arguments(argv)
    if args is None:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    action, prog = args.action, program(args.name)
    selected, created = stack(prog)
    if args.policy_pack:
        output: list[str] = []
        try:
            result = policy_preview(selected, args.policy_pack_config, output.append if args.json else print)
        finally:
            if created:  # the stack's first preview: no state left behind, so the next one is first too
                forget(selected, prog)
        if args.json:
            print(json.dumps({**result, "output": "\n".join(output)}, indent=1))
        else:
            print(json.dumps(result["violations"], indent=1))
        return 0 if result["succeeded"] else 1
    out = print  # the Automation API hands over one line at a time, without its newline
    try:
        if action == "up":
            result = selected.up(on_output=out, color="never")
            outputs = {k: ("[secret]" if v.secret else v.value) for k, v in sorted(result.outputs.items())}
            print(json.dumps(outputs, indent=2, sort_keys=True, default=str))
            namespaces = sorted({o["namespace"] for o in resources(selected) if o["kind"] == "LeaderWorkerSet"})
            print("where each unit's pods landed:")
            print("\n".join(placements(namespaces)) or "  (no pods yet)")
        elif action == "preview":
            selected.preview(on_output=out, color="never", expect_no_changes=True, diff=True)
        elif action == "destroy":
            selected.destroy(on_output=out, color="never")
            forget(selected, prog)
        else:
            print(json.dumps(resources(selected), indent=1))
    except auto.CommandError as error:
        print(f"deploy: pulumi {action} of {prog.name} failed:\n{error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
