"""The local control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, the
LeaderWorkerSet controller with its webhooks, and KWOK, all on 127.0.0.1, from e2e/tools' builds.

    python e2e/plane.py up      # builds what is missing, starts, waits until ready (idempotent)
    python e2e/plane.py down    # stops what `up` started, by pid

Everything lives under .e2e/: kubeconfig, pki/, logs/<component>.log, pids/<component>.pid.
A second plane beside it (the scale benchmark's) takes another folder and other ports:
MOE_EP_PLANE_DIR, MOE_EP_PLANE_PORT_OFFSET (added to every port) and MOE_EP_FLEET (its nodes);
the binaries stay in .e2e/bin.
The API server has TLS, RBAC and service-account tokens like a real cluster; each component has
its own client certificate (the controller manager and scheduler as their system users, so RBAC's
default bindings apply). The fleet (e2e/fleet.yaml) is posted as Nodes that KWOK manages.

Written against kwokctl's binary runtime and controller-runtime's envtest, which do part of this:
kwokctl runs KWOK on every node and cannot host the LWS webhooks; envtest has no controller manager
or scheduler. Failures name the component and its log file, and exit 1.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("MOE_EP_PLANE_DIR") or ROOT / ".e2e").resolve()
BIN = ROOT / ".e2e" / "bin"
PKI = STATE / "pki"
LOGS = STATE / "logs"
PIDS = STATE / "pids"
KUBECONFIG = STATE / "kubeconfig"
CRD_DIR = Path(os.environ.get("MOE_EP_CRD_DIR") or ROOT.parent / "shared" / "crds")
FLEET = Path(os.environ.get("MOE_EP_FLEET") or ROOT / "e2e" / "fleet.yaml")
CONTEXT = "moe-ep-local"
KWOK_MODULE = "sigs.k8s.io/kwok"
"""At the version e2e/tools/kwok/go.mod pins."""
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.128.0.0/12"
"""Addresses KWOK writes into pod status; nothing is ever sent to them."""

# Ports: unusual ones, so a developer's own cluster or services on the usual ports do not clash.
PORTS = {name: port + int(os.environ.get("MOE_EP_PLANE_PORT_OFFSET") or 0) for name, port in {
    "etcd": 32379, "etcd-peer": 32380, "kube-apiserver": 36443, "kube-controller-manager": 30257,
    "kube-scheduler": 30259, "lws-webhook": 39443, "lws-health": 38081, "kwok": 30247,
}.items()}
API = f"https://127.0.0.1:{PORTS['kube-apiserver']}"


class PlaneError(Exception):
    """A component failed; the message names it and its log."""


@dataclass(frozen=True)
class Identity:
    """A client certificate's subject: RBAC sees CN as the user and O as the group."""

    name: str
    common_name: str
    organization: str = ""


IDENTITIES = (
    Identity("admin", "moe-ep-admin", "system:masters"),
    Identity("kube-controller-manager", "system:kube-controller-manager"),
    Identity("kube-scheduler", "system:kube-scheduler"),
    Identity("lws-controller", "lws-controller", "system:masters"),
    Identity("kwok", "kwok-controller", "system:masters"),
)


# --- PKI -----------------------------------------------------------------------------------------

def _openssl(*args: str) -> None:
    try:
        subprocess.run(["openssl", *args], check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise PlaneError("openssl is missing: the plane's certificates are made with it (apt-get install openssl)")
    except subprocess.CalledProcessError as error:
        raise PlaneError(f"openssl {' '.join(args[:2])} failed: {error.stderr.strip()}")


def _leaf(name: str, subject: str, usage: str, alt_names: str = "") -> None:
    ext = PKI / f"{name}.ext"
    ext.write_text(f"basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage={usage}\n"
                   + (f"subjectAltName={alt_names}\n" if alt_names else ""))
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(PKI / f"{name}.key"), "-out", str(PKI / f"{name}.csr"), "-subj", subject)
    _openssl("x509", "-req", "-in", str(PKI / f"{name}.csr"), "-CA", str(PKI / "ca.crt"), "-CAkey", str(PKI / "ca.key"),
             "-CAcreateserial", "-days", "3650", "-extfile", str(ext), "-out", str(PKI / f"{name}.crt"))


def ensure_pki() -> None:
    """A CA, the serving certificates (API server, LWS webhook, KWOK's kubelet server), a client
    certificate per identity and the service-account signing key; each made once, kept across
    restarts, and made when a newer plane needs one an older PKI lacks."""
    PKI.mkdir(parents=True, exist_ok=True)
    if not (PKI / "ca.crt").exists():
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "3650",
                 "-keyout", str(PKI / "ca.key"), "-out", str(PKI / "ca.crt"), "-subj", "/CN=moe-ep-local-ca")
    leaves = [("apiserver", "/CN=kube-apiserver", "serverAuth",
               "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"),
              ("lws-webhook", "/CN=lws-webhook", "serverAuth", "IP:127.0.0.1,DNS:localhost"),
              ("kwok-kubelet", "/CN=kwok-kubelet", "serverAuth", "IP:127.0.0.1,DNS:localhost")]
    for identity in IDENTITIES:
        subject = f"/CN={identity.common_name}" + (f"/O={identity.organization}" if identity.organization else "")
        leaves.append((identity.name, subject, "clientAuth", ""))
    for name, subject, usage, alt_names in leaves:
        if not (PKI / f"{name}.crt").exists():
            _leaf(name, subject, usage, alt_names)
    if not (PKI / "sa.pub").exists():
        _openssl("genrsa", "-out", str(PKI / "sa.key"), "2048")
        _openssl("rsa", "-in", str(PKI / "sa.key"), "-pubout", "-out", str(PKI / "sa.pub"))


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(identity: str, path: Path) -> Path:
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": CONTEXT,
        "clusters": [{"name": CONTEXT, "cluster": {"server": API, "certificate-authority-data": _b64(PKI / "ca.crt")}}],
        "users": [{"name": identity, "user": {"client-certificate-data": _b64(PKI / f"{identity}.crt"),
                                              "client-key-data": _b64(PKI / f"{identity}.key")}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": identity}}],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


# --- processes -----------------------------------------------------------------------------------

def _pid(component: str) -> int | None:
    try:
        pid = int((PIDS / f"{component}.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if this process started it and it has exited
    except ChildProcessError:
        pass
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return None
    # A recycled pid is some other program: only ours counts as running. An empty command line
    # is a process in the middle of exec (Popen returns at the point of no return, before it ends).
    return pid if not cmdline or str(STATE).encode() in cmdline else None


def start(component: str, argv: list[str], env: dict[str, str] | None = None) -> None:
    if not Path(argv[0]).exists():
        raise PlaneError(f"{component}: {argv[0]} is missing (make tools builds it)")
    LOGS.mkdir(parents=True, exist_ok=True)
    PIDS.mkdir(parents=True, exist_ok=True)
    log = (LOGS / f"{component}.log").open("w")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True, cwd=STATE, env={**os.environ, **(env or {})})
    (PIDS / f"{component}.pid").write_text(str(process.pid))


def _log_tail(component: str, lines: int = 15) -> str:
    try:
        text = (LOGS / f"{component}.log").read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join("    " + line for line in text[-lines:])


def fail(component: str, why: str) -> PlaneError:
    return PlaneError(f"{component} {why}; its log is {LOGS / (component + '.log')}, which ends:\n{_log_tail(component)}")


def wait_until(component: str, ready, timeout: float, what: str) -> None:
    """Poll ``ready()`` until true; fail naming the component if its process died or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if component in COMPONENTS and _pid(component) is None:
            raise fail(component, "exited")
        try:
            if ready():
                return
        except (OSError, urllib.error.URLError, subprocess.CalledProcessError, ssl.SSLError, ValueError):
            pass
        time.sleep(0.5)
    raise fail(component, f"did not become ready within {timeout:.0f} s ({what})")


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _https_ok(url: str, identity: str | None = "admin") -> bool:
    context = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
    if identity:
        context.load_cert_chain(PKI / f"{identity}.crt", PKI / f"{identity}.key")
    else:  # a component's self-signed serving certificate: only that it answers matters here
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(url, context=context, timeout=5) as response:
        return response.status == 200


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status == 200


def kubectl(*args: str, input_text: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "kubectl"), "--kubeconfig", str(KUBECONFIG), *args],
                          input=input_text, capture_output=True, text=True, check=check)


# --- components ----------------------------------------------------------------------------------

def _etcd() -> list[str]:
    data = STATE / "etcd"
    client, peer = f"http://127.0.0.1:{PORTS['etcd']}", f"http://127.0.0.1:{PORTS['etcd-peer']}"
    return [str(BIN / "etcd"), "--name", "moe-ep", "--data-dir", str(data),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"moe-ep={peer}", "--listen-metrics-urls", "",
            "--unsafe-no-fsync",  # a test plane: speed over durability
            "--log-level", "warn"]


def _apiserver() -> list[str]:
    return [str(BIN / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{PORTS['etcd']}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={PORTS['kube-apiserver']}",
            f"--tls-cert-file={PKI / 'apiserver.crt'}", f"--tls-private-key-file={PKI / 'apiserver.key'}",
            f"--client-ca-file={PKI / 'ca.crt'}",
            f"--service-account-key-file={PKI / 'sa.pub'}", f"--service-account-signing-key-file={PKI / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--authorization-mode=RBAC",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",  # as GPU clusters do: a privileged RDMA tier must be admitted
            "--endpoint-reconciler-type=none",  # no kubelet serves 127.0.0.1's endpoints
            "--v=1"]


def _controller_manager() -> list[str]:
    return [str(BIN / "kube-controller-manager"),
            f"--kubeconfig={write_kubeconfig('kube-controller-manager', STATE / 'kube-controller-manager.kubeconfig')}",
            "--bind-address=127.0.0.1", f"--secure-port={PORTS['kube-controller-manager']}",
            f"--service-account-private-key-file={PKI / 'sa.key'}", f"--root-ca-file={PKI / 'ca.crt'}",
            "--use-service-account-credentials=true", "--leader-elect=false",
            # The node lifecycle controller evicts from nodes whose lease lapses: KWOK renews it.
            "--controllers=*", "--v=1"]


def _scheduler() -> list[str]:
    return [str(BIN / "kube-scheduler"),
            f"--kubeconfig={write_kubeconfig('kube-scheduler', STATE / 'kube-scheduler.kubeconfig')}",
            "--bind-address=127.0.0.1", f"--secure-port={PORTS['kube-scheduler']}", "--leader-elect=false", "--v=1"]


def _lws() -> list[str]:
    certs = STATE / "lws-certs"
    certs.mkdir(exist_ok=True)
    (certs / "tls.crt").write_bytes((PKI / "lws-webhook.crt").read_bytes())
    (certs / "tls.key").write_bytes((PKI / "lws-webhook.key").read_bytes())
    config = {
        "apiVersion": "config.lws.x-k8s.io/v1alpha1", "kind": "Configuration",
        "leaderElection": {"leaderElect": False},
        # Serve the certificate made here: LWS's own rotation writes a Secret for an in-cluster Service.
        "internalCertManagement": {"enable": False},
        "webhook": {"port": PORTS["lws-webhook"], "host": "127.0.0.1", "certDir": str(certs)},
        "metrics": {"bindAddress": "0"},
        "health": {"healthProbeBindAddress": f"127.0.0.1:{PORTS['lws-health']}"},
    }
    (STATE / "lws-config.yaml").write_text(yaml.safe_dump(config))
    return [str(BIN / "lws-controller"), f"--config={STATE / 'lws-config.yaml'}"]


def _kwok_module() -> Path:
    """KWOK's module directory (the build downloaded it), for its stages and CRDs."""
    # Inside the tool's module, without a version: the one its go.mod pins.
    found = subprocess.run(["go", "mod", "download", "-json", KWOK_MODULE], capture_output=True, text=True,
                           cwd=ROOT / "e2e" / "tools" / "kwok")
    if found.returncode != 0:
        raise PlaneError(f"kwok: cannot find its module {KWOK_MODULE}: {found.stdout or found.stderr}")
    return Path(json.loads(found.stdout)["Dir"])


def _kwok_stages() -> list[str]:
    """KWOK's own fast node and pod lifecycles."""
    stage = _kwok_module() / "kustomize" / "stage"
    files = ["node/fast/node-initialize.yaml", "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
             "pod/fast/pod-ready.yaml", "pod/fast/pod-complete.yaml", "pod/fast/pod-delete.yaml"]
    return [f"--config={stage / f}" for f in files]


def _kwok() -> list[str]:
    # KWOK also plays the kubelet's server: nodes report 127.0.0.1 and its port, so the API server's
    # port-forward (and logs, exec) reach it over TLS, and a PortForward object decides where a
    # pod's port really leads (a test server on 127.0.0.1, say).
    return [str(BIN / "kwok"), f"--kubeconfig={write_kubeconfig('kwok', STATE / 'kwok.kubeconfig')}",
            "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--manage-nodes-with-label-selector=", "--manage-single-node=",
            f"--cidr={POD_CIDR}", "--node-ip=127.0.0.1", f"--node-port={PORTS['kwok']}", "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{PORTS['kwok']}",
            f"--tls-cert-file={PKI / 'kwok-kubelet.crt'}", f"--tls-private-key-file={PKI / 'kwok-kubelet.key'}",
            "--enable-crds=PortForward", *_kwok_stages()]


KWOK_CRDS = ("kwok.x-k8s.io_portforwards.yaml",)
"""The KWOK CRDs the plane serves: PortForward, read by KWOK's kubelet server."""


PLANE_TOOLS = ("kubernetes", "etcd", "kwok", "lws")
"""The folders of e2e/tools this plane runs (the Pulumi CLI and providers are deploy.py's)."""
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "lws-controller", "kwok")


# --- cluster objects -----------------------------------------------------------------------------

def lws_webhooks() -> list[dict]:
    """LWS's webhook configurations (its config/webhook with the kustomize patches applied),
    pointing at the controller on 127.0.0.1 instead of an in-cluster Service."""
    ca = _b64(PKI / "ca.crt")
    lws_pods = {"matchExpressions": [{"key": "leaderworkerset.sigs.k8s.io/name", "operator": "Exists"}]}

    def hook(name, path, group, resource, operations, object_selector=None):
        entry = {"name": name, "admissionReviewVersions": ["v1"], "sideEffects": "None", "failurePolicy": "Fail",
                 "clientConfig": {"url": f"https://127.0.0.1:{PORTS['lws-webhook']}{path}", "caBundle": ca},
                 "rules": [{"apiGroups": [group], "apiVersions": ["v1"], "operations": operations,
                            "resources": [resource]}]}
        if object_selector:
            entry["objectSelector"] = object_selector
        return entry

    return [
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
         "metadata": {"name": "lws-mutating-webhook-configuration"},
         "webhooks": [hook("mleaderworkerset.kb.io", "/mutate-leaderworkerset-x-k8s-io-v1-leaderworkerset",
                           "leaderworkerset.x-k8s.io", "leaderworkersets", ["CREATE", "UPDATE"]),
                      hook("mpod.kb.io", "/mutate--v1-pod", "", "pods", ["CREATE"], lws_pods)]},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
         "metadata": {"name": "lws-validating-webhook-configuration"},
         "webhooks": [hook("vleaderworkerset.kb.io", "/validate-leaderworkerset-x-k8s-io-v1-leaderworkerset",
                           "leaderworkerset.x-k8s.io", "leaderworkersets", ["CREATE", "UPDATE"]),
                      hook("vpod.kb.io", "/validate--v1-pod", "", "pods", ["CREATE", "UPDATE"], lws_pods)]},
    ]


def fleet_nodes(path: Path = FLEET) -> list[dict]:
    """The Nodes of the fleet file, annotated for KWOK. Pure apart from reading the file."""
    nodes = []
    for group in yaml.safe_load(path.read_text())["groups"]:
        for index in range(1, group["count"] + 1):
            name = f"{group['name']}-{index:02d}"
            nodes.append({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                             "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                        "kubernetes.io/arch": "amd64", "type": "kwok", **group.get("labels", {})}},
                "spec": {"taints": group["taints"]} if group.get("taints") else {},
                "status": {"capacity": group["capacity"], "allocatable": group["capacity"]},
            })
    return nodes


def _apply(objects: list[dict], component: str, *flags: str) -> None:
    document = "\n---\n".join(json.dumps(o) for o in objects)
    result = kubectl("apply", "--server-side", "--force-conflicts", *flags, "-f", "-", input_text=document, check=False)
    if result.returncode != 0:
        raise PlaneError(f"{component}: kubectl apply failed: {result.stderr.strip()}")


def crds() -> list[Path]:
    files = sorted(CRD_DIR.glob("*.yaml"))
    if not any(f.name.startswith("leaderworkerset") for f in files):
        raise PlaneError(f"CRDs not found in {CRD_DIR} (set MOE_EP_CRD_DIR to the folder of upstream CRDs)")
    return files + [_kwok_module() / "kustomize" / "crd" / "bases" / name for name in KWOK_CRDS]


# --- up / down -----------------------------------------------------------------------------------

def running() -> list[str]:
    return [c for c in COMPONENTS if _pid(c) is not None]


def healthy() -> bool:
    if len(running()) != len(COMPONENTS) or not KUBECONFIG.exists():
        return False
    try:
        return _https_ok(f"{API}/readyz")
    except (OSError, urllib.error.URLError, ssl.SSLError):
        return False


def up() -> None:
    if healthy():
        print(f"local control plane already up: KUBECONFIG={KUBECONFIG}")
        return
    if running():
        down(quiet=True)
    started = time.monotonic()
    subprocess.run([str(ROOT / "e2e" / "tools" / "build"), *PLANE_TOOLS], check=True)
    busy = [f"{name} ({port})" for name, port in PORTS.items() if not _port_free(port)]
    if busy:
        raise PlaneError(f"ports taken on 127.0.0.1: {', '.join(busy)}; stop what holds them "
                         f"(`ss -ltnp`), or `make cluster-down` if it is an earlier plane")
    ensure_pki()
    # A fresh cluster each time, so tests start from a known state; Pulumi's local state and
    # working copies describe the old cluster, so they go with it.
    for leftover in ("etcd", "state", "work", "pulumi-home"):
        shutil.rmtree(STATE / leftover, ignore_errors=True)
    write_kubeconfig("admin", KUBECONFIG)

    start("etcd", _etcd())
    wait_until("etcd", lambda: _http_ok(f"http://127.0.0.1:{PORTS['etcd']}/health"), 30, "GET /health")
    start("kube-apiserver", _apiserver())
    wait_until("kube-apiserver", lambda: _https_ok(f"{API}/readyz"), 90, "GET /readyz")

    _apply(lws_webhooks(), "lws webhooks")
    files = crds()
    result = kubectl("apply", "--server-side", *[arg for f in files for arg in ("-f", str(f))], check=False)
    if result.returncode != 0:
        raise PlaneError(f"CRDs from {CRD_DIR}: kubectl apply failed: {result.stderr.strip()}")
    wait_until("kube-apiserver", lambda: kubectl("wait", "--for=condition=Established", "--timeout=5s",
                                                 *[a for f in files for a in ("-f", str(f))]).returncode == 0,
               60, "CRDs Established")

    start("kube-controller-manager", _controller_manager())
    start("kube-scheduler", _scheduler())
    start("lws-controller", _lws(), env={"KUBECONFIG": str(write_kubeconfig("lws-controller", STATE / "lws.kubeconfig"))})
    start("kwok", _kwok())
    wait_until("kube-controller-manager",
               lambda: _https_ok(f"https://127.0.0.1:{PORTS['kube-controller-manager']}/healthz", None), 60, "GET /healthz")
    wait_until("kube-scheduler",
               lambda: _https_ok(f"https://127.0.0.1:{PORTS['kube-scheduler']}/healthz", None), 60, "GET /healthz")
    wait_until("lws-controller", lambda: _http_ok(f"http://127.0.0.1:{PORTS['lws-health']}/readyz"), 60, "GET /readyz")
    wait_until("lws-controller", _lws_webhook_answers, 60, "its webhook admits a LeaderWorkerSet (server dry run)")
    wait_until("kube-controller-manager",
               lambda: kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0,
               60, "the default ServiceAccount exists")

    _apply(fleet_nodes(), "fleet")
    names = [n["metadata"]["name"] for n in fleet_nodes()]
    wait_until("kwok", lambda: _nodes_ready(names), 60, "every fleet node Ready")
    print(f"local control plane up in {time.monotonic() - started:.0f} s: {len(names)} nodes; "
          f"KUBECONFIG={KUBECONFIG}; logs in {LOGS}")


def _nodes_ready(names: list[str]) -> bool:
    # One list, not `kubectl wait node/...`: its --timeout covers all the nodes it reads one by one
    # (at the client's 5 requests per second), so a fleet of more than about 25 nodes never passes.
    listed = json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]
    ready = {n["metadata"]["name"] for n in listed
             if any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))}
    return set(names) <= ready


def _lws_webhook_answers() -> bool:
    probe = {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
             "metadata": {"name": "webhook-probe", "namespace": "default"},
             "spec": {"leaderWorkerTemplate": {"size": 1, "workerTemplate": {
                 "spec": {"containers": [{"name": "c", "image": "probe"}]}}}}}
    result = kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", input_text=json.dumps(probe), check=False)
    # Defaulted by the mutating webhook: proof it was called, not only that the API server answered.
    return result.returncode == 0 and "rolloutStrategy" in json.loads(result.stdout)["spec"]


def stop(component: str) -> bool:
    """SIGTERM to a component's process group, SIGKILL after 15 s; False if it was not running."""
    pid = _pid(component)
    if pid is not None:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 15
        while _pid(component) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        if _pid(component) is not None:
            os.killpg(pid, signal.SIGKILL)
    (PIDS / f"{component}.pid").unlink(missing_ok=True)
    return pid is not None


def down(quiet: bool = False) -> None:
    stopped = [component for component in reversed(COMPONENTS) if stop(component)]
    if not quiet:
        print(f"local control plane down ({', '.join(stopped) or 'nothing was running'})")


def run_command(program: str, commands: dict, argv: list[str]) -> int:
    """``program up|down``: runs one of ``commands``; a failure is its message and exit 1, never a trace."""
    if len(argv) != 1 or argv[0] not in commands:
        print(f"usage: {program} {'|'.join(commands)}", file=sys.stderr)
        return 2
    try:
        commands[argv[0]]()
    except PlaneError as error:
        print(f"{program}: {error}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as error:
        print(f"{program}: {' '.join(map(str, error.cmd))} failed (exit {error.returncode})", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    return run_command("plane.py", {"up": up, "down": down}, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
