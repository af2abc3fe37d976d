"""A private PostgreSQL server for tests and benchmarks: ``initdb`` in a temporary folder,
``postgres`` listening on a Unix socket in that folder only (no TCP port), run as an
unprivileged user, stopped and removed by ``stop()``.

The suite runs as root in CI, and PostgreSQL refuses to run as root: the server then runs as
the ``postgres`` system user that Debian's package creates (``nobody`` if there is none), in a
folder that user owns. Run as another user, it runs as that user. The settings trade
durability for speed (``fsync=off``): the data lives only as long as the test.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from testkit import stop_process

DATABASE = "cellhub"
ROLE = "cellhub"


def _bin(name: str) -> str:
    """``name`` from the newest PostgreSQL under ``/usr/lib/postgresql`` (Debian), else PATH."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL's {name} was not found: scripts/setup.sh --browser installs it")
    return path


def unprivileged_user() -> Optional[pwd.struct_passwd]:
    """The user services run as: None (the current one) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists")


def _as_user(user: Optional[pwd.struct_passwd]) -> dict:
    """``subprocess`` keywords that run a child as ``user`` (its own session, so a Ctrl+C at
    the terminal reaches the test, which then stops the server in order)."""
    kwargs: dict = {"start_new_session": True}
    if user is not None:
        kwargs.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
    return kwargs


def own_folder(prefix: str, user: Optional[pwd.struct_passwd]) -> Path:
    """A new temporary folder (short path: Unix socket paths are limited to ~100 bytes) that
    ``user`` owns."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    if user is not None:
        os.chown(folder, user.pw_uid, user.pw_gid)
    return folder


@dataclass
class PrivatePostgres:
    folder: Path
    proc: subprocess.Popen
    log_path: Path

    @property
    def socket_dir(self) -> Path:
        return self.folder

    def url(self, database: str = DATABASE) -> str:
        """The SQLAlchemy URL (psycopg 3) of ``database`` over the Unix socket."""
        return f"postgresql+psycopg://{ROLE}@/{database}?host={self.socket_dir}"

    def conninfo(self, database: str = DATABASE) -> str:
        """The libpq connection string of ``database``."""
        return f"host={self.socket_dir} user={ROLE} dbname={database}"

    def create_database(self, name: str) -> str:
        """A new empty database; its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Fast shutdown (SIGINT: disconnect clients, stop), then remove the folder."""
        stop_process(self.proc, signal.SIGINT, timeout=30)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_postgres(max_connections: int = 200) -> PrivatePostgres:
    """Make and start a private server with a database ``cellhub`` owned by role ``cellhub``
    (trust authentication over the socket, which only the socket folder's owner and root
    can reach)."""
    user = unprivileged_user()
    folder = own_folder("cellhub-pg-", user)
    data = folder / "data"
    log_path = folder / "postgres.log"
    kwargs = _as_user(user)
    subprocess.run([_bin("initdb"), "-D", str(data), "-U", ROLE, "-A", "trust", "-E", "UTF8", "--no-sync",
                    "--locale=C"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)
    log = open(log_path, "wb")
    if user is not None:
        os.chown(log_path, user.pw_uid, user.pw_gid)
    proc = subprocess.Popen(
        [_bin("postgres"), "-D", str(data), "-k", str(folder), "-c", "listen_addresses=",
         "-c", f"max_connections={max_connections}", "-c", "fsync=off", "-c", "synchronous_commit=off",
         "-c", "full_page_writes=off", "-c", "shared_buffers=32MB"],
        stdout=log, stderr=subprocess.STDOUT, **kwargs)
    server = PrivatePostgres(folder, proc, log_path)
    _wait_ready(server)
    server.create_database(DATABASE)
    return server


def _wait_ready(server: PrivatePostgres, timeout: float = 60) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(f"postgres exited:\n{server.log_path.read_text(errors='replace')}")
        try:
            psycopg.connect(server.conninfo("postgres"), connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError("postgres did not start in time")
            time.sleep(0.05)
