"""A TCP proxy on 127.0.0.1 in front of a real server, for the network faults a client must
survive: an answer lost after the server acted, a connection cut in the middle of a
download, a request held in flight, an answer trickling in slowly.

It relays bytes as they come and reads just enough HTTP/1.1 to tell requests apart on a
kept-alive connection (request line, headers, ``Content-Length`` body); after a WebSocket
upgrade it only relays. A ``Rule`` picks requests by method and path (a regex searched in
the request target) and acts on the next ``times`` of them:

- ``lose_answer``: forward the request, wait for the first byte of the answer (so the
  server has acted), then close the connection without relaying any of it;
- ``cut_after``: relay that many bytes of the answer (status line and headers included),
  then close the connection;
- ``hold``: keep the request until ``rule.release`` is set (the client waits meanwhile);
- ``rate``: relay the answer at about that many bytes per second.

``rule.matched`` is set once a request matched (tests wait on it); ``proxy.requests`` lists
every request's ``(method, target)`` and ``proxy.headers`` its headers (names in lower case),
in the same order. Not product code.
"""
from __future__ import annotations

import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

_REQUEST_LINE = re.compile(rb"^([A-Z]+) (\S+) HTTP/1\.[01]\r\n")
_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


@dataclass
class Rule:
    method: str
    path: str
    times: int = 1
    lose_answer: bool = False
    cut_after: Optional[int] = None
    hold: bool = False
    rate: Optional[float] = None
    release: threading.Event = field(default_factory=threading.Event)
    matched: threading.Event = field(default_factory=threading.Event)
    applied: int = 0

    def wants(self, method: str, target: str) -> bool:
        return self.applied < self.times and method == self.method and re.search(self.path, target) is not None


class CuttingProxy:
    """``with CuttingProxy(port) as proxy:`` relays ``proxy.url`` to 127.0.0.1:``port``."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.rules: list[Rule] = []
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[tuple[str, str]] = []
        self.headers: list[dict[str, str]] = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> "CuttingProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def add(self, rule: Rule) -> Rule:
        with self.lock:
            self.rules.append(rule)
        return rule

    def close(self) -> None:
        self.closed = True
        with self.lock:
            for rule in self.rules:
                rule.release.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            _Link(self, client, upstream).start()

    def _rule_for(self, method: str, target: str, headers: dict[str, str]) -> Optional[Rule]:
        with self.lock:
            self.requests.append((method, target))
            self.headers.append(headers)
            for rule in self.rules:
                if rule.wants(method, target):
                    rule.applied += 1
                    rule.matched.set()
                    return rule
        return None


class _Link:
    """One client connection and its upstream connection, pumped by two threads."""

    def __init__(self, proxy: CuttingProxy, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy, self.client, self.upstream = proxy, client, upstream
        self.current: Optional[Rule] = None  # the rule of the request whose answer flows now
        self.sent_of_answer = 0
        self.dead = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._requests, daemon=True).start()
        threading.Thread(target=self._answers, daemon=True).start()

    def kill(self) -> None:
        if self.dead.is_set():
            return
        self.dead.set()
        for sock in (self.client, self.upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _requests(self) -> None:
        buffer, raw = b"", False
        try:
            while not self.dead.is_set():
                data = self.client.recv(65536)
                if not data:
                    break
                if raw:
                    self.upstream.sendall(data)
                    continue
                buffer += data
                while (end := buffer.find(b"\r\n\r\n")) >= 0:
                    head = buffer[:end + 4]
                    length = _LENGTH.search(head)
                    need = end + 4 + (int(length.group(1)) if length else 0)
                    if len(buffer) < need:
                        break
                    request, buffer = buffer[:need], buffer[need:]
                    raw = b"\r\nupgrade: websocket" in head.lower()
                    self._forward(request)
                if raw and buffer:
                    self.upstream.sendall(buffer)
                    buffer = b""
        except OSError:
            pass
        self.kill()

    def _forward(self, request: bytes) -> None:
        match = _REQUEST_LINE.match(request)
        rule = None
        if match:
            rule = self.proxy._rule_for(match.group(1).decode(), match.group(2).decode(), _headers(request))
        if rule is not None and rule.hold:
            rule.release.wait()
        self.current, self.sent_of_answer = rule, 0
        self.upstream.sendall(request)

    def _answers(self) -> None:
        try:
            while not self.dead.is_set():
                data = self.upstream.recv(65536)
                if not data:
                    break
                self._relay(data)
        except OSError:
            pass
        self.kill()

    def _relay(self, data: bytes) -> None:
        rule = self.current
        if rule is not None and rule.lose_answer:
            self.kill()
            return
        if rule is not None and rule.cut_after is not None:
            room = rule.cut_after - self.sent_of_answer
            if room <= len(data):
                self.client.sendall(data[:max(0, room)])
                self.kill()
                return
        if rule is not None and rule.rate:
            for start in range(0, len(data), 4096):
                self.client.sendall(data[start:start + 4096])
                time.sleep(4096 / rule.rate)
        else:
            self.client.sendall(data)
        self.sent_of_answer += len(data)


def _headers(request: bytes) -> dict[str, str]:
    """The header fields of a request (names in lower case; the last of a repeated name)."""
    head = request.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in head)}
