"""A local TCP port that reaches a pod's port through the API server, as ``kubectl port-forward``.

The Kubernetes client speaks the port-forward protocol (one websocket per connection, through the
API server to the node's kubelet) but hands back a socket, not a port; HTTP clients need a port.
Each connection accepted here gets its own stream, and bytes are copied both ways until either
side closes.
"""

from __future__ import annotations

import selectors
import socket
import threading

from kubernetes import client
from kubernetes.stream import portforward

CHUNK = 64 * 1024


class PortForwardError(Exception):
    """The API server would not open a stream to the pod (no kubelet answered, RBAC, a gone pod)."""


def _reason(error: client.ApiException) -> str:
    """The websocket client's refusal text, without the response headers it splices in."""
    parts = [p.strip() for p in (error.reason or "").split("-+-+-")]
    return ": ".join(p for p in parts if p and not p.startswith("{")) or f"HTTP {error.status}"


def _open(core: client.CoreV1Api, namespace: str, pod: str, port: int):
    try:
        return portforward(core.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port))
    except client.ApiException as error:
        raise PortForwardError(_reason(error)) from None
    except AttributeError as error:
        # The client (36.0.3) fails to decode the body of a refused websocket handshake and raises
        # AttributeError from its handler; the refusal itself is the ApiException it was handling.
        refused = error.__context__
        if isinstance(refused, client.ApiException):
            raise PortForwardError(_reason(refused)) from None
        raise
    except OSError as error:
        raise PortForwardError(str(error)) from None


class PortForward:
    """``with PortForward(core, "llm-dev", "router-abc", 8081) as local_port:`` serves
    127.0.0.1:``local_port`` until the block ends. Entering opens one stream first, so a pod the
    API server cannot reach fails here, with its reason, not in the HTTP client."""

    def __init__(self, core: client.CoreV1Api, namespace: str, pod: str, port: int) -> None:
        self.core, self.namespace, self.pod, self.port = core, namespace, pod, port
        self._listener: socket.socket | None = None
        self._closed = threading.Event()
        self.errors: list[str] = []
        """What the API server or the kubelet said about streams that failed, oldest first."""

    def __enter__(self) -> int:
        _open(self.core, self.namespace, self.pod, self.port).close()
        self._listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, name=f"port-forward {self.pod}", daemon=True).start()
        return self._listener.getsockname()[1]

    def __exit__(self, *_exc) -> None:
        self._closed.set()
        if self._listener is not None:
            self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                local, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(local,), daemon=True).start()

    def _relay(self, local: socket.socket) -> None:
        with local:
            try:
                stream = _open(self.core, self.namespace, self.pod, self.port)
            except PortForwardError as error:
                self.errors.append(str(error))
                return
            try:
                self._copy(local, stream.socket(self.port))
            except OSError:  # either side hung up mid-copy: the HTTP client sees and reports it
                pass
            finally:
                # The kubelet's account of a failed stream (nothing listens on the port, ...) comes
                # on the error channel, once the stream is done.
                error = stream.error(self.port)
                if error:
                    self.errors.append(error.strip())
                stream.close()

    def _copy(self, local: socket.socket, remote) -> None:
        remote.setblocking(True)
        peers = {local: remote, remote: local}
        with selectors.DefaultSelector() as sel:
            for end in peers:
                sel.register(end, selectors.EVENT_READ)
            while not self._closed.is_set():
                for key, _ in sel.select(timeout=0.5):
                    data = key.fileobj.recv(CHUNK)
                    if not data:
                        return
                    peers[key.fileobj].sendall(data)
