"""[no torch] What the network outputs share: the ``scheme://HOST:PORT/PATH`` an output URI names,
the check that its port can be bound, the viewing token, and a viewer's own mailbox.

``@`` as the host binds every interface (as jetson-inference's ``rtsp://@:8554/out``); a named
address or ``127.0.0.1`` binds only there. The token comes from ``OVERFEAT_EDGE_VIEW_TOKEN`` only
(never from the URL, which is printed and shows in ``ps``).
"""

from __future__ import annotations

import collections
import errno
import os
import socket
import threading
from dataclasses import dataclass
from typing import Deque, Optional
from urllib.parse import urlsplit

from overfeat_edge.errors import InputError

ENV_TOKEN = "OVERFEAT_EDGE_VIEW_TOKEN"
TOKEN_USER = "overfeat"  # the user name RTSP basic auth expects (the page takes any)


@dataclass(frozen=True)
class Endpoint:
    """A parsed output URI. ``host`` is ``""`` for ``@`` (every interface)."""

    uri: str
    scheme: str
    host: str
    port: int
    path: str
    query: str

    @property
    def every_interface(self) -> bool:
        return self.host == ""

    @property
    def key(self) -> str:
        """What servers are shared by: one per bound address and port."""
        return f"{self.host or '0.0.0.0'}:{self.port}"

    def url(self, path: Optional[str] = None) -> str:
        """The URL a viewer opens (this machine's name for ``@``); never holds the token."""
        host = socket.gethostname() if self.every_interface else self.host
        host = f"[{host}]" if ":" in host else host
        return f"{self.scheme}://{host}:{self.port}{self.path if path is None else path}"

    def opening_line(self, what: str, path: Optional[str] = None) -> str:
        """The one line said at start: who can see it, and where."""
        where = "every interface (anyone who can reach this machine)" if self.every_interface else self.host
        auth = f", {ENV_TOKEN} required" if token() else ""
        return f"{what} on {where}{auth}: open {self.url(path)}"


def parse(uri: str, schemes: tuple[str, ...], default_port: int, *, need_host: bool = False) -> Endpoint:
    """``scheme://@:PORT/PATH`` or ``scheme://HOST:PORT/PATH``, checked; one InputError line if not."""
    parts = urlsplit(uri)
    example = f"{schemes[0]}://@:{default_port}/"
    if parts.scheme not in schemes or not parts.netloc:
        raise InputError(f"--output {uri}: expected {' or '.join(s + '://' for s in schemes)}HOST:PORT, e.g. {example}")
    if parts.username or parts.password:  # "@:8554" parses as an empty user name: every interface
        raise InputError(f"--output {uri}: no credentials in the URL (it is printed and shows in ps); set {ENV_TOKEN}")
    try:
        port = parts.port
    except ValueError:
        raise InputError(f"--output {uri}: the port must be a number from 1 to 65535") from None
    netloc_host = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
    host = "" if netloc_host == "@" else (parts.hostname or "")
    if not host and netloc_host != "@":
        raise InputError(f"--output {uri}: give a host, or @ for every interface, e.g. {example}")
    if need_host and not host:
        raise InputError(f"--output {uri}: give the address to send to (rtp://HOST:PORT), @ is for servers")
    if port == 0 or (port is None and need_host):
        raise InputError(f"--output {uri}: give a port from 1 to 65535")
    if parts.fragment:
        raise InputError(f"--output {uri}: a '#' has no meaning here")
    return Endpoint(uri, parts.scheme, host, port or default_port, parts.path, parts.query)


def check_bind(ep: Endpoint, kind: int = socket.SOCK_STREAM) -> None:
    """Bind the port once (then let it go) so that a port in use, a privileged port or an address
    this machine does not have is one line before any frame is read."""
    family = socket.AF_INET6 if ":" in ep.host else socket.AF_INET
    with socket.socket(family, kind) as s:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # what the server itself sets
        try:
            s.bind((ep.host, ep.port))
        except PermissionError:
            raise InputError(
                f"--output {ep.uri}: port {ep.port} is below 1024 and needs root here; use a port from 1024 up"
            ) from None
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise InputError(f"--output {ep.uri}: port {ep.port} is in use (another program has it)") from None
            raise InputError(
                f"--output {ep.uri}: cannot listen on {ep.host or 'every interface'}: {e.strerror}"
            ) from None


def token() -> Optional[str]:
    """The viewing token, or None: anyone who reaches the port may watch."""
    return os.environ.get(ENV_TOKEN) or None


class Viewer:
    """One viewer's mailbox: at most ``size`` items, the oldest dropped (and counted) when a new one
    comes to a full box, so a stalled viewer loses items and never makes the writer wait."""

    def __init__(self, size: int = 1) -> None:
        self._cond = threading.Condition()
        self._items: Deque[object] = collections.deque(maxlen=size)
        self.closed = False
        self.lost = 0

    def put(self, item: object) -> None:
        with self._cond:
            if len(self._items) == self._items.maxlen:
                self.lost += 1
            self._items.append(item)
            self._cond.notify()

    def get(self, timeout: float) -> Optional[object]:
        """The oldest item; None after ``timeout`` s with nothing, or once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._items or self.closed, timeout)
            return self._items.popleft() if self._items and not self.closed else None

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
