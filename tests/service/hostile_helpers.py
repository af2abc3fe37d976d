"""What the hostile-input tests share: a snapshot of everything a refused request must leave
as it was (the project list, the database's content, the data folder's files), and a raw
HTTP/1.1 request over a socket for bodies no well-behaved client would send."""
from __future__ import annotations

import socket
import sqlite3
import time
from pathlib import Path
from typing import Optional

VOLATILE_TABLES = ("sessions", "login_tokens", "users")
"""Tables a test writes to while it sets up its users (new users, sign-ins)."""


def state_of(data_dir: Path) -> dict:
    """The rows of every table (but ``VOLATILE_TABLES``) and the data folder's files with
    their sizes; the database's files and thumbnails made on demand are left out."""
    conn = sqlite3.connect(f"file:{data_dir / 'cellhub.sqlite3'}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        rows = {t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall()
                for t in tables if t not in VOLATILE_TABLES}
    finally:
        conn.close()
    files = {}
    for path in sorted(data_dir.rglob("*")):
        rel = path.relative_to(data_dir).as_posix()
        if path.name.startswith("cellhub.sqlite3"):
            continue  # the database is compared by its rows (its file grows with sessions)
        if rel.startswith("thumbnails"):
            continue
        files[rel] = path.stat().st_size if path.is_file() else "dir"
    return {"rows": rows, "files": files}


def raw_request(base_url: str, head: str, body: bytes = b"", read_timeout: float = 10.0,
                keep_sending: Optional[int] = None) -> tuple[Optional[int], bytes, float]:
    """Send ``head`` (request line and headers, ``\\r\\n`` separated, no blank line) and
    ``body`` over a fresh socket, then ``keep_sending`` more bytes in 64 KiB pieces while
    no answer has come; returns ``(status or None, raw answer, seconds until the answer)``."""
    host, port = base_url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=read_timeout) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n\r\n" + body)
        sock.settimeout(0.05)
        answer = b""
        extra = keep_sending or 0
        deadline = time.monotonic() + read_timeout
        while time.monotonic() < deadline:
            try:
                piece = sock.recv(65536)
                if not piece:
                    break
                answer += piece
                if b"\r\n\r\n" in answer and len(answer) > answer.index(b"\r\n\r\n") + 4:
                    break
            except socket.timeout:
                if extra > 0:
                    try:
                        sock.sendall(b"x" * min(65536, extra))
                    except OSError:
                        pass
                    extra -= 65536
    seconds = time.monotonic() - started
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None
    return status, answer, seconds
