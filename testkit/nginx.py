"""nginx in front of a cluster's web replicas, for tests: Debian's nginx run as an
unprivileged user in a temporary folder, with the README's example configuration
("Running on several machines") made to point at the test's replicas.

``example_config()`` reads the example from README.md (the ```nginx block after the
``<!-- nginx-example -->`` marker); ``for_replicas`` puts the replicas' addresses in its
``upstream`` and a free local port in its ``listen`` (and fails if either is not where the
README has it, so the README cannot drift from what is tested); ``start_nginx`` runs it inside
a minimal main configuration (pid, logs and temporary files in the folder, no daemon).
"""
from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from testkit import free_port, stop_process
from testkit.postgres import _as_user, own_folder, unprivileged_user

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- nginx-example -->"

MAIN = """daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 512; }}
http {{
    log_format upstream '$request $status $upstream_addr';
    access_log {folder}/access.log upstream;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
{site}
}}
"""


def example_config(readme: Path = ROOT / "README.md") -> str:
    """The README's example nginx configuration (the site: ``upstream``, ``map``, ``server``)."""
    text = readme.read_text()
    found = re.search(re.escape(MARKER) + r"\s*```nginx\n(.*?)```", text, re.S)
    if found is None:
        raise AssertionError(f"README.md has no ```nginx block after {MARKER}")
    return found.group(1)


def for_replicas(site: str, replicas: list[str], port: int) -> str:
    """``site`` with its upstream servers replaced by ``replicas`` (``host:port``) and its
    ``listen`` by ``127.0.0.1:port``."""
    upstream = re.search(r"upstream\s+\w+\s*\{(.*?)\}", site, re.S)
    if upstream is None or "server " not in upstream.group(1):
        raise AssertionError("the README's nginx example has no upstream with servers")
    servers = "".join(f"\n    server {address};" for address in replicas) + "\n"
    site = site[:upstream.start(1)] + servers + site[upstream.end(1):]
    site, listens = re.subn(r"listen\s+[^;]+;", f"listen 127.0.0.1:{port};", site)
    if listens != 1:
        raise AssertionError(f"the README's nginx example should listen once, found {listens}")
    return site


@dataclass
class Nginx:
    folder: Path
    proc: subprocess.Popen
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def access_log(self) -> str:
        path = self.folder / "access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGQUIT, timeout=15)  # SIGQUIT: nginx's graceful stop
        shutil.rmtree(self.folder, ignore_errors=True)


def _nginx() -> str:
    path = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(path).exists():
        raise RuntimeError("nginx was not found: scripts/setup.sh --browser installs Debian's nginx")
    return path


def start_nginx(replicas: list[str]) -> Nginx:
    """nginx balancing over ``replicas`` (``host:port``) with the README's configuration."""
    user = unprivileged_user()
    folder = own_folder("cellhub-nginx-", user)
    port = free_port()
    config = folder / "nginx.conf"
    config.write_text(MAIN.format(folder=folder, site=for_replicas(example_config(), replicas, port)))
    config.chmod(0o644)  # nginx's user reads it whatever our umask (make_private sets 077)
    proc = subprocess.Popen([_nginx(), "-p", str(folder), "-c", str(config), "-e", str(folder / "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, **_as_user(user))
    server = Nginx(folder, proc, port)
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (folder / "error.log").read_text(errors="replace") if (folder / "error.log").exists() else ""
                server.stop()
                raise RuntimeError(f"nginx did not start:\n{log}")
            time.sleep(0.05)
