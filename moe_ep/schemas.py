"""Custom resources checked against the CRDs of the cluster they will land on.

The CRD folder is named by the user (``--crd-dir`` or ``MOE_EP_CRD_DIR``): upstream CRDs in CI,
``kubectl get crd NAME -o yaml`` output on a real cluster. Validation is strict: where a schema
lists ``properties`` and does not preserve unknown fields, an unknown field is an error (the API
server would prune it silently, which hides typos).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml

CRD_DIR_ENV = "MOE_EP_CRD_DIR"
BUILTIN_GROUPS = {
    "v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v2", "networking.k8s.io/v1",
    "rbac.authorization.k8s.io/v1",
}


@dataclass(frozen=True)
class SchemaProblem:
    kind: str
    name: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}: {self.message}"


def crd_dir(option: str | None = None) -> Path | None:
    """The CRD folder from the option or the environment, or None when neither names one."""
    value = option or os.environ.get(CRD_DIR_ENV)
    return Path(value) if value else None


def _strict(schema: Any) -> Any:
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@cache
def _schemas(folder: Path) -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> strict openAPIV3Schema, for every CRD document in ``folder``."""
    found: dict[tuple[str, str], dict] = {}
    for path in sorted(folder.glob("*.y*ml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                # apiVersion/kind/metadata are the API server's to check, not the CRD's.
                schema.setdefault("properties", {}).update({"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}})
                found[(f"{group}/{version['name']}", kind)] = _strict(schema)
    return found


def is_custom(manifest: dict[str, Any]) -> bool:
    return manifest["apiVersion"] not in BUILTIN_GROUPS


def validate_custom_resources(objects: Iterable[dict[str, Any]], folder: Path) -> list[SchemaProblem]:
    """Every custom resource in ``objects`` against its CRD in ``folder``; a kind with no CRD
    there is a problem too (it could not be applied)."""
    schemas = _schemas(folder.resolve())
    problems: list[SchemaProblem] = []
    for obj in objects:
        if not is_custom(obj):
            continue
        name = obj["metadata"].get("name", "?")
        schema = schemas.get((obj["apiVersion"], obj["kind"]))
        if schema is None:
            problems.append(SchemaProblem(obj["kind"], name, f"no CRD for {obj['apiVersion']} {obj['kind']} in {folder}"))
            continue
        validator = jsonschema.Draft7Validator(schema)
        for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
            where = ".".join(str(p) for p in error.absolute_path) or "(root)"
            problems.append(SchemaProblem(obj["kind"], name, f"{where}: {error.message}"))
    return problems
