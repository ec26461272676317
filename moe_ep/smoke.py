"""``moe-ep smoke``: one real request through the router, as a client sends it.

The router is reached through the API server's port-forward to a ready pod behind its Service
(or at ``--url``); the key is the stack's Secret. Three calls, with the OpenAI client: a request
without the key (expects 401), ``/v1/models`` (expects the stack's model), and one streamed chat
completion, timed: time to first token and output tokens per second over the whole request.
Every way it can fail is a ``Result`` with a reason; only a real answer is ``ok``.
"""

from __future__ import annotations

import base64
import time
from contextlib import ExitStack
from dataclasses import dataclass, field

import openai
import urllib3
from kubernetes import client

from components.api_key import SECRET_KEY, secret_name
from components.spec import ServiceSpec

from .cluster import Cluster
from .port_forward import PortForward, PortForwardError
from .status import SERVICE_NAME, Inventory

DEFAULT_PROMPT = "Say hello in one short sentence."
KWOK_NODE = "kwok.x-k8s.io/node"
UNAUTHORIZED_PROBE = "moe-ep smoke: a request without the key"


@dataclass(frozen=True)
class Request:
    prompt: str = DEFAULT_PROMPT
    max_tokens: int = 32
    timeout_s: float = 60.0


@dataclass
class Result:
    target: str = ""
    ok: bool = False
    reason: str = ""
    steps: list[str] = field(default_factory=list)
    status: int | None = None
    model: str | None = None
    ttft_s: float | None = None
    tokens: int | None = None
    tokens_per_s: float | None = None
    elapsed_s: float | None = None
    answer: str = ""


class Failure(Exception):
    """A step that did not get what a serving router gives; the message is the reason."""


def _api_key(cluster: Cluster, namespace: str, service: str) -> str:
    name = secret_name(service)
    try:
        secret = cluster.core.read_namespaced_secret(name, namespace)
    except client.ApiException as error:
        if error.status == 404:
            raise Failure(f"no Secret {namespace}/{name}: the stack is not deployed to context {cluster.context}") from None
        raise Failure(f"cannot read Secret {namespace}/{name}: HTTP {error.status} {error.reason}") from None
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise cluster.unreachable(error) from None
    value = (secret.data or {}).get(SECRET_KEY)
    if not value:
        raise Failure(f"Secret {namespace}/{name} has no {SECRET_KEY!r} key")
    return base64.b64decode(value).decode()


def _router_pod(cluster: Cluster, inv: Inventory) -> tuple[str, str, int]:
    """A ready pod behind the router Service, its node and the port the Service sends to."""
    if inv.router_service is None:
        raise Failure(f"stack {inv.stack} deploys no router Service")
    try:
        slices = cluster.discovery.list_namespaced_endpoint_slice(
            inv.namespace, label_selector=f"{SERVICE_NAME}={inv.router_service}").items
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise cluster.unreachable(error) from None
    where = f"Service {inv.namespace}/{inv.router_service}"
    endpoints = [(s, e) for s in slices for e in s.endpoints or []]
    ready = [(s, e) for s, e in endpoints if e.conditions and e.conditions.ready and e.target_ref]
    if not ready:
        seen = ", ".join(sorted(f"{e.target_ref.name if e.target_ref else e.addresses[0]} (not ready)" for _, e in endpoints))
        raise Failure(f"no ready endpoint behind {where}" + (f": {seen}" if seen else ": no router pod has an address"))
    slice_, endpoint = sorted(ready, key=lambda se: se[1].target_ref.name)[0]
    port = next((p.port for p in slice_.ports or [] if p.port), None)
    if port is None:
        raise Failure(f"{where} has no port in its EndpointSlice {slice_.metadata.name}")
    return endpoint.target_ref.name, endpoint.node_name or "", port


def _kwok_note(cluster: Cluster, node: str) -> str:
    """Why a simulated node's pod cannot answer, when it is one (the local plane's)."""
    try:
        annotations = cluster.core.read_node(node).metadata.annotations or {} if node else {}
    except (client.ApiException, urllib3.exceptions.HTTPError, OSError):
        annotations = {}
    if KWOK_NODE not in annotations:
        return ""
    return (f"; node {node} is simulated by KWOK: no model server runs behind its pods "
            "(a kwok.x-k8s.io PortForward named after the pod can lead its port to one)")


def _unreachable_pod(cluster: Cluster, pod: str, node: str, port: int, error: PortForwardError) -> Failure:
    return Failure(f"port-forward to pod {pod} port {port} on node {node or '?'} through the API server failed: "
                   f"{error}{_kwok_note(cluster, node)}")


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _check_key_required(api: openai.OpenAI) -> None:
    try:
        api.models.list(extra_headers={"Authorization": openai.omit, "User-Agent": UNAUTHORIZED_PROBE})
    except openai.AuthenticationError:
        return
    raise Failure("the router answered a request without the API key: the service is open to anyone who reaches it")


def _models(api: openai.OpenAI, served: str) -> None:
    ids = sorted(m.id for m in api.models.list().data)
    if served not in ids:
        raise Failure(f"/v1/models lists {', '.join(ids) or 'no model'}, not the stack's {served}")


def _chat(api: openai.OpenAI, served: str, request: Request, result: Result) -> None:
    start = time.perf_counter()
    raw = api.chat.completions.with_raw_response.create(
        model=served, messages=[{"role": "user", "content": request.prompt}], max_tokens=request.max_tokens,
        stream=True, stream_options={"include_usage": True})
    result.status = raw.http_response.status_code
    text, first, tokens, chunks = [], None, None, 0
    for chunk in raw.parse():
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
        for choice in chunk.choices:
            if choice.delta and choice.delta.content:
                chunks += 1
                first = first or time.perf_counter()
                text.append(choice.delta.content)
    end = time.perf_counter()
    result.answer = "".join(text)
    if first is None or not result.answer.strip():
        raise Failure(f"HTTP {result.status} but the stream carried no text")
    result.ttft_s, result.elapsed_s = first - start, end - start
    result.tokens = tokens if tokens is not None else chunks
    result.tokens_per_s = result.tokens / result.elapsed_s if result.elapsed_s > 0 else None


def _failure(error: openai.OpenAIError, target: str, timeout_s: float) -> str:
    if isinstance(error, openai.AuthenticationError):
        return f"HTTP 401 from {target}: the router rejected the stack's API key (Secret and servers disagree?)"
    if isinstance(error, openai.APIStatusError):
        return f"HTTP {error.status_code} from {target}: {error.message}"
    if isinstance(error, openai.APITimeoutError):
        return f"no answer from {target} within {timeout_s:g} s"
    if isinstance(error, openai.APIConnectionError):
        cause = error.__cause__ or error
        return f"cannot talk to {target}: {cause}"
    return f"{type(error).__name__}: {error}"


def run(spec: ServiceSpec, inv: Inventory, cluster: Cluster | None, request: Request, *,
        url: str | None = None, api_key: str | None = None) -> Result:
    """The three calls against ``url`` or a port-forward to the router; ``cluster`` may be None
    only with both ``url`` and ``api_key``."""
    served = spec.model.served_model_name or spec.model.id
    result = Result(model=served)
    forward: PortForward | None = None
    with ExitStack() as scope:
        try:
            key = api_key or _api_key(cluster, inv.namespace, inv.service)
            if url:
                base = url.rstrip("/")
                result.target = base
            else:
                pod, node, port = _router_pod(cluster, inv)
                forward = PortForward(cluster.core, inv.namespace, pod, port)
                try:
                    local = scope.enter_context(forward)
                except PortForwardError as error:
                    raise _unreachable_pod(cluster, pod, node, port, error) from None
                base = f"http://127.0.0.1:{local}"
                result.target = f"pod {inv.namespace}/{pod}:{port} (port-forward)"
            api = openai.OpenAI(base_url=f"{base}/v1", api_key=key, timeout=request.timeout_s, max_retries=0)
            _check_key_required(api)
            result.steps.append("without the key: 401")
            _models(api, served)
            result.steps.append(f"/v1/models lists {served}")
            _chat(api, served, request, result)
            result.ok = True
        except Failure as failure:
            result.reason = str(failure)
        except openai.OpenAIError as error:
            result.reason = _failure(error, result.target or "the router", request.timeout_s)
            if forward is not None and forward.errors and isinstance(error, openai.APIConnectionError):
                result.reason += f" (port-forward: {forward.errors[-1]}){_kwok_note(cluster, node)}"
    return result


def render(result: Result) -> str:
    lines = [f"moe-ep smoke: {result.target or '(no target)'}, model {result.model}"]
    lines.extend(f"  ok: {step}" for step in result.steps)
    if result.ok:
        lines.append(f"  chat: HTTP {result.status}; time to first token {result.ttft_s:.3f} s; {result.tokens} tokens in "
                     f"{result.elapsed_s:.3f} s = {result.tokens_per_s:.1f} tokens/s")
        lines.append(f"  answer: {_first_line(result.answer)}")
    else:
        lines.append(f"FAILED: {result.reason}")
    return "\n".join(lines)
