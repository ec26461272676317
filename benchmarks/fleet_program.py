"""A Pulumi program for the fleet benchmark: N services in one stack.

Each service is the stack's ``moe-ep:service`` (the prod stack in ``make bench``) under its own
name, namespace and GPU nodes, built exactly as ``__main__.py`` builds one: validated with
``service_from_config`` (cross-field rules included), then a MoEEPService. N is ``fleet:services``.
"""

import pulumi

from components import MoEEPService, service_from_config

FLEET_NAMESPACE = "fleet"


def member(base: dict, index: int) -> dict:
    """Service ``index`` of the fleet: the base service, renamed, in its own namespace, on its
    own nodes (two services patching the same node would fight over its pool label)."""
    service = {**base, "name": f"{base['name']}-{index:03d}", "namespace": f"{base['namespace']}-{index:03d}"}
    node_pool = base.get("node_pool")
    if node_pool and node_pool.get("existing"):
        nodes = [f"{node}-{index:03d}" for node in node_pool["existing"]["nodes"]]
        service["node_pool"] = {**node_pool, "existing": {**node_pool["existing"], "nodes": nodes}}
    return service


base = pulumi.Config("moe-ep").require_object("service")
for index in range(pulumi.Config(FLEET_NAMESPACE).require_int("services")):
    spec = service_from_config(member(base, index), f"fleet[{index}]")
    MoEEPService(spec.name, spec)
