"""Custom resources checked against the CRDs of the cluster they will land on.

The CRD folder is named by the user (``--crd-dir`` or ``MOE_EP_CRD_DIR``): upstream CRDs in CI,
``kubectl get crd NAME -o yaml`` output on a real cluster. Validation is strict: where a schema
lists ``properties`` and does not preserve unknown fields, an unknown field is an error (the API
server would prune it silently, which hides typos).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml

from components.spec import yaml_problem

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


class CrdError(ValueError):
    """A file in the CRD folder that cannot be read as CRD manifests: bad input (exit 2), named
    with its path and, for a malformed CRD, the key it lacks."""


# libyaml's parser (PyYAML's wheels bundle it) reads the same documents as the pure-Python one;
# the upstream CRDs are megabytes of YAML, which the pure-Python parser takes seconds over.
_CRD_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(path: Path, text: str) -> list[Any]:
    try:
        return list(yaml.load_all(text, Loader=_CRD_LOADER))  # noqa: S506 - a safe loader
    except yaml.YAMLError as error:
        raise CrdError(f"{path}: not valid YAML{yaml_problem(error)}") from None


_WHAT = {str: "a string", list: "a list", dict: "a mapping"}


def _at(path: Path, doc: dict[str, Any], *keys: str | int, expected: type) -> Any:
    """``doc[keys[0]][keys[1]]...``, an ``expected``; else a CrdError naming the file, the CRD
    and the key path."""
    value: Any = doc
    for key in keys:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            value = None
            break
    if isinstance(value, expected):
        return value
    metadata = doc.get("metadata")
    name = metadata.get("name", "?") if isinstance(metadata, dict) else "?"
    where = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in keys).lstrip(".")
    raise CrdError(f"{path}: CustomResourceDefinition {name}: {where} is missing or not {_WHAT[expected]}")


_SERVER_FIELDS = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}


@cache
def _schemas(folder: Path, groups: frozenset[str]) -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> strict openAPIV3Schema, for every CRD document in ``folder`` of one
    of the API ``groups``. A file whose text never names one of them is read but not parsed: a
    cluster's CRD folder holds megabytes of schemas for kinds the stack does not use."""
    found: dict[tuple[str, str], dict] = {}
    for path in sorted(folder.glob("*.y*ml")):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise CrdError(f"{path}: not UTF-8 text ({error})") from None
        except OSError as error:
            raise CrdError(f"{path}: cannot be read ({error.strerror or error})") from None
        if not any(group in text for group in groups):
            continue
        for doc in _parse(path, text):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            group = _at(path, doc, "spec", "group", expected=str)
            if group not in groups:
                continue
            kind = _at(path, doc, "spec", "names", "kind", expected=str)
            for index in range(len(_at(path, doc, "spec", "versions", expected=list))):
                version = _at(path, doc, "spec", "versions", index, "name", expected=str)
                schema = _at(path, doc, "spec", "versions", index, "schema", "openAPIV3Schema", expected=dict)
                # apiVersion/kind/metadata are the API server's to check, not the CRD's. Added before
                # _strict, so that a root schema listing no properties still rejects unknown fields.
                listed = _at(path, doc, "spec", "versions", index, "schema", "openAPIV3Schema", "properties",
                             expected=dict) if "properties" in schema else {}
                schema = {**schema, "properties": {**listed, **_SERVER_FIELDS}}
                try:
                    found[(f"{group}/{version}", kind)] = _strict(schema)
                except RecursionError:
                    raise CrdError(f"{path}: CustomResourceDefinition {kind}: schema of {version} nested too deeply") from None
    return found


def is_custom(manifest: dict[str, Any]) -> bool:
    return manifest["apiVersion"] not in BUILTIN_GROUPS


def validate_custom_resources(objects: Iterable[dict[str, Any]], folder: Path) -> list[SchemaProblem]:
    """Every custom resource in ``objects`` against its CRD in ``folder``; a kind with no CRD
    there is a problem too (it could not be applied)."""
    custom = [obj for obj in objects if is_custom(obj)]
    schemas = _schemas(folder.resolve(), frozenset(obj["apiVersion"].split("/")[0] for obj in custom))
    problems: list[SchemaProblem] = []
    for obj in custom:
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
